"""SAR (Niu et al. 2023): reliable-sample entropy, SAM's perturbation and the model recovery."""

import math

import pytest
import torch

from hf_transfer.alignment.registry import AlignmentBatch, get_method
from hf_transfer.alignment.sar import ReliableEntropyLoss, SarSettings, SarTerm, reset_threshold, sam_perturbation


def _entropy(p):
    return -sum(q * math.log(q) for q in p)


def test_only_rows_below_the_margin_count():
    confident, unsure = [0.9, 0.05, 0.05], [0.4, 0.3, 0.3]
    assert _entropy(confident) < 0.4 * math.log(3) < _entropy(unsure)  # E0 = 0.4 log 3 = 0.439
    logits = torch.log(torch.tensor([confident, unsure, confident]))
    loss, kept = ReliableEntropyLoss(0.4)(logits)
    assert kept.tolist() == [True, False, True]
    assert loss.item() == pytest.approx(_entropy(confident), abs=1e-6)
    # SAM's second pass keeps only rows reliable in the first as well
    loss, kept = ReliableEntropyLoss(0.4)(logits, keep=torch.tensor([False, True, True]))
    assert kept.tolist() == [False, False, True]
    with pytest.raises(ValueError, match="margin must be > 0"):
        ReliableEntropyLoss(0.0)


def test_no_reliable_row_gives_zero_in_the_graph():
    logits = torch.zeros(2, 3, requires_grad=True)  # uniform: entropy log 3 > E0
    loss, kept = ReliableEntropyLoss()(logits)
    assert loss.item() == 0.0 and loss.requires_grad and not kept.any()


def test_sam_perturbation_is_rho_times_the_unit_gradient():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])
    eps = sam_perturbation([a, b], rho=0.05)
    assert eps[0].item() == pytest.approx(0.05 * 3 / 5) and eps[1].item() == pytest.approx(0.05 * 4 / 5)


def test_recovery_follows_the_moving_average():
    term = SarTerm(SarSettings(reset_constant=0.2))
    assert not term.should_reset(0.5)  # e = 0.5
    assert not term.should_reset(0.0, reliable_rows=0)  # no reliable row: average unchanged
    assert term.moving_average == 0.5
    assert not term.should_reset(0.1)  # e = 0.9·0.5 + 0.1·0.1 = 0.46
    assert term.moving_average == pytest.approx(0.46)
    term.moving_average = 0.21
    assert term.should_reset(0.1)  # 0.9·0.21 + 0.01 = 0.199 < 0.2
    assert term.moving_average is None
    assert not SarTerm(SarSettings(reset_constant=0.0)).should_reset(0.0)


def test_the_default_recovery_threshold_scales_with_the_number_of_classes():
    settings = SarSettings()
    assert reset_threshold(settings, 1000) == pytest.approx(0.2)  # the paper's, on ImageNet
    assert reset_threshold(settings, 10) == pytest.approx(0.2 * math.log(10) / math.log(1000))  # 0.0667
    assert reset_threshold(SarSettings(reset_constant=0.2), 10) == 0.2
    # a confident 10-class model (reliable rows at 0.15 nats) is not "collapsed" by default; it was at 0.2
    confident = AlignmentBatch(features=torch.zeros(1, 2), logits=torch.zeros(1, 10), labels=None,
                               domain_labels=torch.ones(1, dtype=torch.long))
    for settings, resets in ((SarSettings(), False), (SarSettings(reset_constant=0.2), True)):
        term = SarTerm(settings)
        term(confident)  # the term learns K = 10 from the batch
        assert term.should_reset(0.15) is resets  # the moving average starts at 0.15


def test_term_is_registered_as_sharpness_aware_and_source_free():
    method = get_method("sar")
    assert not method.needs_source and method.source_free.sharpness_aware and method.source_free.updates == "norm"
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]]))
    batch = AlignmentBatch(features=torch.zeros(2, 2), logits=logits, labels=None, domain_labels=torch.ones(2, dtype=torch.long))
    out = SarTerm(SarSettings())(batch)
    assert out.loss.item() == pytest.approx(_entropy([0.9, 0.05, 0.05]), abs=1e-6)
    assert out.logs["sar_reliable_fraction"].item() == 0.5
    with pytest.raises(ValueError, match="rho and reset_constant"):
        SarTerm(SarSettings(rho=-1.0))
