"""Gradient reversal layer (GRL).

Ganin & Lempitsky, *Unsupervised Domain Adaptation by Backpropagation*, ICML 2015.

The GRL is the identity in the forward pass and multiplies the upstream gradient by
``-λ`` in the backward pass:

.. math::

    R_λ(x) = x, \\qquad \\frac{\\partial R_λ}{\\partial x} = -λ I

Placed between a feature extractor and a domain discriminator, a single minimisation of
the discriminator's loss trains the discriminator to tell the domains apart while it
pushes the features to make them indistinguishable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GradientReverseFunction(torch.autograd.Function):
    """Identity forward, ``-coeff * grad`` backward."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output.neg() * ctx.coeff, None


class GradientReversalLayer(nn.Module):
    """A module wrapper around :class:`GradientReverseFunction`.

    ``coeff`` is the λ of the paper. It is plain state set by the trainer at every step
    (from the schedule in :mod:`hf_transfer.alignment.schedules`), so it needs no
    checkpointing: it is recomputed from ``global_step`` on resume.
    """

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return GradientReverseFunction.apply(inputs, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff:.4f}"
