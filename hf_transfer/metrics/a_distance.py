"""Proxy A-distance: how well a fresh classifier can tell two domains' features apart.

Ben-David et al., *Analysis of Representations for Domain Adaptation*, NeurIPS 2007;
Ganin et al., JMLR 2016, §5.1.4. Train a domain classifier on half of the pooled features and
measure its error ``ε`` on the other half:

.. math::

    \\hat d_A = 2 (1 - 2 ε)

2 means the domains are perfectly separable, 0 means indistinguishable. It needs no target
labels, so it is a fair unsupervised diagnostic of what DANN does to the features.
"""

from __future__ import annotations

import numpy as np
import torch


def proxy_a_distance(source_features: torch.Tensor, target_features: torch.Tensor, *, seed: int = 0) -> float:
    """Proxy A-distance between two feature sets, with a linear (logistic regression) domain classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = torch.cat([source_features, target_features]).detach().float().cpu().numpy()
    y = np.concatenate([np.zeros(len(source_features)), np.ones(len(target_features))])
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    half = len(y) // 2
    if half == 0 or len(np.unique(y[:half])) < 2:
        raise ValueError("proxy_a_distance needs several examples of each domain.")
    scaler = StandardScaler().fit(x[:half])
    classifier = LogisticRegression(max_iter=2000).fit(scaler.transform(x[:half]), y[:half])
    error = 1.0 - classifier.score(scaler.transform(x[half:]), y[half:])
    return float(2.0 * (1.0 - 2.0 * error))
