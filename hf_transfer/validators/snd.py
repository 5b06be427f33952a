"""Soft neighbourhood density (SND): are the target predictions densely clustered?

Saito et al., *Tune it the Right Way: Unsupervised Validation of Domain Adaptation via Soft
Neighborhood Density*, ICCV 2021 (arXiv:2108.10860). A good adapted model maps target rows of
one class close together, so each row has many near neighbours. With :math:`n` target rows,
take their softmax predictions (the paper's default; the pooled features work too),
L2-normalise them to :math:`f_i`, and compare every pair by cosine similarity, leaving out
each row's similarity with itself:

.. math::

    S_{ij} = f_i^\\top f_j \\ (j \\ne i), \\qquad
    P_{ij} = \\frac{\\exp(S_{ij} / \\tau)}{\\sum_{l \\ne i} \\exp(S_{il} / \\tau)}, \\qquad
    \\mathrm{SND} = \\frac{1}{n} \\sum_{i=1}^{n} H(P_{i\\cdot}),

with temperature :math:`\\tau = 0.05`. A row with many neighbours about as close as its nearest
spreads :math:`P_{i\\cdot}` over them (high entropy); an isolated row puts it all on one
(low entropy). **Higher is better.** The value is at most :math:`\\log(n - 1)`, which grows with
:math:`n`: compare candidates on the same target rows.

Its known blind spot, stated by the authors: a collapse that predicts one class for every row
makes every pair identical and reaches the maximum :math:`\\log(n-1)`. Use it with the source
accuracy guard or a diversity-aware validator.

The :math:`n \\times n` similarities are built ``chunk_size`` rows at a time, so memory stays
:math:`O(\\text{chunk} \\cdot n)` on large target sets.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import ValidationInputs, Validator, entropy, l2_normalize, softmax


class SoftNeighborhoodDensity(Validator):
    """Mean entropy of each target row's softmax over cosine similarities to the others; higher is better."""

    name = "snd"
    higher_is_better = True

    def __init__(
        self,
        temperature: float = 0.05,
        representation: Literal["predictions", "features"] = "predictions",
        chunk_size: int = 1024,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"The SND temperature must be positive, got {temperature}.")
        if representation not in ("predictions", "features"):
            raise ValueError(f"SND's representation is 'predictions' or 'features', got {representation!r}.")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        self.temperature = temperature
        self.representation = representation
        self.chunk_size = chunk_size
        self.required = ("target_logits",) if representation == "predictions" else ("target_features",)

    def compute(self, inputs: ValidationInputs) -> float:
        if self.representation == "predictions":
            vectors = softmax(inputs.require("target_logits", self.name))
        else:
            vectors = inputs.require("target_features", self.name)
        n = len(vectors)
        if n < 2:
            raise ValueError(f"SND compares each target row with the others; it needs at least 2 rows, got {n}.")
        vectors = l2_normalize(vectors)
        entropies = []
        for start in range(0, n, self.chunk_size):
            block = vectors[start : start + self.chunk_size]
            logits = block @ vectors.T / self.temperature  # (chunk, n)
            rows = np.arange(len(block))
            logits[rows, start + rows] = -np.inf  # leave out each row's similarity with itself
            entropies.append(entropy(softmax(logits)))
        return float(np.concatenate(entropies).mean())
