"""Planted candidates shared by the validator tests: a target with three clear clusters, and models on it.

``good`` predicts each cluster as its own class with confidence; ``collapsed`` predicts class 0
for every row with the same confidence; ``noisy`` gives scattered, unsure predictions unrelated
to the clusters. A label-free validator worth its name should rank ``good`` first, at least
against ``noisy``.
"""

from __future__ import annotations

import numpy as np

from hf_transfer.validators.base import ValidationInputs

NUM_CLASSES = 3
ROWS_PER_CLUSTER = 20


def target_clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features, cluster id): three tight, well-separated blobs in 8 dimensions."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(NUM_CLASSES), ROWS_PER_CLUSTER)
    features = 6.0 * np.eye(8)[cluster] + 0.3 * rng.standard_normal((len(cluster), 8))
    return features, cluster


def candidates(seed: int = 0) -> dict[str, ValidationInputs]:
    """The three planted candidates on the same target features."""
    rng = np.random.default_rng(seed + 1)
    features, cluster = target_clusters(seed)
    n = len(cluster)
    logits = {
        "good": 8.0 * np.eye(NUM_CLASSES)[cluster] + 0.1 * rng.standard_normal((n, NUM_CLASSES)),
        "collapsed": 8.0 * np.eye(NUM_CLASSES)[np.zeros(n, dtype=int)] + 0.1 * rng.standard_normal((n, NUM_CLASSES)),
        "noisy": 2.0 * rng.standard_normal((n, NUM_CLASSES)),
    }
    return {name: ValidationInputs(target_logits=z, target_features=features) for name, z in logits.items()}
