"""Minimum Class Confusion: the paper's maths, and its place in the model's loss and the Trainer's logs."""

import pytest
import torch

from hf_transfer.alignment import AlignmentObjective, MinimumClassConfusionLoss
from hf_transfer.training_args import DomainAdaptationArguments
from tests.conftest import build_model, make_domain
from tests.test_modeling import _batch


def _reference_mcc(logits, temperature):
    """Jin et al. 2020, written out row by row."""
    n, k = logits.shape
    p = torch.softmax(logits / temperature, dim=1)
    h = -(p * torch.log(p + 1e-12)).sum(1)
    w = 1 + torch.exp(-h)
    w = n * w / w.sum()
    c = sum(w[i] * torch.outer(p[i], p[i]) for i in range(n))
    c = c / c.sum(1, keepdim=True)
    return (c.sum() - torch.diagonal(c).sum()) / k


def test_mcc_matches_the_paper_formula():
    torch.manual_seed(0)
    logits = torch.randn(7, 4) * 3
    assert torch.allclose(MinimumClassConfusionLoss(2.5)(logits), _reference_mcc(logits, 2.5), atol=1e-6)


def test_confident_distinct_predictions_have_less_confusion_than_uncertain_ones():
    loss = MinimumClassConfusionLoss(temperature=1.0)
    confident = torch.eye(3) * 20  # each row sure of a different class
    uncertain = torch.zeros(3, 3)  # every row uniform
    assert loss(confident) < 1e-6
    assert torch.isclose(loss(uncertain), torch.tensor(2.0 / 3.0))  # each row of C̃ is uniform: (K-1)/K
    # its gradient pushes predictions apart: lower loss after one step on the logits
    logits = torch.randn(6, 3, requires_grad=True)
    before = loss(logits)
    before.backward()
    with torch.no_grad():
        after = loss(logits - 0.5 * logits.grad)
    assert after < before


def test_empty_batch_and_bad_temperature():
    logits = torch.zeros(0, 3, requires_grad=True)
    out = MinimumClassConfusionLoss()(logits)
    assert out.item() == 0.0 and out.requires_grad
    with pytest.raises(ValueError, match="temperature must be positive"):
        MinimumClassConfusionLoss(0.0)


def test_model_adds_weighted_mcc_of_the_target_rows_only():
    torch.manual_seed(0)
    model = build_model()
    model.eval()
    pixels, labels, domains = _batch()
    plain = model(pixel_values=pixels, labels=labels, domain_labels=domains)
    assert "mcc_loss" not in plain.alignment_logs
    dann_mcc = DomainAdaptationArguments(output_dir="unused", method="dann", mcc_loss_weight=0.5, report_to="none")
    with_mcc = model(pixel_values=pixels, labels=labels, domain_labels=domains,
                     objective=AlignmentObjective.from_arguments(dann_mcc))
    expected_mcc = MinimumClassConfusionLoss()(with_mcc.logits[4:])
    assert torch.allclose(with_mcc.alignment_logs["mcc_loss"], expected_mcc)
    assert torch.allclose(with_mcc.loss, plain.loss + 0.5 * expected_mcc, atol=1e-6)


def test_trainer_sets_and_logs_mcc(tmp_path):
    from hf_transfer.trainer import DomainAdaptationTrainer
    from hf_transfer.training_args import DomainAdaptationArguments

    torch.manual_seed(0)
    model = build_model()
    args = DomainAdaptationArguments(
        output_dir=str(tmp_path), method="mcc", mcc_loss_weight=0.3, mcc_temperature=2.0, max_steps=2, logging_steps=1,
        per_device_train_batch_size=4, report_to="none", save_strategy="no", disable_tqdm=True,
    )
    trainer = DomainAdaptationTrainer(model=model, args=args, source_dataset=make_domain(8), target_dataset=make_domain(8))
    assert trainer.objective.weight_of("mcc") == 0.3 and trainer.objective.settings_of("mcc").temperature == 2.0
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "mcc_loss" in entry]
    # three classes, barely trained: predictions share most of their mass, so the confusion is near (K-1)/K = 2/3
    assert logged and all(0.3 < entry["mcc_loss"] < 0.7 for entry in logged)
    assert model.run_info.objective["terms"] == [{"method": "mcc", "weight": 0.3, "settings": {"temperature": 2.0}}]
    with pytest.raises(ValueError, match="mcc_loss_weight must be >= 0"):
        DomainAdaptationArguments(output_dir=str(tmp_path), mcc_loss_weight=-1.0)


def test_method_mcc_defaults_to_weight_one_and_source_only_refuses_mcc(tmp_path):
    from hf_transfer.training_args import DomainAdaptationArguments

    def objective(**kwargs):
        return AlignmentObjective.from_arguments(DomainAdaptationArguments(output_dir=str(tmp_path), **kwargs))

    mcc = objective(method="mcc")
    assert mcc.weight_of("mcc") == 1.0 and mcc.weight_of("dann") == 0.0
    dann = objective(method="dann", domain_loss_weight=0.3)
    assert dann.weight_of("mcc") == 0.0 and dann.weight_of("dann") == 0.3
    assert objective(mcc_loss_weight=0.5).weight_of("mcc") == 0.5
    with pytest.raises(ValueError, match="use method 'mcc'"):
        DomainAdaptationArguments(output_dir=str(tmp_path), method="source_only", mcc_loss_weight=1.0)
