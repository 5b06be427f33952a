"""Deep embedded validation (DEV): the source's validation risk, re-weighted to look like the target.

You et al., *Towards Accurate Model Selection in Deep Unsupervised Domain Adaptation*, ICML 2019.
Under covariate shift the target risk is an expectation over the source with the density ratio
:math:`w(x) = p_T(x) / p_S(x)` as weight. DEV estimates that ratio in the model's feature space
with a domain classifier :math:`d(x) = P(\\text{target} \\mid x)` trained on source-vs-target
features (here a seeded, standardised ``sklearn`` ``LogisticRegression``),

.. math::

    w_i = \\frac{n_S}{n_T} \\cdot \\frac{d(x_i)}{1 - d(x_i)},

for each source validation row :math:`i` with per-row loss :math:`\\ell_i` (cross-entropy of
its logits against its label). The importance-weighted risk :math:`\\frac1n \\sum_i w_i \\ell_i`
is unbiased but has a high variance when some weights are large, so DEV adds the control
variate :math:`w` (whose expectation is 1):

.. math::

    \\eta = -\\frac{\\widehat{\\mathrm{Cov}}(w\\ell, w)}{\\widehat{\\mathrm{Var}}(w)}, \\qquad
    \\mathcal R_{\\mathrm{DEV}} = \\overline{w\\ell} + \\eta\\, \\overline{w} - \\eta,

with unbiased (``ddof=1``) sample moments; when the weights are all equal (the domains cannot be
told apart) :math:`\\eta = 0` and the risk is the plain mean source loss. **Lower is better.**
Being a variance-reduced estimate, not a loss, it can fall below 0 when the weights are extreme.

Choices made here. A domain classifier on a few hundred rows of 768-d features separates
*any* two samples, shifted or not, and its weights then say nothing about the shift
(pytorch-adapt's DEV, adapted from the authors' code, tunes the discriminator's weight decay on
held-out domain accuracy for this reason). So the inverse regularisation strength :math:`C` is
chosen from ``Cs`` by seeded ``n_splits``-fold cross-validated log-loss (ties go to the
strongest regularisation), and the classifier is refitted with it on all rows: when the domains
cannot be told apart the chosen :math:`C` is tiny, :math:`d(x) \\approx n_T / (n_S + n_T)` and
every weight is about 1. :math:`d(x)` is clipped to ``[clip, 1 - clip]`` so one confidently
placed row cannot produce an infinite weight. Source rows labelled ``-100`` are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import IGNORE_INDEX, ValidationInputs, Validator


def dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """DEV's control-variate estimate of the target risk from importance weights and per-row losses."""
    weights = np.asarray(weights, dtype=np.float64).ravel()
    losses = np.asarray(losses, dtype=np.float64).ravel()
    if weights.shape != losses.shape:
        raise ValueError(f"dev_risk needs one weight per loss, got {weights.shape} and {losses.shape}.")
    if len(weights) < 2:
        raise ValueError("dev_risk needs at least 2 source rows to estimate its control variate.")
    if (weights < 0).any() or (losses < 0).any():
        raise ValueError("Importance weights and losses must be non-negative.")
    weighted = weights * losses
    variance = np.var(weights, ddof=1)
    eta = 0.0 if variance == 0 else -np.cov(weighted, weights, ddof=1)[0, 1] / variance
    return float(weighted.mean() + eta * weights.mean() - eta)


def cross_entropy_per_row(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """:math:`-\\log \\mathrm{softmax}(z_i)_{y_i}` for each row, computed with log-sum-exp."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1))
    return log_normaliser - shifted[np.arange(len(labels)), labels]


class DeepEmbeddedValidation(Validator):
    """Importance-weighted source validation loss with DEV's control variate; lower is better."""

    name = "dev"
    higher_is_better = False
    required = ("source_logits", "source_labels", "source_features", "target_features")

    def __init__(
        self,
        seed: int = 0,
        n_splits: int = 5,
        Cs: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
        clip: float = 1e-4,
        max_iter: int = 1000,
    ) -> None:
        if n_splits < 2:
            raise ValueError(f"DEV cross-validates its domain classifier; n_splits must be >= 2, got {n_splits}.")
        if not Cs or min(Cs) <= 0:
            raise ValueError(f"Cs must be positive regularisation strengths, got {Cs}.")
        if not 0 < clip < 0.5:
            raise ValueError(f"clip must lie in (0, 0.5), got {clip}.")
        self.seed = seed
        self.n_splits = n_splits
        self.Cs = tuple(sorted(float(c) for c in Cs))
        self.clip = clip
        self.max_iter = max_iter

    def importance_weights(self, source_features: np.ndarray, target_features: np.ndarray) -> np.ndarray:
        """:math:`w_i = (n_S/n_T)\\, d(x_i)/(1-d(x_i))` for each source row, :math:`C` chosen by cross-validation."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n_source, n_target = len(source_features), len(target_features)
        if source_features.shape[1] != target_features.shape[1]:
            raise ValueError(
                f"source_features has {source_features.shape[1]} dimensions but target_features has "
                f"{target_features.shape[1]}."
            )
        n_splits = min(self.n_splits, n_source, n_target)
        if n_splits < 2:
            raise ValueError(
                f"DEV's domain classifier needs at least 2 source and 2 target rows, got {n_source} and {n_target}."
            )
        x = np.concatenate([source_features, target_features])
        y = np.concatenate([np.zeros(n_source, dtype=np.int64), np.ones(n_target, dtype=np.int64)])

        def classifier(c: float):
            return make_pipeline(
                StandardScaler(), LogisticRegression(C=c, max_iter=self.max_iter, random_state=self.seed)
            )

        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.seed)
        best_c, best_score = self.Cs[0], -np.inf
        for c in self.Cs:  # strongest regularisation first: a later C must do strictly better
            score = cross_val_score(classifier(c), x, y, cv=folds, scoring="neg_log_loss").mean()
            if score > best_score:
                best_c, best_score = c, score
        p_target = classifier(best_c).fit(x, y).predict_proba(source_features)[:, 1]
        p_target = np.clip(p_target, self.clip, 1.0 - self.clip)
        return (n_source / n_target) * p_target / (1.0 - p_target)

    def compute(self, inputs: ValidationInputs) -> float:
        logits = inputs.require("source_logits", self.name)
        labels = inputs.require("source_labels", self.name)
        source_features = inputs.require("source_features", self.name)
        target_features = inputs.require("target_features", self.name)
        if not len(logits) == len(labels) == len(source_features):
            raise ValueError(
                f"source_logits, source_labels and source_features must have the same rows, got "
                f"{len(logits)}, {len(labels)} and {len(source_features)}."
            )
        keep = labels != IGNORE_INDEX
        logits, labels, source_features = logits[keep], labels[keep], source_features[keep]
        if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1]):
            raise ValueError(f"source_labels must be class ids in [0, {logits.shape[1]}) or -100.")
        weights = self.importance_weights(source_features, target_features)
        return dev_risk(weights, cross_entropy_per_row(logits, labels))


__all__ = ["DeepEmbeddedValidation", "cross_entropy_per_row", "dev_risk"]
