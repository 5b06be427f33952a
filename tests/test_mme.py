"""MME (Saito et al. 2019): the loss against a hand computation, the minimax gradients, the registry, save/load."""

import math

import pytest
import torch

from hf_transfer.alignment import AlignmentObjective, get_method
from hf_transfer.alignment.mme import MinimaxEntropyHead, PrototypeClassifier, minimax_entropy_loss
from hf_transfer.modeling import DomainAdaptationModel
from hf_transfer.training_args import DomainAdaptationArguments
from tests.conftest import build_model, make_domain, train_args


def _head(temperature=0.5):
    head = MinimaxEntropyHead(PrototypeClassifier(2, 2, temperature))
    with torch.no_grad():
        head.discriminator.prototypes.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))  # normalised to e1, e2
    return head


def test_mme_loss_matches_a_hand_computation():
    # row 0: labelled source (class 0); rows 1-2: unlabelled target; row 3: a labelled target shot (class 1)
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, -100, -100, 1])
    domains = torch.tensor([0, 1, 1, 1])
    unlabelled = (domains == 1) & (labels == -100)
    loss, ce, entropy = _head(0.5)(features, labels, unlabelled, entropy_weight=0.1)
    # cosine / T = 2·cos: row 0 → (2, 0), row 1 → (0, 2), row 2 → (√2, √2), row 3 → (0, 2)
    ce_hand = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-2))) / 2  # both labelled rows: margin 2
    p = 1 / (1 + math.exp(2))  # row 1: softmax((0, 2)) = (p, 1 - p)
    h1 = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    h2 = math.log(2)  # row 2: equal similarity to both prototypes
    entropy_hand = (h1 + h2) / 2
    assert ce.item() == pytest.approx(ce_hand, abs=1e-6)
    assert entropy.item() == pytest.approx(entropy_hand, abs=1e-6)
    assert loss.item() == pytest.approx(ce_hand - 0.1 * entropy_hand, abs=1e-6)


def test_the_classifier_ascends_the_entropy_and_the_features_descend_it():
    torch.manual_seed(0)
    features = torch.randn(6, 2, requires_grad=True)
    labels = torch.full((6,), -100)
    unlabelled = torch.ones(6, dtype=torch.bool)
    head = _head(1.0)
    loss, _, entropy = head(features, labels, unlabelled, entropy_weight=1.0, grl_lambda=1.0)
    loss.backward()  # loss = -H on unlabelled rows only
    prototype_grad = head.discriminator.prototypes.grad.clone()
    feature_grad = features.grad.clone()
    # the same entropy, differentiated directly
    prototypes = head.discriminator.prototypes.detach().clone().requires_grad_(True)
    plain = features.detach().clone().requires_grad_(True)
    logits = torch.nn.functional.normalize(plain, dim=-1) @ torch.nn.functional.normalize(prototypes, dim=-1).t()
    p = logits.softmax(-1)
    h = -(p * p.log()).sum(-1).mean()
    dh_dw, dh_df = torch.autograd.grad(h, (prototypes, plain))
    assert torch.allclose(prototype_grad, -dh_dw, atol=1e-6)  # descending -H raises H w.r.t. the prototypes
    assert torch.allclose(feature_grad, dh_df, atol=1e-6)  # the GRL flips it: the features lower H
    assert entropy.item() == pytest.approx(h.item(), abs=1e-6)


def test_only_unlabelled_target_rows_enter_the_entropy_and_only_labelled_rows_the_prototype_loss():
    head = _head(0.5)
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([1, -100])
    _, ce, entropy = head(features, labels, torch.tensor([False, False]), entropy_weight=0.1)
    assert entropy.item() == 0.0  # no unlabelled target row: an exact 0
    assert ce.item() == pytest.approx(math.log(1 + math.exp(2)), abs=1e-6)  # row 0 labelled 1, margin -2
    _, ce, _ = minimax_entropy_loss(torch.zeros(2, 2), torch.tensor([-100, -100]), torch.tensor([True, True]),
                                    torch.zeros(2, 2, requires_grad=True), 0.1)
    assert ce.item() == 0.0


def test_mme_is_registered_and_its_settings_come_from_method_settings():
    method = get_method("mme")
    assert method.domain_head.kind == "prototype"
    args = DomainAdaptationArguments(output_dir="unused", method="mme", report_to="none",
                                     method_settings="temperature=0.1,entropy_weight=0.3")
    objective = AlignmentObjective.from_arguments(args)
    settings = objective.settings_of("mme")
    assert (settings.temperature, settings.entropy_weight) == (0.1, 0.3)
    assert objective.domain_head_kind == "prototype"
    with pytest.raises(ValueError, match="temperature must be positive"):
        PrototypeClassifier(4, 2, 0.0)


def test_a_model_trains_with_mme_and_reloads_its_prototypes(tmp_path):
    from hf_transfer.trainer import DomainAdaptationTrainer

    objective = AlignmentObjective.for_method("mme", temperature=0.1)
    model = build_model(objective=objective)
    assert isinstance(model.domain_loss, MinimaxEntropyHead)
    source, target = make_domain(12, seed=1), make_domain(12, shift=1.0, seed=2)
    trainer = DomainAdaptationTrainer(model=model, args=train_args(tmp_path, method="mme", max_steps=3,
                                                                 target_labels_per_class=1),
                                      source_dataset=source, target_dataset=target)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "mme_entropy" in h]
    assert len(logged) == 3 and all(h["mme_entropy"] > 0 for h in logged)
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = DomainAdaptationModel.from_pretrained(tmp_path / "saved", base_model=build_model().backbone.__class__(
        model.backbone.config))
    assert reloaded.domain_head_kind == "prototype"
    assert reloaded.domain_loss.discriminator.temperature == 0.1
    assert torch.equal(reloaded.domain_loss.discriminator.prototypes, model.domain_loss.discriminator.prototypes)
    assert reloaded.run_info.training["target_labels_per_class"] == 1


def test_mme_is_not_held_to_the_discriminator_collapse_bound():
    from hf_transfer.trainer import adversarial_weight

    assert adversarial_weight(AlignmentObjective.for_method("mme")) == 0.0
    assert adversarial_weight(AlignmentObjective.for_method("dann", weight=0.3)) == 0.3
