"""SND against a direct loop over pairs, a three-row case by hand, and its direction (and blind spot)."""

import math

import numpy as np
import pytest

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.snd import SoftNeighborhoodDensity
from tests.validator_candidates import candidates


def _reference_snd(vectors, temperature=0.05):
    """Saito et al. 2021 written out: cosine to every other row, softmax over them, entropy, mean."""
    n = len(vectors)
    total = 0.0
    for i in range(n):
        sims = []
        for j in range(n):
            if j != i:
                dot = sum(a * b for a, b in zip(vectors[i], vectors[j]))
                norm_i = math.sqrt(sum(a * a for a in vectors[i]))
                norm_j = math.sqrt(sum(b * b for b in vectors[j]))
                sims.append(dot / (norm_i * norm_j) / temperature)
        top = max(sims)
        exps = [math.exp(s - top) for s in sims]
        probs = [e / sum(exps) for e in exps]
        total += -sum(p * math.log(p) for p in probs if p > 0)
    return total / n


def test_matches_a_direct_loop_on_softmax_predictions():
    rng = np.random.default_rng(0)
    logits = 2 * rng.standard_normal((9, 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got = SoftNeighborhoodDensity()(ValidationInputs(target_logits=logits))
    assert got == pytest.approx(_reference_snd(probabilities.tolist()), rel=1e-9)


def test_matches_a_direct_loop_on_features_whatever_the_chunk_size():
    features = np.random.default_rng(1).standard_normal((10, 5))
    expected = _reference_snd(features.tolist(), temperature=0.1)
    for chunk_size in (1, 3, 1024):
        validator = SoftNeighborhoodDensity(temperature=0.1, representation="features", chunk_size=chunk_size)
        assert validator(ValidationInputs(target_features=features)) == pytest.approx(expected, rel=1e-9)


def test_three_rows_by_hand():
    # rows 0 and 1 coincide, row 2 is orthogonal to both. Rows 0 and 1 see similarities (1, 0) / 0.05:
    # softmax (1/(1+e^-20), e^-20/(1+e^-20)). Row 2 sees (0, 0): uniform, entropy ln 2.
    features = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    q = math.exp(-20) / (1 + math.exp(-20))
    near = -((1 - q) * math.log(1 - q) + q * math.log(q))
    expected = (2 * near + math.log(2)) / 3
    got = SoftNeighborhoodDensity(representation="features")(ValidationInputs(target_features=features))
    assert got == pytest.approx(expected, rel=1e-9)


def test_clustered_confident_predictions_score_higher_than_scattered_ones():
    validator = SoftNeighborhoodDensity()
    scored = {k: validator(v) for k, v in candidates().items()}
    assert validator.higher_is_better
    assert validator.prefers(scored["good"], scored["noisy"])
    # each good row has 19 equally near neighbours (its own cluster), so SND is about ln 19
    assert scored["good"] == pytest.approx(math.log(19), abs=0.01)


def test_blind_spot_a_collapse_reaches_the_maximum_log_n_minus_one():
    """Documented limitation (Saito et al.): identical predictions everywhere look maximally dense."""
    scored = {k: SoftNeighborhoodDensity()(v) for k, v in candidates().items()}
    assert scored["collapsed"] > scored["good"]
    assert scored["collapsed"] == pytest.approx(math.log(59), abs=0.01)


def test_needs_its_representation_and_two_rows():
    with pytest.raises(ValueError, match="'snd' validator needs target_logits"):
        SoftNeighborhoodDensity()(ValidationInputs(target_features=np.ones((3, 2))))
    with pytest.raises(ValueError, match="'snd' validator needs target_features"):
        SoftNeighborhoodDensity(representation="features")(ValidationInputs(target_logits=np.ones((3, 2))))
    with pytest.raises(ValueError, match="at least 2 rows"):
        SoftNeighborhoodDensity()(ValidationInputs(target_logits=np.ones((1, 2))))
    with pytest.raises(ValueError, match="'predictions' or 'features'"):
        SoftNeighborhoodDensity(representation="logits")
