"""MK-MMD (DAN): the estimators against hand computations, and the registered method end to end."""

import math

import pytest
import torch

from hf_transfer.alignment import AlignmentObjective, available_methods
from hf_transfer.alignment.mmd import (
    MultipleKernelMaximumMeanDiscrepancy,
    gaussian_kernel_bandwidths,
    median_heuristic,
    mmd_squared,
)
from tests.conftest import build_model, make_domain, train_args
from tests.test_modeling import _batch


def test_unbiased_estimate_matches_a_hand_computation():
    # 1-D source {0, 1}, target {2, 3}: pooled squared distances 1,1,1,4,4,9 -> median 2.5 = σ².
    source, target = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    assert median_heuristic(torch.cat([source, target])).item() == pytest.approx(2.5)
    k = lambda d2: math.exp(-d2 / 5.0)  # exp(-d² / 2σ²)
    within = k(1.0)  # one off-diagonal pair in each domain
    across = (k(4.0) + k(9.0) + k(1.0) + k(4.0)) / 4
    expected = within + within - 2 * across
    loss = MultipleKernelMaximumMeanDiscrepancy(kernel_num=1)(source, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bandwidth_family_and_the_linear_estimator_by_hand():
    assert gaussian_kernel_bandwidths(torch.tensor(2.0), kernel_num=5, kernel_mul=2.0).tolist() == [0.5, 1, 2, 4, 8]
    source, target = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [4.0]])
    bandwidths = torch.tensor([1.0, 3.0])  # σ² values; the kernel averages exp(-d²/2σ²) over them
    k = lambda d2: (math.exp(-d2 / 2.0) + math.exp(-d2 / 6.0)) / 2
    # one quadruple: k(x1,x2) + k(y1,y2) - k(x1,y2) - k(x2,y1)
    expected = k(1.0) + k(4.0) - k(16.0) - k(1.0)
    assert mmd_squared(source, target, bandwidths, linear=True).item() == pytest.approx(expected, rel=1e-6)


def test_identical_distributions_give_about_zero_and_shifted_ones_do_not():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=generator), torch.randn(400, 8, generator=generator)
    same = MultipleKernelMaximumMeanDiscrepancy()(a, b).item()
    shifted = MultipleKernelMaximumMeanDiscrepancy()(a, b + 1.0).item()
    assert abs(same) < 2e-3 and shifted > 50 * abs(same)
    assert abs(MultipleKernelMaximumMeanDiscrepancy(linear=True)(a, b).item()) < 0.02


def test_the_registered_method_adds_its_loss_and_moves_the_features(tmp_path):
    from hf_transfer.trainer import DomainAdaptationTrainer

    assert "mmd" in available_methods()
    objective = AlignmentObjective.from_arguments(train_args(tmp_path, method="mmd", domain_loss_weight=0.5,
                                                             method_settings="kernel_num=3"))
    assert objective.weight_of("mmd") == 0.5 and objective.settings_of("mmd").kernel_num == 3
    model = build_model(objective="mmd").eval()
    pixels, labels, domains = _batch()
    out = model(pixel_values=pixels, labels=labels, domain_labels=domains, objective=objective)
    features = model.extract_features(pixel_values=pixels)
    expected = MultipleKernelMaximumMeanDiscrepancy(kernel_num=3)(features[domains == 0], features[domains == 1])
    assert torch.allclose(out.alignment_logs["mmd_loss"], expected, atol=1e-6)
    assert torch.allclose(out.loss, out.classification_loss + 0.5 * expected, atol=1e-6)

    trainer = DomainAdaptationTrainer(
        model=build_model(objective="mmd"), args=train_args(tmp_path, method="mmd", max_steps=3),
        source_dataset=make_domain(8), target_dataset=make_domain(8, shift=2.0, labelled=False),
    )
    trainer.train()
    logged = [entry["mmd_loss"] for entry in trainer.state.log_history if "mmd_loss" in entry]
    assert len(logged) == 3 and logged[0] > 0
    with pytest.raises(ValueError, match="Unknown setting.*'bandwidth'.*kernel_mul"):
        train_args(tmp_path, method="mmd", method_settings={"bandwidth": 1.0})
