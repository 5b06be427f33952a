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

**Several sources** (multi-source adaptation, as in Zhao et al., *Adversarial Multiple Source Domain
Adaptation*, NeurIPS 2018): with :math:`K` labelled sources the discriminator has :math:`K + 1` outputs
and tells every domain apart, :math:`d \\in \\{0, …, K-1 = \\text{sources}, K = \\text{target}\\}`,

.. math::

    \\mathcal{L}_{dom} = \\frac{1}{n} \\sum_i \\mathrm{CE}\\big(\\mathrm{softmax}(D(R_λ(f_i))), d_i\\big),

still behind the same reversal, so the features are pushed to hide which source *and* whether the target
they come from. With one source the head keeps its single logit and BCE (saved models load unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .grl import GradientReversalLayer
from .label_shift import class_weighted_domain_weights
from .registry import AlignmentBatch, AlignmentMethod, DomainHeadSpec, MethodCard, TermOutput, register_method


class DomainDiscriminator(nn.Module):
    """An MLP ``feature_dim → hidden_size (× num_layers) → 1`` giving a domain logit.

    Same shape as Transfer-Learning-Library's ``DomainDiscriminator``: Linear, BatchNorm-free
    (so it behaves the same on any batch size and under DDP), ReLU, Dropout. With ``num_domains > 2``
    (several sources + the target) the last layer gives one logit per domain.
    """

    def __init__(
        self, feature_dim: int, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1, num_domains: int = 2
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"The discriminator needs at least one hidden layer, got num_layers={num_layers}.")
        if num_domains < 2:
            raise ValueError(f"The discriminator tells at least 2 domains apart, got num_domains={num_domains}.")
        layers: list[nn.Module] = []
        width = feature_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, 1 if num_domains == 2 else num_domains))
        self.net = nn.Sequential(*layers)
        self.feature_dim = feature_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.num_domains = num_domains

    @property
    def multi_class(self) -> bool:
        return self.num_domains > 2

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B,)`` source-vs-target logits, or ``(B, num_domains)`` logits with several sources."""
        out = self.net(features)
        return out if self.multi_class else out.squeeze(-1)

    def to_dict(self) -> dict[str, Any]:
        """The structure saved as ``discriminator`` in ``domain_adaptation.json`` (``num_domains`` only when > 2)."""
        values = {
            "feature_dim": self.feature_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }
        if self.multi_class:
            values["num_domains"] = self.num_domains
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DomainDiscriminator:
        return cls(values["feature_dim"], values["hidden_size"], values["num_layers"], values["dropout"],
                   int(values.get("num_domains", 2)))


@dataclass
class DomainLossOutput:
    loss: torch.Tensor
    accuracy: torch.Tensor
    """Fraction of examples whose domain the discriminator got right (detached)."""


class DomainAdversarialLoss(nn.Module):
    """GRL + discriminator + binary cross-entropy, as one module: the model's *domain head*.

    ``forward(features, domain_labels, grl_lambda=λ)`` returns the loss to *add* to the task loss; the
    reversal makes the backbone's gradient adversarial.
    """

    kind = "domain"

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
        *,
        grl_lambda: float = 1.0,
    ) -> DomainLossOutput:
        """``weights`` (optional, per example, detached) re-weight the BCE terms, e.g. IWDAN's class weights.

        With a multi-class discriminator ``domain_labels`` are the domain ids (``k`` = source ``k``, ``K`` = target).

        ``logits`` (the classifier's outputs) are ignored here; conditional heads (CDAN) use them.
        """
        domain_logits = self.discriminator(self.grl(features, grl_lambda))
        if self.discriminator.multi_class:  # several sources: one class per domain, cross-entropy
            per_row = F.cross_entropy(domain_logits, domain_labels.long(), reduction="none")
            if weights is not None:
                per_row = per_row * weights.to(per_row.dtype)
            with torch.no_grad():
                accuracy = (domain_logits.argmax(dim=-1) == domain_labels).float().mean()
            return DomainLossOutput(loss=per_row.mean(), accuracy=accuracy)
        targets = domain_labels.to(domain_logits.dtype)
        loss = F.binary_cross_entropy_with_logits(
            domain_logits, targets, weight=None if weights is None else weights.to(domain_logits.dtype)
        )
        with torch.no_grad():
            accuracy = ((domain_logits > 0).to(targets.dtype) == targets).float().mean()
        return DomainLossOutput(loss=loss, accuracy=accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DomainAdversarialLoss:
        return cls(DomainDiscriminator.from_dict(values["discriminator"]))


def build_domain_head(
    feature_dim: int, num_classes: int, *, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1,
    settings: Any = None, num_domains: int = 2,
) -> DomainAdversarialLoss:
    """DANN's domain head: an MLP discriminator on the features, behind the gradient reversal.

    ``num_domains`` = number of sources + 1 (the target); 2, the default, is the binary source-vs-target head.
    """
    return DomainAdversarialLoss(DomainDiscriminator(feature_dim, hidden_size, num_layers, dropout, num_domains))


# ----------------------------------------------------------------------------- the registered method
@dataclass
class DannSettings:
    class_weighting: bool = field(default=False, metadata={"argument": "domain_loss_class_weighting"})
    """IWDAN: weight source rows by p̂_T(y)/p_S(y) (:mod:`~hf_transfer.alignment.label_shift`)."""


class DomainAdversarialTerm:
    """DANN's term: the model's domain head on all rows, with IWDAN's class weights when asked.

    Subclasses (CDAN's) change the per-row weights through :meth:`row_weights`.
    """

    def __init__(self, settings: DannSettings) -> None:
        self.settings = settings

    def row_weights(self, batch: AlignmentBatch) -> torch.Tensor | None:
        if not self.settings.class_weighting:
            return None
        return class_weighted_domain_weights(batch.logits, batch.labels, batch.domain_labels)

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module, grl_lambda: float) -> TermOutput:
        weights = self.row_weights(batch)
        out = domain_head(batch.features, domain_targets(batch, domain_head), weights, logits=batch.logits,
                          grl_lambda=grl_lambda)
        return TermOutput(out.loss, {"domain_loss": out.loss.detach(), "domain_accuracy": out.accuracy})


def domain_targets(batch: AlignmentBatch, domain_head: nn.Module) -> torch.Tensor:
    """What the head predicts: source/target (0/1), or with a multi-class head each row's domain id."""
    discriminator = getattr(domain_head, "discriminator", None)
    if not getattr(discriminator, "multi_class", False):
        return batch.domain_labels
    if batch.domain_ids is None:
        raise ValueError(
            f"The domain head tells {discriminator.num_domains} domains apart but the batch has no domain_ids: train "
            "it on batches of several sources (hf_transfer.data.MultiSource), which the collator labels per domain."
        )
    return batch.domain_ids


_IWDAN_ADDITION = (
    " Source examples are weighted in the domain loss by the ratio of the target's estimated class proportions to the "
    "source's (IWDAN, Combes et al., NeurIPS 2020), so a different class mix is not forced into alignment."
)


def with_class_weighting(card: MethodCard, weighted_short: str) -> MethodCard:
    """The card of an adversarial method trained with IWDAN class weights."""
    return MethodCard(
        title=f"{card.title}, class-weighted ({weighted_short})", short=weighted_short,
        description=card.description + _IWDAN_ADDITION, tags=(*card.tags, weighted_short.lower()),
    )


DANN_CARD = MethodCard(
    title="domain-adversarial training (DANN) with a gradient reversal layer",
    short="DANN",
    description=(
        "During training a small domain discriminator learns to tell source features from target features, while a "
        "gradient reversal layer pushes the backbone (through its LoRA weights) towards features the discriminator "
        "cannot separate. Only source labels are used; the target domain contributes unlabelled inputs."
    ),
    tags=("dann",),
)

register_method(
    AlignmentMethod(
        name="dann",
        summary="domain-adversarial training: a discriminator behind a gradient reversal layer (Ganin et al. 2016)",
        settings_class=DannSettings,
        build_term=DomainAdversarialTerm,
        card=DANN_CARD,
        describe=lambda s: with_class_weighting(DANN_CARD, "IWDAN") if s.class_weighting else DANN_CARD,
        domain_head=DomainHeadSpec("domain", build_domain_head, DomainAdversarialLoss.from_dict),
        weight_argument="domain_loss_weight",
    )
)
