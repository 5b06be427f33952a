"""The training objective, built once from the arguments and passed to the model as a value.

.. math::

    \\mathcal{L} = \\mathcal{L}_{cls}(\\text{labelled rows}) + \\sum_k w_k \\, \\mathcal{L}_k(\\text{batch}; λ)

The terms :math:`\\mathcal{L}_k` come from the method registry: the chosen ``method`` and any
*combinable* method whose weight argument is set (``dann`` + ``mcc_loss_weight``). λ, the gradient
reversal coefficient, is the one value that changes during a run: the trainer computes it from
``global_step`` and passes it with every call (``model(**batch, objective=..., grl_lambda=λ)``), so
nothing is written onto the model while it trains and resume is exact.

A method with no discriminator of its own still runs the model's domain head as a *probe* with
weight 0: its accuracy is logged, every method builds and draws the same parameters and random
numbers (so methods differ only by their loss), and DDP never sees an unused parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .registry import (
    AlignmentBatch,
    AlignmentMethod,
    LossTerm,
    MethodCard,
    TermOutput,
    available_methods,
    get_method,
    settings_from_arguments,
    settings_from_dict,
    settings_to_dict,
    term_weight,
)

PROBE = "probe"


@dataclass(frozen=True)
class ObjectiveTerm:
    """One weighted term: a registered method and its settings."""

    method: str
    weight: float
    settings: Any

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "weight": self.weight, "settings": settings_to_dict(self.settings)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ObjectiveTerm:
        method = get_method(values["method"])
        return cls(method.name, float(values["weight"]), settings_from_dict(method, values.get("settings")))


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor
    """Σ w_k · L_k (without the classification loss)."""
    logs: dict[str, torch.Tensor]
    """Detached values per term (``domain_loss``, ``domain_accuracy``, ``mcc_loss`` ...)."""


class AlignmentObjective:
    """The weighted alignment terms of one run. Build it with :meth:`from_arguments` (or :meth:`for_method`).

    Calling it computes every term on a batch; the domain head (discriminator) is the model's, passed in,
    since its weights are trained and saved with the model.
    """

    def __init__(self, method: str, terms: list[ObjectiveTerm] | tuple[ObjectiveTerm, ...]) -> None:
        self.method = get_method(method).name
        self.terms = tuple(terms)
        self._built: list[tuple[ObjectiveTerm, AlignmentMethod, LossTerm]] = []
        for term in self.terms:
            spec = get_method(term.method)
            if spec.build_term is None:
                raise ValueError(f"Method {spec.name!r} has no loss term to add to an objective.")
            self._built.append((term, spec, spec.build_term(term.settings)))
        if not any(spec.needs_discriminator for _, spec, _ in self._built):
            # The zero-weight probe: DANN's loss on the model's domain head.
            probe = get_method("dann")
            probe_term = ObjectiveTerm(PROBE, 0.0, probe.settings_class())
            self._built.insert(0, (probe_term, probe, probe.build_term(probe_term.settings)))

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_arguments(cls, arguments: Any) -> AlignmentObjective:
        """The objective ``DomainAdaptationArguments`` describe: ``method`` plus any combinable method given a weight."""
        primary = get_method(arguments.method)
        overrides = dict(getattr(arguments, "method_settings", None) or {})
        terms = []
        if primary.build_term is not None:
            terms.append(ObjectiveTerm(primary.name, term_weight(primary, arguments),
                                       settings_from_arguments(primary, arguments, overrides)))
        for name in available_methods():
            extra = get_method(name)
            if extra is primary or not extra.combinable or extra.weight_argument is None:
                continue
            weight = getattr(arguments, extra.weight_argument, None)
            if weight:
                if not primary.needs_source:
                    raise ValueError(
                        f"method {primary.name!r} is source-free and takes no {extra.name} loss (it needs source "
                        f"batches); leave {extra.weight_argument} unset."
                    )
                if primary.build_term is None:
                    raise ValueError(
                        f"method {primary.name!r} is the no-adaptation baseline and takes no {extra.name} loss; use "
                        f"method {extra.name!r} for {extra.card.short} alone, or an adaptation method with "
                        f"{extra.weight_argument} for both."
                    )
                terms.append(ObjectiveTerm(extra.name, float(weight), settings_from_arguments(extra, arguments)))
        return cls(primary.name, terms)

    @classmethod
    def for_method(cls, method: str, weight: float | None = None, **settings: Any) -> AlignmentObjective:
        """One method with its default settings (``settings`` override them), e.g. ``for_method("mmd")``."""
        spec = get_method(method)
        if spec.build_term is None:
            return cls(spec.name, [])
        return cls(spec.name, [ObjectiveTerm(spec.name, spec.default_weight if weight is None else float(weight),
                                             settings_from_dict(spec, settings))])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "terms": [term.to_dict() for term in self.terms]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AlignmentObjective:
        return cls(values["method"], [ObjectiveTerm.from_dict(t) for t in values.get("terms", [])])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlignmentObjective) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        terms = ", ".join(f"{t.weight:g}·{t.method}" for t in self.terms) or "no alignment term"
        return f"AlignmentObjective({self.method}: {terms})"

    # -- what it needs and says -------------------------------------------------------------------

    @property
    def domain_head_kind(self) -> str | None:
        """The domain head this objective trains (``domain`` for DANN, ``conditional`` for CDAN).

        ``None`` when no term trains one: the probe then runs whichever head the model has.
        """
        term = self.domain_head_term
        return get_method(term.method).domain_head.kind if term is not None else None

    @property
    def domain_head_term(self) -> ObjectiveTerm | None:
        """The term that trains a discriminator of its own (``None``: the probe is DANN's, with defaults)."""
        return next((t for t, spec, _ in self._built if spec.domain_head is not None and t.method != PROBE), None)

    def weight_of(self, method: str) -> float:
        """The weight of ``method``'s term (0 when it is not in the objective)."""
        return sum(t.weight for t in self.terms if t.method == method)

    def settings_of(self, method: str) -> Any | None:
        return next((t.settings for t in self.terms if t.method == method), None)

    def card(self) -> MethodCard:
        """Card text: the primary method's, with each added term's sentence (DANN + MCC)."""
        primary = get_method(self.method)
        card = primary.card_for(self.settings_of(self.method) or primary.settings_class())
        for term in self.terms:
            if term.method == self.method:
                continue
            extra = get_method(term.method).card_for(term.settings)
            card = MethodCard(
                title=f"{card.title}, plus {extra.addition_title or extra.title}",
                short=f"{card.short} + {extra.short}",
                description=card.description + extra.addition,
                tags=tuple(dict.fromkeys(card.tags + extra.tags)),
                uses_target=card.uses_target or extra.uses_target,
            )
        return card

    # -- the loss ---------------------------------------------------------------------------------

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module, grl_lambda: float) -> ObjectiveOutput:
        total: torch.Tensor | None = None  # never None after the loop: there is always a term (the probe at least)
        logs: dict[str, torch.Tensor] = {}
        for term, spec, compute in self._built:
            out: TermOutput = compute(batch, domain_head=domain_head, grl_lambda=grl_lambda)
            weighted = term.weight * out.loss
            total = weighted if total is None else total + weighted
            logs.update(out.logs)
        return ObjectiveOutput(loss=total, logs=logs)
