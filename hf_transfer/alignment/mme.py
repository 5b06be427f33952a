"""Minimax Entropy (MME) for semi-supervised (few-shot) domain adaptation.

Saito, Kim, Sclaroff, Darrell & Saenko, *Semi-supervised Domain Adaptation via Minimax Entropy*, ICCV 2019.

A cosine-similarity **prototype classifier** :math:`C` holds one prototype :math:`w_c` per class; with
:math:`\\ell_2`-normalised features and prototypes and a temperature :math:`T`,

.. math::

    z_c(x) = \\frac{1}{T} \\frac{w_c^\\top f(x)}{\\lVert w_c \\rVert \\, \\lVert f(x) \\rVert}, \\qquad
    p(y \\mid x) = \\mathrm{softmax}(z(x)).

The prototypes learn the classes from the labelled rows (source + the few labelled target examples),
and the entropy of the predictions on the *unlabelled* target,

.. math::

    H = -\\frac{1}{|U|} \\sum_{x \\in U} \\sum_c p(c \\mid x) \\log p(c \\mid x),

is played as a minimax game: the classifier **maximises** :math:`H` (each prototype moves towards the
unlabelled target features, so it represents the target domain), the feature extractor **minimises** it
(target features cluster around the prototypes). One gradient reversal layer :math:`R_λ` between
:math:`f` and :math:`C` on the unlabelled rows does both in a single minimisation of

.. math::

    \\mathcal{L}_{mme} = \\frac{1}{|L|} \\sum_{(x, y) \\in L} \\mathrm{CE}(z(x), y) \\; - \\; λ_H \\, H\\big(C(R_λ(f(U)))\\big):

descending :math:`-λ_H H` moves the prototypes up the entropy, and the reversed gradient moves the features
down it. The paper's :math:`T = 0.05` and :math:`λ_H = 0.1` are the defaults; :math:`λ` follows the run's
gradient-reversal schedule (``grl_schedule: constant`` gives the paper's fixed reversal).

In hf_transfer the prototype classifier is MME's *domain head*: trained and saved with the adapter
(``domain_discriminator.safetensors``), while the backbone's own classification head, trained on the same
labelled rows and the same (MME-shaped) features, makes the saved model's predictions; so a plain
transformers/peft load of the adapter works as for every other method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .grl import GradientReversalLayer
from .registry import AlignmentBatch, AlignmentMethod, DomainHeadSpec, MethodCard, TermOutput, register_method

IGNORE_INDEX = -100


class PrototypeClassifier(nn.Module):
    """Cosine similarity to one learnt prototype per class, divided by a temperature: ``(B, d) → (B, K)``."""

    def __init__(self, feature_dim: int, num_classes: int, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"The MME temperature must be positive, got {temperature}.")
        self.prototypes = nn.Parameter(torch.empty(num_classes, feature_dim))
        nn.init.normal_(self.prototypes, std=0.1)
        self.feature_dim, self.num_classes, self.temperature = feature_dim, num_classes, temperature

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=-1) @ F.normalize(self.prototypes, dim=-1).t() / self.temperature

    def to_dict(self) -> dict[str, Any]:
        """Saved as ``discriminator`` in ``domain_adaptation.json``; ``kind`` tells a loader which head to rebuild."""
        return {"kind": "prototype", "feature_dim": self.feature_dim, "num_classes": self.num_classes,
                "temperature": self.temperature}


def minimax_entropy_loss(
    logits: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor, reversed_logits: torch.Tensor,
    entropy_weight: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L_mme, CE, H)`` from prototype ``logits`` and ``reversed_logits`` (the same, computed behind the GRL).

    ``labels`` use ``-100`` for unlabelled rows; ``unlabelled`` (bool, ``(B,)``) marks the rows whose entropy is
    played (the unlabelled target). Empty selections give an exact 0 that keeps the graph.
    """
    labelled = (labels != IGNORE_INDEX).sum().clamp(min=1)
    ce = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum") / labelled
    log_p = reversed_logits.log_softmax(dim=-1)
    row_entropy = -(log_p.exp() * log_p).sum(dim=-1)
    mask = unlabelled.to(row_entropy.dtype)
    entropy = (row_entropy * mask).sum() / mask.sum().clamp(min=1)
    return ce - entropy_weight * entropy, ce, entropy


class MinimaxEntropyHead(nn.Module):
    """MME's domain head: the prototype classifier (as ``discriminator``, the name the model saves) and the GRL."""

    kind = "prototype"

    def __init__(self, classifier: PrototypeClassifier) -> None:
        super().__init__()
        self.grl = GradientReversalLayer()
        self.discriminator = classifier

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor, *, entropy_weight: float,
        grl_lambda: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.discriminator(features)
        reversed_logits = self.discriminator(self.grl(features, grl_lambda))
        return minimax_entropy_loss(logits, labels, unlabelled, reversed_logits, entropy_weight)

    def to_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MinimaxEntropyHead:
        saved = values["discriminator"]
        return cls(PrototypeClassifier(saved["feature_dim"], saved["num_classes"], saved["temperature"]))


@dataclass
class MmeSettings:
    temperature: float = 0.05
    """T of the cosine classifier (the paper's 0.05)."""
    entropy_weight: float = 0.1
    """λ_H, the weight of the entropy the classifier maximises and the features minimise (the paper's 0.1)."""


def build_prototype_head(
    feature_dim: int, num_classes: int, *, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1,
    settings: MmeSettings | None = None, **_: Any,
) -> MinimaxEntropyHead:
    """The prototype classifier (the discriminator sizes do not apply to it)."""
    settings = settings or MmeSettings()
    return MinimaxEntropyHead(PrototypeClassifier(feature_dim, num_classes, settings.temperature))


class MinimaxEntropyTerm:
    """MME on a batch: prototype CE on the labelled rows, minimax entropy on the unlabelled target rows."""

    def __init__(self, settings: MmeSettings) -> None:
        if settings.entropy_weight < 0:
            raise ValueError(f"The MME entropy_weight must be >= 0, got {settings.entropy_weight}.")
        self.settings = settings

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module, grl_lambda: float) -> TermOutput:
        if not isinstance(domain_head, MinimaxEntropyHead):
            raise ValueError("MME needs its prototype head; build the model for method 'mme'.")
        labels = batch.labels if batch.labels is not None else torch.full_like(batch.domain_labels, IGNORE_INDEX)
        unlabelled = (batch.domain_labels == 1) & (labels == IGNORE_INDEX)
        loss, ce, entropy = domain_head(batch.features, labels, unlabelled,
                                        entropy_weight=self.settings.entropy_weight, grl_lambda=grl_lambda)
        return TermOutput(loss, {"mme_loss": loss.detach(), "mme_prototype_loss": ce.detach(),
                                 "mme_entropy": entropy.detach()})


register_method(
    AlignmentMethod(
        name="mme",
        summary="Minimax Entropy for few-shot targets: a prototype classifier plays the target entropy against the "
        "features (Saito et al. 2019)",
        settings_class=MmeSettings,
        build_term=MinimaxEntropyTerm,
        card=MethodCard(
            title="Minimax Entropy (MME) semi-supervised domain adaptation",
            short="MME",
            description=(
                "A cosine-similarity prototype classifier learns the classes from the labelled examples (the source "
                "and, in a few-shot run, the few labelled target examples per class), then plays the entropy of its "
                "predictions on the unlabelled target as a minimax game (Saito et al., ICCV 2019): the prototypes "
                "maximise it and move towards the target, while a gradient reversal layer makes the backbone (through "
                "its LoRA weights) minimise it, clustering target features around the prototypes. The backbone's "
                "classification head, trained on the same labelled examples, makes the predictions."
            ),
            tags=("mme", "semi-supervised"),
        ),
        domain_head=DomainHeadSpec("prototype", build_prototype_head, MinimaxEntropyHead.from_dict),
    )
)

__all__ = ["MinimaxEntropyHead", "MmeSettings", "PrototypeClassifier", "minimax_entropy_loss"]
