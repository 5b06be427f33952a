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
    """A module wrapper around :class:`GradientReverseFunction`: ``layer(x, coeff)``.

    ``coeff`` is the λ of the paper, passed with every call (the trainer computes it from
    ``global_step`` with :func:`~hf_transfer.alignment.schedules.grl_lambda`): the layer holds no
    state, so nothing needs checkpointing and resume gives the same λ.
    """

    def forward(self, inputs: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
        return GradientReverseFunction.apply(inputs, float(coeff))
