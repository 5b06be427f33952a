"""IWDAN's class-importance weights: the maths, and that the model applies them to source rows only."""

import pytest
import torch
import torch.nn.functional as F

from hf_transfer.alignment import AlignmentObjective, DomainAdversarialLoss, DomainDiscriminator, class_importance_weights
from hf_transfer.alignment.label_shift import class_weighted_domain_weights
from tests.conftest import build_model
from tests.test_modeling import _batch


def test_weights_are_target_over_source_prior_normalised_to_mean_one():
    source_labels = torch.tensor([0, 0, 1, 1])  # p_S = (0.5, 0.5, 0)
    target_probs = torch.tensor([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0]])  # p_T ≈ (0.8, 0.2, 0)
    weights = class_importance_weights(source_labels, target_probs)
    # raw ratios 1.6 and 0.4 already average to 1 over the source rows
    assert torch.allclose(weights, torch.tensor([1.6, 0.4, 0.0]), atol=1e-6)
    assert torch.isclose(weights[source_labels].mean(), torch.tensor(1.0))
    # the re-weighted source has the target's class mix
    reweighted = torch.bincount(source_labels, weights=weights[source_labels], minlength=3) / len(source_labels)
    assert torch.allclose(reweighted, target_probs.mean(0), atol=1e-6)


def test_absent_classes_get_zero_and_large_ratios_are_clipped():
    source_labels = torch.tensor([0, 0, 0, 1])  # class 2 absent from the source rows
    target_probs = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    weights = class_importance_weights(source_labels, target_probs, max_weight=2.0)
    assert weights[2] == 0 and weights[0] == 0  # no target mass on class 0, no source rows of class 2
    assert torch.isclose(weights[source_labels].mean(), torch.tensor(1.0))  # class 1's ratio 3.0 clipped to 2, then normalised
    none = class_importance_weights(torch.tensor([0, 0]), torch.tensor([[0.0, 1.0]]))
    assert torch.equal(none, torch.tensor([1.0, 0.0]))  # target mass only on absent classes: plain DANN


def test_weighted_domain_loss_is_the_weighted_bce():
    torch.manual_seed(0)
    loss = DomainAdversarialLoss(DomainDiscriminator(6, hidden_size=8)).eval()  # no dropout
    features, domains = torch.randn(5, 6), torch.tensor([0, 0, 0, 1, 1])
    weights = torch.tensor([2.0, 0.0, 1.0, 1.0, 1.0])
    logits = loss.discriminator(features)
    expected = F.binary_cross_entropy_with_logits(logits, domains.float(), reduction="none").mul(weights).mean()
    assert torch.allclose(loss(features, domains, weights).loss, expected)
    assert not torch.allclose(loss(features, domains).loss, expected)
    # a zero-weight row sends no gradient to the features (through the reversal layer)
    features.requires_grad_(True)
    loss(features, domains, weights).loss.backward()
    assert torch.count_nonzero(features.grad[1]) == 0 and torch.count_nonzero(features.grad[0]) > 0


def test_model_weights_only_labelled_source_rows_and_drops_classes_the_target_lacks():
    torch.manual_seed(0)
    model = build_model()
    model.eval()  # no dropout: the same forward twice
    pixels, labels, domains = _batch()
    features = model.extract_features(pixel_values=pixels)
    logits = model(pixel_values=pixels).logits
    weights = class_weighted_domain_weights(logits, labels, domains)
    assert torch.equal(weights[4:], torch.ones(4))  # target rows keep weight 1
    expected = class_importance_weights(labels[:4], logits[4:].softmax(-1))[labels[:4]]
    assert torch.allclose(weights[:4], expected)

    # a source class the target never predicts: its rows drop out of the domain loss
    labels = torch.tensor([0, 0, 1, 1, -100, -100, -100, -100])
    never_one = torch.tensor([[5.0, -5.0, -5.0]]).expand(8, 3)
    weights = class_weighted_domain_weights(never_one, labels, domains)
    assert torch.allclose(weights[2:4], torch.zeros(2), atol=1e-3) and torch.allclose(weights[:2], torch.full((2,), 2.0), atol=1e-2)
    assert class_weighted_domain_weights(logits, labels, torch.zeros(8, dtype=torch.long)) is None  # no target rows
    assert features.shape[0] == 8


def test_class_weighting_changes_the_domain_loss_and_the_trainer_sets_it(tmp_path):
    from hf_transfer.trainer import DomainAdaptationTrainer
    from hf_transfer.training_args import DomainAdaptationArguments
    from tests.conftest import make_domain

    torch.manual_seed(0)
    model = build_model()
    model.eval()
    pixels, labels, domains = _batch()
    plain = model(pixel_values=pixels, labels=labels, domain_labels=domains).domain_loss
    iwdan = AlignmentObjective.for_method("dann", class_weighting=True)
    weighted = model(pixel_values=pixels, labels=labels, domain_labels=domains, objective=iwdan).domain_loss
    assert not torch.isclose(plain, weighted)

    fresh = build_model()
    args = DomainAdaptationArguments(
        output_dir=str(tmp_path), domain_loss_class_weighting=True, max_steps=1, report_to="none"
    )
    trainer = DomainAdaptationTrainer(model=fresh, args=args, source_dataset=make_domain(4), target_dataset=make_domain(4))
    assert trainer.objective.settings_of("dann").class_weighting is True
    assert fresh.run_info.objective["terms"][0]["settings"] == {"class_weighting": True}


@pytest.mark.parametrize("flag", ["true", "false"])
def test_flag_parses_from_the_command_line(flag, tmp_path):
    from transformers import HfArgumentParser

    from hf_transfer.training_args import DomainAdaptationArguments

    (args,) = HfArgumentParser(DomainAdaptationArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--domain_loss_class_weighting", flag]
    )
    assert args.domain_loss_class_weighting is (flag == "true")
