"""ClassAMI: 1 on planted clusters matched by the predictions, about 0 for random predictions, sklearn's own AMI."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.class_ami import ClassAMI
from tests.validator_candidates import candidates, target_clusters


def test_perfect_agreement_with_planted_clusters_gives_one_whatever_the_class_ids():
    features, cluster = target_clusters()
    permuted = np.array([2, 0, 1])[cluster]  # classes named differently from the clusters
    logits = 5.0 * np.eye(3)[permuted]
    assert ClassAMI()(ValidationInputs(target_logits=logits, target_features=features)) == pytest.approx(1.0)


def test_random_predictions_give_about_zero():
    features, _ = target_clusters()
    random_logits = [np.random.default_rng(seed).standard_normal((60, 3)) for seed in range(3)]
    scores = [ClassAMI()(ValidationInputs(target_logits=z, target_features=features)) for z in random_logits]
    assert max(abs(s) for s in scores) < 0.1


def test_equals_sklearn_on_seeded_kmeans_with_half_the_predictions_wrong():
    rng = np.random.default_rng(3)
    features, cluster = target_clusters()
    predictions = np.where(rng.random(60) < 0.5, cluster, rng.integers(0, 3, 60))
    clusters = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(features)
    expected = adjusted_mutual_info_score(predictions, clusters)
    got = ClassAMI()(ValidationInputs(target_logits=np.eye(3)[predictions], target_features=features))
    assert got == pytest.approx(expected)
    assert 0.1 < got < 0.9


def test_prefers_the_good_candidate_over_both_collapsed_and_noisy():
    validator = ClassAMI()
    scored = {k: validator(v) for k, v in candidates().items()}
    assert validator.higher_is_better
    assert scored["good"] == pytest.approx(1.0) and scored["collapsed"] == pytest.approx(0.0)
    assert validator.prefers(scored["good"], scored["noisy"])


def test_needs_features_and_enough_rows():
    with pytest.raises(ValueError, match="'class_ami' validator needs target_features"):
        ClassAMI()(ValidationInputs(target_logits=np.ones((5, 3))))
    with pytest.raises(ValueError, match="at least that many target rows, got 2"):
        ClassAMI()(ValidationInputs(target_logits=np.ones((2, 3)), target_features=np.ones((2, 4))))
    with pytest.raises(ValueError, match="3 rows but target_features has 4"):
        ClassAMI()(ValidationInputs(target_logits=np.ones((3, 3)), target_features=np.ones((4, 4))))
