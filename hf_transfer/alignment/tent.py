"""TENT: fully test-time adaptation by entropy minimisation, a source-free method.

Wang, Shelhamer, Liu, Olshausen and Darrell, *Tent: Fully Test-Time Adaptation by Entropy Minimization*,
ICLR 2021.

The model's prediction entropy on a target batch is minimised, updating **only the normalisation layers' affine
parameters** (scale γ and shift β of every LayerNorm/BatchNorm/GroupNorm); everything else stays bit-identical. With
:math:`p_i = \\mathrm{softmax}(z_i)` on :math:`n` target rows,

.. math::

    \\mathcal L_{tent} = \\frac1n \\sum_i H(p_i) = -\\frac1n \\sum_i \\sum_k p_{ik} \\log p_{ik}

A BatchNorm layer normalises with the target batch's statistics while it adapts (and its running statistics follow
the target); a LayerNorm has no statistics to change. TENT runs two ways here:

* a short **training run** (``hf-transfer adapt MODEL --method tent``): the result is a new adapter holding the
  adapted normalisation layers;
* at **prediction time** (:class:`hf_transfer.source_free.TestTimeAdapter`): one update per incoming batch before
  predicting it, *continual* (the updates accumulate) or *episodic* (the model is reset after every batch).

**Updates:** normalisation affine parameters only. **Needs:** target batches only (their statistics, for
BatchNorm); no source data, no labels, no pseudo-labels. Small batches make the entropy noisy and TENT can collapse
on LayerNorm backbones; SAR (:mod:`hf_transfer.alignment.sar`) is the stable variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import AlignmentBatch, AlignmentMethod, MethodCard, SourceFreeSpec, TermOutput, register_method
from .shot import entropy


class EntropyLoss(nn.Module):
    """``forward(logits) -> mean prediction entropy`` (0 for an empty batch, still in the graph)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        return entropy(logits).mean()


@dataclass
class TentSettings:
    """TENT has no setting of its own (learning rate and steps are the run's)."""


class TentTerm:
    """Mean prediction entropy of the batch's target rows."""

    def __init__(self, settings: TentSettings) -> None:
        self.loss = EntropyLoss()

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module | None = None, grl_lambda: float = 0.0) -> TermOutput:
        loss = self.loss(batch.logits[batch.domain_labels == 1])
        return TermOutput(loss, {"tent_loss": loss.detach()})


register_method(
    AlignmentMethod(
        name="tent",
        summary="source-free: entropy minimisation of the normalisation layers' affine parameters (Wang et al. 2021)",
        settings_class=TentSettings,
        build_term=TentTerm,
        card=MethodCard(
            title="TENT (test-time entropy minimisation) on the unlabelled target, without source data",
            short="TENT",
            description=(
                "Source-free adaptation with TENT (Wang et al., ICLR 2021): the entropy of the model's predictions on "
                "unlabelled target data was minimised, updating only the affine parameters of its normalisation "
                "layers (and a BatchNorm's statistics); every other weight of the given model is unchanged. No source "
                "data was used."
            ),
            tags=("source-free", "tent", "test-time-adaptation"),
        ),
        source_free=SourceFreeSpec(updates="norm", needs="target batches only (their statistics, for BatchNorm)"),
    )
)
