"""DEV: the control-variate risk by hand, identical domains give the plain source risk, the weights follow the shift."""

import math

import numpy as np
import pytest

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.dev import DeepEmbeddedValidation, cross_entropy_per_row, dev_risk


def test_cross_entropy_per_row_by_hand():
    logits = np.array([[math.log(3), 0.0], [0.0, 0.0]])  # softmax (3/4, 1/4) and (1/2, 1/2)
    np.testing.assert_allclose(cross_entropy_per_row(logits, np.array([1, 0])), [math.log(4), math.log(2)])


def test_dev_risk_with_planted_weights_by_hand():
    # w = (3, 1), l = (1, 2): wl = (3, 2), mean 2.5; Cov(wl, w) = 1, Var(w) = 2 (ddof 1), so eta = -1/2
    # and the risk is 2.5 + (-1/2)(2) - (-1/2) = 2.
    assert dev_risk(np.array([3.0, 1.0]), np.array([1.0, 2.0])) == pytest.approx(2.0)


def test_dev_risk_with_unit_weights_is_the_plain_mean_loss():
    losses = np.array([0.2, 1.5, 0.7, 3.0])
    assert dev_risk(np.ones(4), losses) == pytest.approx(losses.mean())


def test_dev_risk_equals_the_weighted_mean_when_the_weights_average_one():
    # the control variate w has mean 1 here, so eta * (mean(w) - 1) vanishes whatever eta is
    weights, losses = np.array([0.5, 1.5, 2.0, 0.0]), np.array([1.0, 2.0, 0.5, 4.0])
    assert dev_risk(weights, losses) == pytest.approx(np.mean(weights * losses))


def test_dev_risk_refuses_negative_weights_and_mismatched_lengths():
    with pytest.raises(ValueError, match="non-negative"):
        dev_risk(np.array([1.0, -1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one weight per loss"):
        dev_risk(np.ones(3), np.ones(2))


def _source(seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((40, 4))
    logits = 2 * rng.standard_normal((40, 3))
    labels = rng.integers(0, 3, 40)
    return features, logits, labels


def test_identical_source_and_target_give_the_plain_source_risk():
    features, logits, labels = _source()
    inputs = ValidationInputs(
        source_logits=logits, source_labels=labels, source_features=features, target_features=features.copy()
    )
    validator = DeepEmbeddedValidation()
    np.testing.assert_allclose(validator.importance_weights(features, features.copy()), 1.0, atol=1e-3)
    expected = np.mean([-math.log(math.exp(z[y]) / sum(math.exp(v) for v in z)) for z, y in zip(logits, labels)])
    assert validator(inputs) == pytest.approx(expected, rel=1e-3)


def test_risk_follows_the_target_to_where_the_model_errs():
    """The model predicts class 0 everywhere: right on source cluster A, wrong on cluster B."""
    rng = np.random.default_rng(0)
    centre_a, centre_b = np.array([-3.0, 0.0]), np.array([3.0, 0.0])
    source = np.concatenate(
        [centre_a + 0.3 * rng.standard_normal((20, 2)), centre_b + 0.3 * rng.standard_normal((20, 2))]
    )
    labels = np.repeat([0, 1], 20)
    logits = np.tile([3.0, -3.0], (40, 1))
    plain = cross_entropy_per_row(logits, labels).mean()

    def risk(target):
        return DeepEmbeddedValidation()(
            ValidationInputs(source_logits=logits, source_labels=labels, source_features=source, target_features=target)
        )

    near_a = risk(centre_a + 0.3 * rng.standard_normal((30, 2)))
    near_b = risk(centre_b + 0.3 * rng.standard_normal((30, 2)))
    assert near_a < 0.5 < plain < near_b  # loss on A is ln(1 + e^-6) ≈ 0.0025, on B about 6
    assert DeepEmbeddedValidation().prefers(near_a, near_b)


def test_skips_unlabelled_source_rows():
    features, logits, labels = _source()
    with_gaps = labels.copy()
    with_gaps[::4] = -100
    keep = with_gaps != -100
    full = DeepEmbeddedValidation()(
        ValidationInputs(
            source_logits=logits, source_labels=with_gaps, source_features=features, target_features=features.copy()
        )
    )
    kept_only = DeepEmbeddedValidation()(
        ValidationInputs(
            source_logits=logits[keep],
            source_labels=labels[keep],
            source_features=features[keep],
            target_features=features.copy(),
        )
    )
    assert full == pytest.approx(kept_only)


def test_needs_every_field_and_names_the_missing_one():
    features, logits, labels = _source()
    with pytest.raises(ValueError, match="'dev' validator needs target_features"):
        DeepEmbeddedValidation()(ValidationInputs(source_logits=logits, source_labels=labels, source_features=features))
    with pytest.raises(ValueError, match="'dev' validator needs source_features"):
        DeepEmbeddedValidation()(ValidationInputs(source_logits=logits, source_labels=labels, target_features=features))
    with pytest.raises(ValueError, match="dimensions"):
        DeepEmbeddedValidation()(
            ValidationInputs(
                source_logits=logits, source_labels=labels, source_features=features, target_features=features[:, :2]
            )
        )
