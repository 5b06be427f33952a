"""SHOT: Source HypOthesis Transfer, a source-free method.

Liang, Hu and Feng, *Do We Really Need to Access the Source Data? Source Hypothesis Transfer for Unsupervised
Domain Adaptation*, ICML 2020.

The trained classifier (the *hypothesis* :math:`h`) is **frozen**; only the feature extractor :math:`g` is trained
(here: its LoRA weights) so that target features fit that hypothesis. With :math:`p_i = \\mathrm{softmax}(h(g(x_i)))`
over :math:`K` classes on a target batch of :math:`n` rows and :math:`\\bar p = \\frac1n \\sum_i p_i`:

.. math::

    \\mathcal L_{ent} = -\\frac1n \\sum_i \\sum_k p_{ik} \\log p_{ik}, \\qquad
    \\mathcal L_{div} = \\sum_k \\bar p_k \\log \\bar p_k, \\qquad
    \\mathcal L_{pl} = -\\frac1{|L|} \\sum_{i \\in L} \\log p_{i \\hat y_i}

.. math::

    \\mathcal L_{shot} = \\mathcal L_{ent} + \\mathcal L_{div} + β \\, \\mathcal L_{pl}

Information maximisation (:math:`\\mathcal L_{ent} + \\mathcal L_{div}`) asks each prediction to be confident and the
batch's predictions to be diverse (:math:`\\mathcal L_{div} = \\mathrm{KL}(\\bar p \\,\\|\\, \\tfrac1K) - \\log K`, lowest
when every class is used), which rules out the trivial solution of entropy minimisation alone. The pseudo-labels
:math:`\\hat y` come from self-supervised clustering in feature space, refreshed every epoch over the whole target
set (:func:`shot_pseudo_labels`): with features :math:`f_i` (a 1 appended, then L2-normalised as in the authors'
code) and the cosine distance :math:`D`,

.. math::

    c_k^{(0)} = \\frac{\\sum_i p_{ik} f_i}{\\sum_i p_{ik}}, \\quad
    \\hat y_i = \\arg\\min_k D(f_i, c_k^{(0)}), \\quad
    c_k^{(1)} = \\frac{\\sum_i [\\hat y_i = k] f_i}{\\sum_i [\\hat y_i = k]}, \\quad
    \\hat y_i = \\arg\\min_k D(f_i, c_k^{(1)})

**Updates:** the LoRA weights of the features; the classification head never changes. **Needs:** unlabelled
target data only (the features and predictions of the whole target set once per epoch); no source data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import AlignmentBatch, AlignmentMethod, MethodCard, SourceFreeSpec, TermOutput, register_method

IGNORE_INDEX = -100


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-row entropy :math:`-\\sum_k p_k \\log p_k` of ``softmax(logits)`` (nats), shape ``(n,)``."""
    log_p = logits.float().log_softmax(dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def information_maximisation(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_ent, L_div)`` of a batch: the mean per-row entropy and the negative entropy of the mean prediction."""
    probabilities = logits.float().softmax(dim=-1)
    mean = probabilities.mean(dim=0)
    return entropy(logits).mean(), (mean * mean.clamp_min(1e-12).log()).sum()


class ShotLoss(nn.Module):
    """``forward(logits, pseudo_labels) -> (L_shot, L_ent, L_div, L_pl)``; rows with pseudo-label -100 skip L_pl."""

    def __init__(self, pseudo_label_weight: float = 0.3) -> None:
        super().__init__()
        if pseudo_label_weight < 0:
            raise ValueError(f"SHOT's pseudo_label_weight (β) must be >= 0, got {pseudo_label_weight}.")
        self.pseudo_label_weight = pseudo_label_weight

    def forward(
        self, logits: torch.Tensor, pseudo_labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if logits.shape[0] == 0:
            zero = logits.sum() * 0.0
            return zero, zero, zero, zero
        ent, div = information_maximisation(logits)
        if pseudo_labels is None or self.pseudo_label_weight == 0:
            pl = logits.sum() * 0.0
        else:
            summed = F.cross_entropy(logits.float(), pseudo_labels, ignore_index=IGNORE_INDEX, reduction="sum")
            pl = summed / (pseudo_labels != IGNORE_INDEX).sum().clamp(min=1)
        return ent + div + self.pseudo_label_weight * pl, ent, div, pl


@torch.no_grad()
def shot_pseudo_labels(features: torch.Tensor, logits: torch.Tensor, *, rounds: int = 2) -> torch.Tensor:
    """SHOT's pseudo-labels of a whole target set: weighted k-means in feature space, started from the predictions.

    ``features`` ``(n, d)`` and ``logits`` ``(n, K)``; returns ``(n,)`` class ids. Only classes the model predicts
    for at least one row get a centroid (the authors' ``labelset``).
    """
    features = features.float()
    features = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype, device=features.device)], dim=1)
    features = F.normalize(features, dim=1)
    weights = logits.float().softmax(dim=-1)  # (n, K): the first round weighs rows by their soft predictions
    num_classes = weights.shape[1]
    labels = weights.argmax(dim=1)
    present = torch.bincount(labels, minlength=num_classes) > 0
    for _ in range(rounds):
        centroids = (weights.T @ features) / weights.sum(dim=0).clamp_min(1e-8).unsqueeze(1)  # (K, d+1)
        distance = 1 - features @ F.normalize(centroids, dim=1).T  # cosine distance (n, K); features are unit rows
        distance[:, ~present] = float("inf")
        labels = distance.argmin(dim=1)
        weights = F.one_hot(labels, num_classes).float()
    return labels


# ----------------------------------------------------------------------------- the registered method
@dataclass
class ShotSettings:
    pseudo_label_weight: float = 0.3
    """β, the weight of the pseudo-label cross-entropy (the paper's 0.3; 0 = information maximisation alone)."""


class ShotTerm:
    """SHOT's loss on a target batch; ``batch.labels`` holds the current pseudo-labels (-100 before the first)."""

    def __init__(self, settings: ShotSettings) -> None:
        self.loss = ShotLoss(settings.pseudo_label_weight)

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module | None = None, grl_lambda: float = 0.0) -> TermOutput:
        target = batch.domain_labels == 1
        labels = batch.labels[target] if batch.labels is not None else None
        loss, ent, div, pl = self.loss(batch.logits[target], labels)
        return TermOutput(loss, {"shot_loss": loss.detach(), "shot_entropy": ent.detach(), "shot_diversity": div.detach(),
                                 "shot_pseudo_label_loss": pl.detach()})

    @staticmethod
    def pseudo_labels(features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Refreshed by the source-free trainer over the whole target set at every epoch start."""
        return shot_pseudo_labels(features, logits)


register_method(
    AlignmentMethod(
        name="shot",
        summary="source-free: information maximisation + clustering pseudo-labels, head frozen (Liang et al. 2020)",
        settings_class=ShotSettings,
        build_term=ShotTerm,
        card=MethodCard(
            title="SHOT (source hypothesis transfer) on the unlabelled target, without source data",
            short="SHOT",
            description=(
                "Source-free adaptation with SHOT (Liang et al., ICML 2020): the classification head of the given "
                "model was frozen and only LoRA weights on its features were trained, on unlabelled target data, "
                "with information maximisation (confident, diverse predictions) and pseudo-labels from clustering "
                "the target features, refreshed every epoch. No source data was used."
            ),
            tags=("source-free", "shot"),
        ),
        source_free=SourceFreeSpec(
            updates="lora",
            needs="unlabelled target data only (features and predictions of the whole target set once per epoch)",
        ),
    )
)
