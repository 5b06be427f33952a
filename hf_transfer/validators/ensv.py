"""EnsV: score each candidate by its agreement with the ensemble of all candidates' predictions.

Hu, Luo, Liang and Foo, *Towards Reliable Model Selection for Unsupervised Domain Adaptation: An
Empirical Study and A Certified Baseline*, NeurIPS 2024 Datasets & Benchmarks. None of the 8
validators they study avoids the worst candidate on every task; the average of the candidates'
predictions is a pseudo-labeller that is provably no worse than the worst candidate (the ensemble's
loss is at most the candidates' mean loss, by convexity), and the candidate that agrees with it
most is their pick.

For candidates :math:`m = 1, \\dots, M` with target probabilities :math:`p_m \\in \\Delta^{K}` on the
same :math:`n` unlabelled target examples (the target evaluation split, in one fixed order):

.. math::

    \\bar p_i = \\frac{1}{M} \\sum_{m} p_{m,i}, \\qquad \\hat y_i = \\arg\\max_k \\bar p_{i,k}, \\qquad
    \\mathrm{EnsV}(m) = \\frac{1}{n} \\sum_{i} \\mathbf{1}\\big[\\arg\\max_k p_{m,i,k} = \\hat y_i\\big].

**Higher is better** (an agreement rate); ties go to the candidate listed first. Like the rank
ensemble (:mod:`.ensemble`) it compares candidates with one another, so it is not an
``eval_target_*`` metric of one evaluation: a sweep keeps each candidate's target probabilities
(``training.save_target_predictions``) and calls :meth:`PredictionEnsembleValidator.select`. A
candidate excluded from the choice (collapsed, pruned) should be left out of the ensemble as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PredictionEnsembleResult:
    """What :meth:`PredictionEnsembleValidator.select` found."""

    pick: str
    #: candidate -> agreement of its argmax with the ensemble's, in [0, 1]; higher is better.
    scores: dict[str, float]
    #: the ensemble's pseudo-labels, one per target example.
    pseudo_labels: np.ndarray


class PredictionEnsembleValidator:
    """EnsV: agreement of each candidate's target predictions with the candidates' averaged probabilities."""

    name = "ensv"
    higher_is_better = True

    def select(self, probabilities: Mapping[str, np.ndarray]) -> PredictionEnsembleResult:
        """``probabilities``: candidate -> ``(n, K)`` class probabilities on the same target examples."""
        if not probabilities:
            raise ValueError("EnsV needs at least one candidate's target predictions; none were given.")
        arrays = {name: np.asarray(p, dtype=np.float64) for name, p in probabilities.items()}
        shapes = {name: a.shape for name, a in arrays.items()}
        if len(set(shapes.values())) != 1 or next(iter(shapes.values())) == () or len(next(iter(shapes.values()))) != 2:
            raise ValueError(
                f"EnsV compares predictions on the same target examples: every candidate needs an (n, K) array of "
                f"one shape, got {shapes}."
            )
        pseudo = np.mean(list(arrays.values()), axis=0).argmax(axis=1)
        scores = {name: float(np.mean(a.argmax(axis=1) == pseudo)) for name, a in arrays.items()}
        pick = max(scores, key=lambda name: scores[name])  # max keeps the first of equal scores
        return PredictionEnsembleResult(pick=pick, scores=scores, pseudo_labels=pseudo)

    def __repr__(self) -> str:
        return "PredictionEnsembleValidator(EnsV, higher agreement is better)"
