"""TENT (Wang et al. 2021): the mean prediction entropy, and what the method says it updates."""

import math

import pytest
import torch

from hf_transfer.alignment.registry import AlignmentBatch, get_method
from hf_transfer.alignment.tent import EntropyLoss, TentSettings, TentTerm


def test_entropy_matches_a_hand_computation():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    # H(½, ¼, ¼) = ½ log 2 + 2·¼ log 4 = 1.5 log 2; the uniform row: log 3
    assert EntropyLoss()(logits).item() == pytest.approx((1.5 * math.log(2) + math.log(3)) / 2, abs=1e-6)


def test_gradient_step_lowers_the_entropy_and_empty_batch_is_zero_in_graph():
    logits = torch.randn(4, 3, requires_grad=True)
    before = EntropyLoss()(logits)
    before.backward()
    with torch.no_grad():
        assert EntropyLoss()(logits - 0.5 * logits.grad) < before
    empty = torch.zeros(0, 3, requires_grad=True)
    out = EntropyLoss()(empty)
    assert out.item() == 0.0 and out.requires_grad


def test_term_reads_the_target_rows_only():
    method = get_method("tent")
    assert not method.needs_source and method.source_free.updates == "norm"
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.98, 0.01, 0.01]]))
    batch = AlignmentBatch(features=torch.zeros(2, 2), logits=logits, labels=None, domain_labels=torch.tensor([0, 1]))
    out = TentTerm(TentSettings())(batch)
    assert out.loss.item() == pytest.approx(-(0.98 * math.log(0.98) + 2 * 0.01 * math.log(0.01)), abs=1e-5)
