"""BNM: the nuclear norm over the batch size against torch's singular values, and hand values."""

import math

import numpy as np
import pytest
import torch

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.bnm import BatchNuclearNorm
from tests.validator_candidates import candidates


def test_matches_sum_of_torch_singular_values_over_rows():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(11, 4, generator=generator, dtype=torch.float64)
    expected = torch.linalg.svdvals(torch.softmax(logits, dim=1)).sum().item() / 11
    assert BatchNuclearNorm()(ValidationInputs(target_logits=logits)) == pytest.approx(expected, rel=1e-10)


def test_hand_values_for_spread_collapsed_and_uniform_predictions():
    n, k = 12, 3
    bnm = BatchNuclearNorm()
    spread = 200.0 * np.eye(k)[np.arange(n) % k]  # K orthogonal blocks of n/K one-hot rows: σ = sqrt(n/K) each
    collapsed = 200.0 * np.eye(k)[np.zeros(n, dtype=int)]  # rank one, σ = sqrt(n)
    uniform = np.zeros((n, k))  # (1/K) ones: rank one, σ = sqrt(n K) / K
    assert bnm(ValidationInputs(target_logits=spread)) == pytest.approx(math.sqrt(k / n))
    assert bnm(ValidationInputs(target_logits=collapsed)) == pytest.approx(1 / math.sqrt(n))
    assert bnm(ValidationInputs(target_logits=uniform)) == pytest.approx(math.sqrt(n * k) / k / n)


def test_prefers_the_good_candidate_over_both_collapsed_and_noisy():
    validator = BatchNuclearNorm()
    scored = {k: validator(v) for k, v in candidates().items()}
    assert validator.higher_is_better
    assert validator.prefers(scored["good"], scored["collapsed"])
    assert validator.prefers(scored["good"], scored["noisy"])


def test_needs_target_logits():
    with pytest.raises(ValueError, match="'bnm' validator needs target_logits"):
        BatchNuclearNorm()(ValidationInputs(source_logits=np.ones((2, 2))))
