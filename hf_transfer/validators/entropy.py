"""Prediction entropy on the target: how unsure the classifier is where it has no labels.

Grandvalet & Bengio, *Semi-supervised Learning by Entropy Minimization*, NeurIPS 2004, as a
model-selection criterion by Morerio et al., *Minimal-Entropy Correlation Alignment for
Unsupervised Deep Domain Adaptation*, ICLR 2018. With target predictions
:math:`p_i = \\mathrm{softmax}(z_i)` for :math:`n` target rows and :math:`K` classes,

.. math::

    \\mathrm{Ent} = \\frac{1}{n} \\sum_{i=1}^{n} H(p_i),
    \\qquad H(p) = -\\sum_{k=1}^{K} p_k \\log p_k \\quad (\\text{nats}, \\ 0 \\log 0 = 0).

It runs from 0 (every row one-hot) to :math:`\\log K` (every row uniform). **Lower is better**,
and the logged value is the entropy itself (not its negative), so it reads in nats.

Its known blind spot: a collapsed model that predicts one class with certainty for every row
scores a perfect 0. Pair it with a diversity term (:mod:`.im`, :mod:`.bnm`) or the source
accuracy guard.
"""

from __future__ import annotations

from .base import ValidationInputs, Validator, entropy, softmax


class Entropy(Validator):
    """Mean Shannon entropy (nats) of the target's softmax predictions; lower is better."""

    name = "entropy"
    higher_is_better = False
    required = ("target_logits",)

    def compute(self, inputs: ValidationInputs) -> float:
        probabilities = softmax(inputs.require("target_logits", self.name))
        return float(entropy(probabilities).mean())
