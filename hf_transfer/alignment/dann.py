"""Domain-adversarial loss (DANN).

Ganin et al., *Domain-Adversarial Training of Neural Networks*, JMLR 2016.

A discriminator :math:`D` predicts the domain :math:`d \\in \\{0 = \\text{source}, 1 = \\text{target}\\}`
of a feature vector :math:`f = F(x)`. Through a gradient reversal layer :math:`R_λ` the
single objective

.. math::

    \\mathcal{L}_{dom} = \\frac{1}{n} \\sum_i \\mathrm{BCE}\\big(D(R_λ(f_i)), d_i\\big)

is minimised by :math:`D` and, with the reversed sign, maximised by :math:`F`: the
features become domain-invariant while the task head keeps them discriminative. The
discriminator's accuracy is the natural progress signal: it drifts towards 0.5 as the
domains become indistinguishable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .grl import GradientReversalLayer


class DomainDiscriminator(nn.Module):
    """An MLP ``feature_dim → hidden_size (× num_layers) → 1`` giving a domain logit.

    Same shape as Transfer-Learning-Library's ``DomainDiscriminator``: Linear, BatchNorm-free
    (so it behaves the same on any batch size and under DDP), ReLU, Dropout.
    """

    def __init__(self, feature_dim: int, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"The discriminator needs at least one hidden layer, got num_layers={num_layers}.")
        layers: list[nn.Module] = []
        width = feature_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.feature_dim = feature_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)

    def config_dict(self) -> dict:
        return {
            "feature_dim": self.feature_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }


@dataclass
class DomainLossOutput:
    loss: torch.Tensor
    accuracy: torch.Tensor
    """Fraction of examples whose domain the discriminator got right (detached)."""


class DomainAdversarialLoss(nn.Module):
    """GRL + discriminator + binary cross-entropy, as one module.

    ``forward(features, domain_labels)`` returns the loss to *add* to the task loss; the
    reversal makes the backbone's gradient adversarial. ``grl.coeff`` is λ.
    """

    def __init__(self, discriminator: DomainDiscriminator) -> None:
        super().__init__()
        self.grl = GradientReversalLayer()
        self.discriminator = discriminator

    def forward(
        self,
        features: torch.Tensor,
        domain_labels: torch.Tensor,
        weights: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
    ) -> DomainLossOutput:
        """``weights`` (optional, per example, detached) re-weight the BCE terms, e.g. IWDAN's class weights.

        ``logits`` (the classifier's outputs) are ignored here; conditional losses (CDAN) use them.
        """
        domain_logits = self.discriminator(self.grl(features))
        targets = domain_labels.to(domain_logits.dtype)
        loss = F.binary_cross_entropy_with_logits(
            domain_logits, targets, weight=None if weights is None else weights.to(domain_logits.dtype)
        )
        with torch.no_grad():
            accuracy = ((domain_logits > 0).to(targets.dtype) == targets).float().mean()
        return DomainLossOutput(loss=loss, accuracy=accuracy)
