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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .dann import DomainAdversarialLoss, DomainDiscriminator, DomainLossOutput

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


class ConditionalDomainAdversarialLoss(DomainAdversarialLoss):
    """GRL + discriminator on :math:`T(f, g)` + (entropy-weighted) binary cross-entropy.

    ``forward(features, domain_labels, weights=None, logits=...)``: ``logits`` are the classifier's
    outputs for the same rows (softmaxed and detached here). ``weights`` (e.g. IWDAN's class
    weights) multiply the entropy weights. ``discriminator.feature_dim`` must equal the map's
    output size; :meth:`build` sizes it.
    """

    def __init__(
        self,
        discriminator: DomainDiscriminator,
        conditioning: MultilinearMap | RandomizedMultilinearMap,
        *,
        entropy_conditioning: bool = True,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(discriminator)
        if discriminator.feature_dim != conditioning.output_dim:
            raise ValueError(
                f"The CDAN discriminator takes {discriminator.feature_dim} inputs but the conditioning map gives "
                f"{conditioning.output_dim}; build both with ConditionalDomainAdversarialLoss.build."
            )
        self.conditioning = conditioning
        self.entropy_conditioning = entropy_conditioning
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
        entropy_conditioning: bool = True,
        map_kind: str | None = None,
        randomized_dim: int = 1024,
        seed: int = 0,
    ) -> "ConditionalDomainAdversarialLoss":
        """A conditioning map for ``feature_dim`` features and ``num_classes`` classes, and a discriminator sized for it.

        ``map_kind`` (``multilinear``/``randomized``) defaults to the size rule of :func:`conditioning_map`.
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
        return cls(discriminator, conditioning, entropy_conditioning=entropy_conditioning, settings=settings)

    @classmethod
    def from_settings(cls, settings: dict[str, Any], discriminator: dict[str, Any]) -> "ConditionalDomainAdversarialLoss":
        """Rebuild from the ``conditioning`` and ``discriminator`` entries of ``domain_adaptation.json``."""
        return cls.build(
            settings["feature_dim"],
            settings["num_classes"],
            hidden_size=discriminator["hidden_size"],
            num_layers=discriminator["num_layers"],
            dropout=discriminator["dropout"],
            entropy_conditioning=settings.get("entropy_conditioning", True),
            map_kind=settings.get("map"),
            randomized_dim=settings.get("randomized_dim", 1024),
            seed=settings.get("seed", 0),
        )

    def forward(
        self,
        features: torch.Tensor,
        domain_labels: torch.Tensor,
        weights: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
    ) -> DomainLossOutput:
        if logits is None:
            raise ValueError("CDAN conditions the discriminator on the classifier's logits; pass logits=.")
        predictions = logits.detach().float().softmax(dim=-1)
        conditioned = self.conditioning(features, predictions.to(features.dtype))
        if self.entropy_conditioning:
            entropy = -(predictions * predictions.clamp_min(1e-12).log()).sum(dim=-1)
            certainty = 1.0 + torch.exp(-entropy)
            certainty = certainty * len(certainty) / certainty.sum()
            weights = certainty if weights is None else weights.to(certainty.dtype) * certainty
        return super().forward(conditioned, domain_labels, weights)
