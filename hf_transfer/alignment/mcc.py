"""Minimum Class Confusion (MCC).

Jin et al., *Minimum Class Confusion for Versatile Domain Adaptation*, ECCV 2020.

A class-aware complement to DANN: instead of matching feature distributions (which can map a
target class onto the wrong source class), MCC asks the classifier not to *confuse* classes on
the unlabelled target. With temperature-scaled predictions :math:`\\hat Y = \\mathrm{softmax}(z / T)`
on :math:`n` target rows and certainty weights :math:`W = \\mathrm{diag}(w)`,

.. math::

    w_i \\propto 1 + e^{-H(\\hat y_i)}, \\quad \\textstyle\\sum_i w_i = n,
    \\qquad C = \\hat Y^\\top W \\hat Y,
    \\qquad \\tilde C_{jj'} = C_{jj'} / \\textstyle\\sum_{j''} C_{jj''},
    \\qquad \\mathcal{L}_{mcc} = \\frac{1}{K} \\sum_{j \\ne j'} \\tilde C_{jj'}

(:math:`K` classes, :math:`H` the entropy). :math:`\\mathcal L_{mcc} = 0` when every target row is
predicted with certainty and the classes never co-occur; it grows as probability mass is shared
between classes. The loss needs no discriminator and no target labels, and it is computed on
the same concatenated forward pass (the target rows' logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import AlignmentBatch, AlignmentMethod, MethodCard, TermOutput, register_method


class MinimumClassConfusionLoss(nn.Module):
    """``forward(target_logits) -> L_mcc`` (a scalar; 0 for an empty batch, still in the graph)."""

    def __init__(self, temperature: float = 2.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"The MCC temperature must be positive, got {temperature}.")
        self.temperature = temperature

    def forward(self, target_logits: torch.Tensor) -> torch.Tensor:
        if target_logits.shape[0] == 0:
            return target_logits.sum() * 0.0
        n, num_classes = target_logits.shape
        probabilities = (target_logits.float() / self.temperature).softmax(dim=-1)
        entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=-1).detach()
        weights = 1.0 + torch.exp(-entropy)
        weights = (n * weights / weights.sum()).unsqueeze(1)  # (n, 1), sums to n
        confusion = (probabilities * weights).transpose(0, 1) @ probabilities  # (K, K)
        confusion = confusion / confusion.sum(dim=1, keepdim=True)
        return (confusion.sum() - confusion.trace()) / num_classes


# ----------------------------------------------------------------------------- the registered method
@dataclass
class MccSettings:
    temperature: float = 2.5
    """Softmax temperature of the target predictions (the paper's 2.5)."""


class MinimumClassConfusionTerm:
    """MCC on the batch's target rows."""

    def __init__(self, settings: MccSettings) -> None:
        self.loss = MinimumClassConfusionLoss(settings.temperature)

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module, grl_lambda: float) -> TermOutput:
        loss = self.loss(batch.logits[batch.domain_labels == 1])
        return TermOutput(loss, {"mcc_loss": loss.detach()})


register_method(
    AlignmentMethod(
        name="mcc",
        summary="Minimum Class Confusion on the target predictions, no discriminator (Jin et al. 2020)",
        settings_class=MccSettings,
        build_term=MinimumClassConfusionTerm,
        card=MethodCard(
            title="Minimum Class Confusion (MCC) on the unlabelled target",
            short="MCC",
            description=(
                "Alongside the classification loss on labelled source data, a Minimum Class Confusion loss (Jin et al., "
                "ECCV 2020) on the model's predictions for unlabelled target inputs penalises probability shared between "
                "classes, so target predictions become confident and classes stay apart. No discriminator is involved; "
                "only source labels are used."
            ),
            tags=("mcc",),
            addition=(
                " A Minimum Class Confusion loss (Jin et al., ECCV 2020) on the target predictions is added, penalising "
                "probability shared between classes."
            ),
            addition_title="Minimum Class Confusion (MCC)",
        ),
        weight_argument="mcc_loss_weight",
        combinable=True,
    )
)
