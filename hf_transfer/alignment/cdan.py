"""Conditional domain-adversarial loss (CDAN, CDAN+E).

Long et al., *Conditional Adversarial Domain Adaptation*, NeurIPS 2018.

DANN aligns the marginal feature distributions :math:`P(f)`, which can map target examples of one
class onto source examples of another. CDAN conditions the discriminator on the classifier's
prediction :math:`g = \\mathrm{softmax}(z)`, so it aligns the joint :math:`P(f, g)` instead. The
discriminator sees the multilinear map

.. math::

    T_\\otimes(f, g) = \\mathrm{vec}(f g^\\top) \\in \\mathbb{R}^{d K}

or, when :math:`d K` is large (above 4096 as in the paper's code), the randomized map
:math:`T_\\odot(f, g) = \\frac{1}{\\sqrt{m}} (R_f f) \\odot (R_g g)` with fixed Gaussian
:math:`R_f \\in \\mathbb{R}^{m \\times d}`, :math:`R_g \\in \\mathbb{R}^{m \\times K}`, whose inner
products approximate those of :math:`T_\\otimes`. :math:`g` is detached: the adversarial gradient
reaches the backbone through :math:`f` only. With entropy conditioning (CDAN+E) each example's
binary cross-entropy is weighted by :math:`w_i \\propto 1 + e^{-H(g_i)}` (normalised to mean 1),
so confidently classified examples, whose conditioning is trustworthy, count more:

.. math::

    \\mathcal{L}_{cdan} = \\frac{1}{n} \\sum_i w_i \\, \\mathrm{BCE}\\big(D(R_λ(T(f_i, g_i))), d_i\\big)

The gradient reversal layer :math:`R_λ` acts on the conditioned vector, as in DANN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .dann import (
    DomainAdversarialLoss,
    DomainAdversarialTerm,
    DomainDiscriminator,
    DomainLossOutput,
    with_class_weighting,
)
from .registry import AlignmentBatch, AlignmentMethod, DomainHeadSpec, MethodCard, register_method

MULTILINEAR_MAX_DIM = 4096
"""Largest ``feature_dim × num_classes`` conditioned exactly; above it the randomized map is used."""


class MultilinearMap(nn.Module):
    """:math:`T_\\otimes(f, g) = \\mathrm{vec}(f g^\\top)`, shape ``(B, d·K)``."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.output_dim = feature_dim * num_classes

    def forward(self, features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        return torch.bmm(predictions.unsqueeze(2), features.unsqueeze(1)).flatten(1)


class RandomizedMultilinearMap(nn.Module):
    """:math:`T_\\odot(f, g) = (R_f f) \\odot (R_g g) / \\sqrt{m}`, shape ``(B, m)``.

    ``R_f`` and ``R_g`` are drawn once from a seeded generator and never trained, so every process
    (DDP ranks, a reload) rebuilds the same map from ``seed`` without saving it.
    """

    def __init__(self, feature_dim: int, num_classes: int, output_dim: int = 1024, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("feature_projection", torch.randn(feature_dim, output_dim, generator=generator), persistent=False)
        self.register_buffer("class_projection", torch.randn(num_classes, output_dim, generator=generator), persistent=False)
        self.output_dim = output_dim

    def forward(self, features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        projected = (features @ self.feature_projection) * (predictions @ self.class_projection)
        return projected / math.sqrt(self.output_dim)


CONDITIONING_MAPS = ("multilinear", "randomized")


def conditioning_map(
    feature_dim: int, num_classes: int, *, kind: str | None = None, randomized_dim: int = 1024, seed: int = 0
) -> MultilinearMap | RandomizedMultilinearMap:
    """``kind`` ``multilinear`` or ``randomized``; by default the exact map when ``feature_dim × num_classes <= 4096``."""
    if kind is None:
        kind = "multilinear" if feature_dim * num_classes <= MULTILINEAR_MAX_DIM else "randomized"
    if kind == "multilinear":
        return MultilinearMap(feature_dim, num_classes)
    if kind == "randomized":
        return RandomizedMultilinearMap(feature_dim, num_classes, randomized_dim, seed)
    raise ValueError(f"Unknown CDAN conditioning map {kind!r}; choose one of {CONDITIONING_MAPS}.")


def entropy_certainty_weights(logits: torch.Tensor) -> torch.Tensor:
    """CDAN+E's per-row weights :math:`w_i \\propto 1 + e^{-H(g_i)}`, normalised to mean 1 (detached)."""
    predictions = logits.detach().float().softmax(dim=-1)
    entropy = -(predictions * predictions.clamp_min(1e-12).log()).sum(dim=-1)
    certainty = 1.0 + torch.exp(-entropy)
    return certainty * len(certainty) / certainty.sum()


class ConditionalDomainAdversarialLoss(DomainAdversarialLoss):
    """GRL + discriminator on :math:`T(f, g)` + (weighted) binary cross-entropy: CDAN's domain head.

    ``forward(features, domain_labels, weights=None, logits=..., grl_lambda=λ)``: ``logits`` are the
    classifier's outputs for the same rows (softmaxed and detached here). ``discriminator.feature_dim``
    must equal the map's output size; :meth:`build` sizes it.
    """

    kind = "conditional"

    def __init__(
        self,
        discriminator: DomainDiscriminator,
        conditioning: MultilinearMap | RandomizedMultilinearMap,
        *,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(discriminator)
        if discriminator.feature_dim != conditioning.output_dim:
            raise ValueError(
                f"The CDAN discriminator takes {discriminator.feature_dim} inputs but the conditioning map gives "
                f"{conditioning.output_dim}; build both with ConditionalDomainAdversarialLoss.build."
            )
        self.conditioning = conditioning
        self.settings = dict(settings or {})

    @classmethod
    def build(
        cls,
        feature_dim: int,
        num_classes: int,
        *,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.1,
        map_kind: str | None = None,
        randomized_dim: int = 1024,
        seed: int = 0,
        entropy_conditioning: bool = True,
    ) -> ConditionalDomainAdversarialLoss:
        """A conditioning map for ``feature_dim`` features and ``num_classes`` classes, and a discriminator sized for it.

        ``map_kind`` (``multilinear``/``randomized``) defaults to the size rule of :func:`conditioning_map`.
        ``entropy_conditioning`` is only recorded (the loss term applies it).
        """
        if num_classes < 2:
            raise ValueError(f"CDAN conditions on class predictions and needs at least 2 classes, got {num_classes}.")
        conditioning = conditioning_map(
            feature_dim, num_classes, kind=map_kind, randomized_dim=randomized_dim, seed=seed
        )
        discriminator = DomainDiscriminator(conditioning.output_dim, hidden_size, num_layers, dropout)
        settings = {
            "feature_dim": feature_dim,
            "num_classes": num_classes,
            "map": "randomized" if isinstance(conditioning, RandomizedMultilinearMap) else "multilinear",
            "randomized_dim": randomized_dim,
            "seed": seed,
            "entropy_conditioning": entropy_conditioning,
        }
        return cls(discriminator, conditioning, settings=settings)

    def to_dict(self) -> dict[str, Any]:
        """The structure saved as ``discriminator`` and ``conditioning`` in ``domain_adaptation.json``."""
        return {"discriminator": self.discriminator.to_dict(), "conditioning": dict(self.settings)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConditionalDomainAdversarialLoss:
        """Rebuild from :meth:`to_dict` (the ``conditioning`` and ``discriminator`` entries)."""
        settings, discriminator = values["conditioning"], values["discriminator"]
        return cls.build(
            settings["feature_dim"],
            settings["num_classes"],
            hidden_size=discriminator["hidden_size"],
            num_layers=discriminator["num_layers"],
            dropout=discriminator["dropout"],
            map_kind=settings.get("map"),
            randomized_dim=settings.get("randomized_dim", 1024),
            seed=settings.get("seed", 0),
            entropy_conditioning=settings.get("entropy_conditioning", True),
        )

    def forward(
        self,
        features: torch.Tensor,
        domain_labels: torch.Tensor,
        weights: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
        *,
        grl_lambda: float = 1.0,
    ) -> DomainLossOutput:
        if logits is None:
            raise ValueError("CDAN conditions the discriminator on the classifier's logits; pass logits=.")
        predictions = logits.detach().float().softmax(dim=-1)
        conditioned = self.conditioning(features, predictions.to(features.dtype))
        return super().forward(conditioned, domain_labels, weights, grl_lambda=grl_lambda)


# ----------------------------------------------------------------------------- the registered method
@dataclass
class CdanSettings:
    entropy_conditioning: bool = True
    """CDAN+E: weight each row's domain loss by the certainty of its prediction."""
    randomized_dim: int = 1024
    """Size of the randomized map, used when features × classes > 4096."""
    class_weighting: bool = field(default=False, metadata={"argument": "domain_loss_class_weighting"})
    """IWDAN-style class weights on the source rows (multiplied with the entropy weights)."""


def build_conditional_head(
    feature_dim: int, num_classes: int, *, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1,
    settings: CdanSettings | None = None,
) -> ConditionalDomainAdversarialLoss:
    settings = settings or CdanSettings()
    return ConditionalDomainAdversarialLoss.build(
        feature_dim, num_classes, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
        randomized_dim=settings.randomized_dim, entropy_conditioning=settings.entropy_conditioning,
    )


class ConditionalAdversarialTerm(DomainAdversarialTerm):
    """CDAN's term: DANN's, on the model's conditional head, with entropy (and class) weights."""

    settings: CdanSettings

    def row_weights(self, batch: AlignmentBatch) -> torch.Tensor | None:
        weights = super().row_weights(batch)
        if self.settings.entropy_conditioning:
            certainty = entropy_certainty_weights(batch.logits)
            weights = certainty if weights is None else weights.to(certainty.dtype) * certainty
        return weights


CDAN_CARD = MethodCard(
    title="conditional domain-adversarial training (CDAN) with a gradient reversal layer",
    short="CDAN",
    description=(
        "During training a small domain discriminator learns to tell source from target examples from their features "
        "combined with the model's class predictions (Long et al., NeurIPS 2018), while a gradient reversal layer pushes "
        "the backbone (through its LoRA weights) to make them indistinguishable. Conditioning on the predictions aligns "
        "each class with itself rather than the two domains as a whole. Only source labels are used; the target domain "
        "contributes unlabelled inputs."
    ),
    tags=("cdan",),
)
_ENTROPY_ADDITION = (
    " Each example's domain loss is weighted by the certainty of its prediction (entropy conditioning, CDAN+E), so "
    "uncertain predictions steer the alignment less."
)


def describe_cdan(settings: CdanSettings) -> MethodCard:
    card = CDAN_CARD
    if settings.entropy_conditioning:
        card = MethodCard(card.title.replace("(CDAN)", "(CDAN+E)"), "CDAN+E", card.description + _ENTROPY_ADDITION,
                          card.tags)
    return with_class_weighting(card, "IWCDAN") if settings.class_weighting else card


register_method(
    AlignmentMethod(
        name="cdan",
        summary="conditional domain-adversarial training: the discriminator also sees the predictions (Long et al. 2018)",
        settings_class=CdanSettings,
        build_term=ConditionalAdversarialTerm,
        card=CDAN_CARD,
        describe=describe_cdan,
        domain_head=DomainHeadSpec("conditional", build_conditional_head, ConditionalDomainAdversarialLoss.from_dict),
        weight_argument="domain_loss_weight",
    )
)
