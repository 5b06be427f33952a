"""Minimum Class Confusion: the paper's maths, and its place in the model's loss and the Trainer's logs."""

import pytest
import torch

from hf_transfer.alignment import MinimumClassConfusionLoss
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
    assert plain.mcc_loss is None
    model.mcc_loss_weight = 0.5
    with_mcc = model(pixel_values=pixels, labels=labels, domain_labels=domains)
    expected_mcc = MinimumClassConfusionLoss()(with_mcc.logits[4:])
    assert torch.allclose(with_mcc.mcc_loss, expected_mcc)
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
    assert model.mcc_loss_weight == 0.3 and model.mcc_loss.temperature == 2.0
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "mcc_loss" in entry]
    assert logged and all(0.0 <= entry["mcc_loss"] <= 1.0 for entry in logged)
    assert trainer._run_metadata()["mcc"] == {"weight": 0.3, "temperature": 2.0}
    with pytest.raises(ValueError, match="mcc_loss_weight must be >= 0"):
        DomainAdaptationArguments(output_dir=str(tmp_path), mcc_loss_weight=-1.0)


def test_method_mcc_defaults_to_weight_one_and_source_only_refuses_mcc(tmp_path):
    from hf_transfer.training_args import DomainAdaptationArguments

    mcc = DomainAdaptationArguments(output_dir=str(tmp_path), method="mcc")
    assert mcc.effective_mcc_loss_weight == 1.0 and mcc.effective_domain_loss_weight == 0.0
    dann = DomainAdaptationArguments(output_dir=str(tmp_path), method="dann", domain_loss_weight=0.3)
    assert dann.effective_mcc_loss_weight == 0.0 and dann.effective_domain_loss_weight == 0.3
    assert DomainAdaptationArguments(output_dir=str(tmp_path), mcc_loss_weight=0.5).effective_mcc_loss_weight == 0.5
    with pytest.raises(ValueError, match="use method 'mcc'"):
        DomainAdaptationArguments(output_dir=str(tmp_path), method="source_only", mcc_loss_weight=1.0)
