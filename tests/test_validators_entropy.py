"""Target prediction entropy: hand-computed values, lower is better, and its collapse blind spot."""

import math

import numpy as np
import pytest

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.entropy import Entropy
from tests.validator_candidates import candidates


def test_mean_entropy_of_known_distributions():
    # softmax(log p) = p, so these rows are exactly [1/2, 1/2], [1/4]*4 and [1, 0, 0, 0]
    logits = np.log(np.array([[0.5, 0.5, 1e-300, 1e-300], [0.25] * 4, [1.0, 1e-300, 1e-300, 1e-300]]))
    expected = (math.log(2) + math.log(4) + 0.0) / 3
    assert Entropy()(ValidationInputs(target_logits=logits)) == pytest.approx(expected, abs=1e-9)


def test_uniform_predictions_give_log_k():
    assert Entropy()(ValidationInputs(target_logits=np.zeros((5, 7)))) == pytest.approx(math.log(7))


def test_confident_candidate_beats_noisy_one_in_the_lower_is_better_direction():
    validator, scored = Entropy(), {k: Entropy()(v) for k, v in candidates().items()}
    assert not validator.higher_is_better
    assert validator.prefers(scored["good"], scored["noisy"])


def test_blind_spot_a_confident_collapse_scores_as_well_as_the_good_candidate():
    """Documented limitation: entropy sees confidence, not diversity."""
    scored = {k: Entropy()(v) for k, v in candidates().items()}
    assert scored["collapsed"] == pytest.approx(scored["good"], abs=2e-3)
    assert scored["noisy"] > 50 * scored["good"]


def test_needs_target_logits():
    with pytest.raises(ValueError, match="'entropy' validator needs target_logits"):
        Entropy()(ValidationInputs(target_features=np.ones((3, 2))))
