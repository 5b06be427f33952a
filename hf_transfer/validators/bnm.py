"""Batch nuclear-norm (BNM) of the target prediction matrix.

Cui et al., *Towards Discriminability and Diversity: Batch Nuclear-norm Maximization under
Label Insufficient Situations*, CVPR 2020 (arXiv:2003.12237). Stack the target predictions
:math:`p_i = \\mathrm{softmax}(z_i)` into :math:`A \\in \\mathbb{R}^{n \\times K}`; the score is
the nuclear norm (sum of singular values :math:`\\sigma_j`) normalised by the batch size as in
the paper's loss :math:`\\mathcal L_{bnm} = -\\lVert A \\rVert_\\star / B`,

.. math::

    \\mathrm{BNM} = \\frac{1}{n} \\lVert A \\rVert_\\star = \\frac{1}{n} \\sum_{j=1}^{\\min(n, K)} \\sigma_j(A).

Cui et al. show that :math:`\\lVert A \\rVert_F` grows with confidence (discriminability) and
that :math:`\\lVert A \\rVert_\\star` bounds it while approximating :math:`\\mathrm{rank}(A)`, the
number of classes actually predicted (diversity). One-hot rows spread evenly over :math:`K`
classes give :math:`\\sqrt{K/n}`; one-hot rows all on one class give only :math:`1/\\sqrt n`.
**Higher is better.** The score is computed over the whole target set at once (not
per batch), so compare candidates on the same number of target rows.
"""

from __future__ import annotations

import numpy as np

from .base import ValidationInputs, Validator, softmax


class BatchNuclearNorm(Validator):
    """Sum of singular values of the target softmax matrix, divided by its rows; higher is better."""

    name = "bnm"
    higher_is_better = True
    required = ("target_logits",)

    def compute(self, inputs: ValidationInputs) -> float:
        probabilities = softmax(inputs.require("target_logits", self.name))
        singular_values = np.linalg.svd(probabilities, compute_uv=False)
        return float(singular_values.sum() / len(probabilities))
