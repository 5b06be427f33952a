"""Information maximisation: hand-computed value, its sign, and that it sees a collapse entropy misses."""

import math

import numpy as np
import pytest

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.im import InformationMaximization
from tests.validator_candidates import candidates


def test_im_by_hand_mean_entropy_minus_entropy_of_the_mean():
    # rows [1/2, 1/2] and [1, 0]: mean entropy ln2 / 2; mean prediction [3/4, 1/4]
    logits = np.log(np.array([[0.5, 0.5], [1.0, 1e-300]]))
    marginal = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = math.log(2) / 2 - marginal
    assert InformationMaximization()(ValidationInputs(target_logits=logits)) == pytest.approx(expected, abs=1e-9)
    assert expected < 0  # the sign: a loss, negative mutual information


def test_confident_rows_spread_evenly_reach_minus_log_k_and_a_collapse_reaches_zero():
    spread = 200.0 * np.eye(4)[np.arange(8) % 4]
    collapsed = 200.0 * np.eye(4)[np.zeros(8, dtype=int)]
    im = InformationMaximization()
    assert im(ValidationInputs(target_logits=spread)) == pytest.approx(-math.log(4), abs=1e-9)
    assert im(ValidationInputs(target_logits=collapsed)) == pytest.approx(0.0, abs=1e-9)
    assert im(ValidationInputs(target_logits=np.zeros((8, 4)))) == pytest.approx(0.0, abs=1e-12)


def test_prefers_the_good_candidate_over_both_collapsed_and_noisy():
    validator = InformationMaximization()
    scored = {k: validator(v) for k, v in candidates().items()}
    assert not validator.higher_is_better
    assert validator.prefers(scored["good"], scored["collapsed"])
    assert validator.prefers(scored["good"], scored["noisy"])
    assert scored["good"] < -1.0  # near -ln 3 = -1.0986


def test_needs_target_logits():
    with pytest.raises(ValueError, match="'im' validator needs target_logits"):
        InformationMaximization()(ValidationInputs())
