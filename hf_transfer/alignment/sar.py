"""SAR: sharpness-aware and reliable entropy minimisation, a source-free method.

Niu, Wu, Zhang, Wen, Chen, Zhao and Tan, *Towards Stable Test-Time Adaptation in Dynamic Wild World*, ICLR 2023.

TENT's entropy minimisation collapses on LayerNorm/GroupNorm backbones (ViTs) and small or class-imbalanced
batches: a few noisy, high-entropy rows produce large gradients that push every prediction to one class. SAR

1. keeps only **reliable** rows, whose entropy is below :math:`E_0 = m \\log K` (the paper's :math:`m = 0.4`),

.. math::

    \\mathcal L_{sar}(Θ) = \\frac{1}{|S|} \\sum_{i \\in S} H(p_i), \\qquad S = \\{ i : H(p_i) < E_0 \\}

2. and minimises it **sharpness-aware** (SAM, Foret et al. 2021): a step towards a flat minimum of that loss,

.. math::

    \\hat ε = ρ \\frac{\\nabla_Θ \\mathcal L_{sar}(Θ)}{\\lVert \\nabla_Θ \\mathcal L_{sar}(Θ) \\rVert_2}, \\qquad
    Θ \\leftarrow Θ - η \\nabla_Θ \\mathcal L_{sar}(Θ)\\big|_{Θ + \\hat ε}

where the second pass keeps the rows reliable in both passes. 3. A **model recovery**: when the exponential moving
average of the loss (:math:`0.9 \\cdot e + 0.1 \\cdot \\mathcal L`) falls below a threshold the model has likely
collapsed, and the adapted parameters return to their initial values. The paper's threshold, 0.2 nats, was set for
ImageNet's 1000 classes; by default it is scaled with the entropy's range like the margin,
:math:`0.2 \\log K / \\log 1000` (0.067 for 10 classes). Unscaled, a confident 10-class model whose reliable rows
average 0.15 nats is "collapsed" at every few steps, and ends where it started (``reset_constant`` sets it in nats).

**Updates:** normalisation affine parameters only (as TENT). **Needs:** target batches only; two forward/backward
passes per step; no source data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .registry import AlignmentBatch, AlignmentMethod, MethodCard, SourceFreeSpec, TermOutput, register_method
from .shot import entropy


class ReliableEntropyLoss(nn.Module):
    """``forward(logits, keep=None) -> (loss, kept)``: mean entropy over rows with entropy below ``margin · log K``.

    ``keep`` (a boolean row mask) further restricts the rows, for SAM's second pass; no reliable row gives an exact 0
    that stays in the graph.
    """

    def __init__(self, margin: float = 0.4) -> None:
        super().__init__()
        if margin <= 0:
            raise ValueError(f"SAR's entropy margin must be > 0, got {margin}.")
        self.margin = margin

    def reliable(self, logits: torch.Tensor) -> torch.Tensor:
        """Rows whose entropy is below :math:`E_0 = m \\log K`."""
        return entropy(logits.detach()) < self.margin * math.log(logits.shape[-1])

    def forward(self, logits: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        kept = self.reliable(logits)
        if keep is not None:
            kept = kept & keep
        summed = (entropy(logits) * kept).sum()
        return summed / kept.sum().clamp(min=1), kept


def sam_perturbation(parameters: list[nn.Parameter], rho: float) -> list[torch.Tensor]:
    """SAM's :math:`\\hat ε = ρ g / \\lVert g \\rVert_2` for parameters holding the gradient ``g`` (zeros without one)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    norm = torch.norm(torch.stack([g.detach().float().norm(2) for g in grads]), 2) if grads else torch.tensor(0.0)
    scale = rho / (norm + 1e-12)
    return [(g.detach() * scale).to(g.dtype) for g in grads]


PAPER_RESET = 0.2
"""The paper's recovery threshold in nats, for ImageNet's 1000 classes."""


def reset_threshold(settings: SarSettings, num_classes: int) -> float:
    """The recovery threshold in nats for a ``num_classes``-way head (``settings.reset_constant`` when set)."""
    if settings.reset_constant is not None:
        return settings.reset_constant
    return PAPER_RESET * math.log(num_classes) / math.log(1000)


@dataclass
class SarSettings:
    margin: float = 0.4
    """:math:`m` of the reliability threshold :math:`E_0 = m \\log K` (the paper's 0.4)."""
    rho: float = 0.05
    """SAM's neighbourhood radius ρ (the paper's 0.05)."""
    reset_constant: float | None = None
    """Recover the initial parameters when the loss's moving average falls below this many nats (0 = never);
    default :data:`PAPER_RESET` scaled by :math:`\\log K / \\log 1000` (the paper's value at ImageNet's 1000 classes)."""


class SarTerm:
    """Reliable entropy of the batch's target rows; the source-free trainer runs SAM's two passes around it."""

    def __init__(self, settings: SarSettings) -> None:
        if settings.rho < 0 or (settings.reset_constant or 0) < 0:
            raise ValueError(f"SAR's rho and reset_constant must be >= 0, got {settings.rho}, {settings.reset_constant}.")
        self.settings = settings
        self.loss = ReliableEntropyLoss(settings.margin)
        self.moving_average: float | None = None
        self.num_classes: int | None = None
        """The head's K, seen at the first batch (it sets the default recovery threshold)."""

    def __call__(
        self, batch: AlignmentBatch, *, domain_head: nn.Module | None = None, grl_lambda: float = 0.0,
        keep: torch.Tensor | None = None,
    ) -> TermOutput:
        target = batch.domain_labels == 1
        self.num_classes = batch.logits.shape[-1]
        loss, kept = self.loss(batch.logits[target], None if keep is None else keep[target])
        return TermOutput(loss, {"sar_loss": loss.detach(), "sar_reliable_fraction": kept.float().mean().detach(),
                                 "sar_reliable_rows": kept.sum().detach()})

    def reliable(self, logits: torch.Tensor) -> torch.Tensor:
        return self.loss.reliable(logits)

    def should_reset(self, loss: float, reliable_rows: int = 1) -> bool:
        """Update the loss's moving average; ``True`` when it says the model collapsed (then the average restarts).

        A batch without a reliable row has no loss (the authors' NaN) and leaves the average as it is.
        """
        if reliable_rows == 0 or not math.isfinite(loss):
            return False
        self.moving_average = loss if self.moving_average is None else 0.9 * self.moving_average + 0.1 * loss
        threshold = reset_threshold(self.settings, self.num_classes or 1000)
        if threshold > 0 and self.moving_average < threshold:
            self.moving_average = None
            return True
        return False


register_method(
    AlignmentMethod(
        name="sar",
        summary="source-free: reliable-sample entropy with sharpness-aware updates of the normalisation layers "
        "(Niu et al. 2023)",
        settings_class=SarSettings,
        build_term=SarTerm,
        card=MethodCard(
            title="SAR (sharpness-aware reliable entropy minimisation) on the unlabelled target, without source data",
            short="SAR",
            description=(
                "Source-free adaptation with SAR (Niu et al., ICLR 2023): the entropy of the model's confident "
                "predictions on unlabelled target data was minimised with sharpness-aware (SAM) updates of the "
                "normalisation layers' affine parameters only, with a reset when the loss signals a collapse; every "
                "other weight of the given model is unchanged. No source data was used."
            ),
            tags=("source-free", "sar", "test-time-adaptation"),
        ),
        source_free=SourceFreeSpec(
            updates="norm", needs="target batches only; two forward/backward passes per step", sharpness_aware=True,
        ),
    )
)
