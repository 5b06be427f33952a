"""Information maximisation (IM): confident on each row, diverse over the target as a whole.

Gomes, Krause & Perona, *Discriminative Clustering by Regularized Information Maximization*,
NeurIPS 2010; the loss of SHOT (Liang et al., *Do We Really Need to Access the Source Data?*,
ICML 2020), used as a validator by Musgrave, Belongie & Lim, 2022 (arXiv:2208.07360). With
:math:`p_i = \\mathrm{softmax}(z_i)` on :math:`n` target rows and the mean prediction
:math:`\\bar p = \\frac1n \\sum_i p_i`,

.. math::

    \\mathrm{IM} = \\underbrace{\\frac{1}{n} \\sum_i H(p_i)}_{\\text{conditional entropy}}
                 - \\underbrace{H(\\bar p)}_{\\text{marginal entropy}}
                 = -\\, \\hat I(x; \\hat y),

the negative of the estimated mutual information between inputs and predicted labels — exactly
SHOT's :math:`\\mathcal L_{ent} + \\mathcal L_{div}`. **Sign: this is the loss, so lower is
better.** Entropy is concave, so :math:`H(\\bar p) \\ge \\frac1n \\sum_i H(p_i)` and the score lies
in :math:`[-\\log K, 0]`: :math:`-\\log K` for one-hot rows spread evenly over the :math:`K`
classes, and 0 whenever every row predicts the same distribution — uniform rows, and also a
confident collapse onto one class, which entropy alone would rate perfect.
"""

from __future__ import annotations

from .base import ValidationInputs, Validator, entropy, softmax


class InformationMaximization(Validator):
    """Mean row entropy minus entropy of the mean prediction (SHOT's IM loss); lower is better."""

    name = "im"
    higher_is_better = False
    required = ("target_logits",)

    def compute(self, inputs: ValidationInputs) -> float:
        probabilities = softmax(inputs.require("target_logits", self.name))
        conditional = entropy(probabilities).mean()
        marginal = entropy(probabilities.mean(axis=0))
        return float(conditional - marginal)
