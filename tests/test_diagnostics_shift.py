"""The shift measures on planted shifts: the MMD permutation test, the class mix and the verdict in words."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_transfer.alignment.mmd import MultipleKernelMaximumMeanDiscrepancy
from hf_transfer.diagnostics.shift import (
    class_shares,
    feature_mmd,
    measure_shift,
    mmd_permutation_test,
    total_variation,
)


def _samples(shift: float, n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8)), rng.normal(size=(n, 8)) + shift


def test_mmd_is_the_training_estimator_and_its_permutation_test_separates_the_planted_shifts():
    same_source, same_target = _samples(0.0)
    far_source, far_target = _samples(1.0)
    for source, target in ((same_source, same_target), (far_source, far_target)):
        expected = MultipleKernelMaximumMeanDiscrepancy()(torch.tensor(source).float(), torch.tensor(target).float())
        assert feature_mmd(source, target) == pytest.approx(float(expected), rel=1e-5, abs=1e-7)
        assert mmd_permutation_test(source, target, permutations=50)[0] == pytest.approx(float(expected), rel=1e-4,
                                                                                             abs=1e-6)
    same_mmd, same_p = mmd_permutation_test(same_source, same_target, permutations=100)
    far_mmd, far_p = mmd_permutation_test(far_source, far_target, permutations=100)
    assert abs(same_mmd) < 0.02 and same_p > 0.05
    assert far_mmd > 10 * abs(same_mmd) and far_p == pytest.approx(1 / 101)  # no permutation reaches it


def test_class_mix_helpers():
    assert class_shares([0, 0, 1, -100], 3) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert total_variation([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5)


def test_verdicts_in_words_for_identical_and_shifted_domains():
    same = measure_shift(*_samples(0.0), permutations=100)
    assert same.level == "small" and not same.likely_to_matter and same.a_distance < 0.5
    assert "unlikely to matter" in same.verdict()
    far = measure_shift(*_samples(1.5), permutations=100)
    assert far.level == "large" and far.likely_to_matter and far.a_distance > 1.5
    assert "likely to matter" in far.verdict() and "significant difference" in far.verdict()

    # a source-trained head that predicts one class for every target example
    source, target = _samples(0.0)
    labels = np.arange(120) % 2
    source_logits = np.stack([1.0 - labels, labels], axis=1) * 3.0  # right on every source row
    target_logits = np.tile([0.0, 4.0], (120, 1))
    broken = measure_shift(source, target, source_labels=labels, source_logits=source_logits,
                           target_logits=target_logits, class_names=["cat", "dog"], permutations=20)
    assert broken.source_accuracy == 1.0 and broken.class_mix_gap == pytest.approx(0.5)
    assert broken.likely_to_matter  # small covariate shift, but the predictions collapse on the target
    assert "predicts one class ('dog') for 100% of the examples" in broken.verdict()
    assert "dog" in broken.format() and broken.to_dict()["level"] == "small"
    # the same with an untrained head: its class mix is called meaningless instead
    untrained = measure_shift(source, target, source_labels=labels, source_logits=target_logits[:120],
                              target_logits=target_logits, class_names=["cat", "dog"], permutations=20)
    assert "does not separate the classes even on the source" in untrained.verdict()
