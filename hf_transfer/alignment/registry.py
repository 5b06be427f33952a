"""The alignment-method registry: one entry per method, read by everything else.

Like peft's ``register_peft_method``, each method lives in one module of :mod:`hf_transfer.alignment`
and registers itself once, at import, with :func:`register_method`:

* its **name** (``DomainAdaptationArguments.method`` is checked against the registry);
* its **settings**: a dataclass whose fields are read from ``DomainAdaptationArguments``
  (``<prefix>_<field>`` or a field's ``metadata["argument"]``) and from ``method_settings``, and
  saved/read back with :func:`settings_to_dict` / :func:`settings_from_dict`;
* how to build its **loss term** from those settings (``None`` for the source-only baseline);
* the **domain head** it needs (a discriminator builder, or ``None``);
* its **weight**: the argument that holds it, and whether it may be added to another method;
* its **card text and tags**;
* for a **source-free** method (SHOT, TENT, SAR), a :class:`SourceFreeSpec`: what it updates and needs. It then
  trains without any source data (:mod:`hf_transfer.source_free`), and ``needs_source`` is ``False``.

Adding a method means writing its module (it registers itself), its test and a line of docs:
modules of this package are discovered and imported on the first look-up.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


@dataclass
class AlignmentBatch:
    """What a loss term sees of one training batch (source rows first, then target rows)."""

    features: torch.Tensor
    """``(B, d)`` pooled features that enter the classifier (float32)."""
    logits: torch.Tensor
    """``(B, K)`` classifier outputs."""
    labels: torch.Tensor | None
    """``(B,)`` class ids, ``-100`` for unlabelled rows."""
    domain_labels: torch.Tensor
    """``(B,)`` 0 = source, 1 = target."""
    domain_ids: torch.Tensor | None = None
    """``(B,)`` with several sources: ``k`` for source ``k``, ``K`` for the target (``None`` with one source)."""


@dataclass
class TermOutput:
    """A term's loss (to be weighted) and detached values to log under their names."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class LossTerm(Protocol):
    """``term(batch, domain_head=..., grl_lambda=...) -> TermOutput``."""

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module, grl_lambda: float) -> TermOutput: ...


@dataclass(frozen=True)
class MethodCard:
    """How a model card names and explains a method."""

    title: str
    short: str
    description: str
    tags: tuple[str, ...]
    addition: str = ""
    """The sentence appended when this method is added to another one's objective (e.g. DANN + MCC)."""
    addition_title: str = ""
    """How the title names it when added to another method (default: its title)."""
    uses_target: bool = True
    """False for the baseline: the target is then used for evaluation only."""


@dataclass(frozen=True)
class DomainHeadSpec:
    """How a method's domain head (discriminator) is built, and rebuilt from ``domain_adaptation.json``."""

    kind: str
    """``domain`` (DANN's discriminator) or ``conditional`` (CDAN's): a saved model records it."""
    build: Callable[..., nn.Module]
    """``build(feature_dim, num_classes, *, hidden_size, num_layers, dropout, settings) -> head``."""
    load: Callable[[dict[str, Any]], nn.Module]
    """Rebuild an untrained head from its ``to_dict()`` (the run info's ``discriminator``/``conditioning``)."""


@dataclass(frozen=True)
class SourceFreeSpec:
    """How a source-free method adapts a trained classifier with unlabelled target data only."""

    updates: str
    """``lora`` (LoRA on the features; the classification head frozen) or ``norm`` (only the normalisation
    layers' affine parameters, and a BatchNorm's running statistics)."""
    needs: str
    """What it needs, in words (help texts, the card): e.g. "target batches only; no source data"."""
    sharpness_aware: bool = False
    """Each step is a sharpness-aware (SAM) pair of forward/backward passes (SAR)."""

    def __post_init__(self) -> None:
        if self.updates not in ("lora", "norm"):
            raise ValueError(f"SourceFreeSpec.updates must be 'lora' or 'norm', got {self.updates!r}.")


@dataclass(frozen=True)
class AlignmentMethod:
    name: str
    summary: str
    """One line: what the method does (help texts, error messages)."""
    settings_class: type
    """A dataclass of the method's own settings (may have no field)."""
    build_term: Callable[[Any], LossTerm] | None
    """``build_term(settings) -> term``; ``None``: no alignment loss (the source-only baseline)."""
    card: MethodCard
    describe: Callable[[Any], MethodCard] | None = None
    """Card text that depends on the settings (CDAN+E, IWDAN); default: :attr:`card`."""
    domain_head: DomainHeadSpec | None = None
    """The discriminator the loss trains; ``None``: the model keeps DANN's as a zero-weight probe."""
    weight_argument: str | None = None
    """The ``DomainAdaptationArguments`` field holding the term's weight (``domain_loss_weight``)."""
    default_weight: float = 1.0
    """The weight when that field is ``None``."""
    combinable: bool = False
    """May be added to another method's objective by setting its ``weight_argument`` above 0 (DANN + MCC)."""
    settings_prefix: str | None = None
    """Arguments ``<prefix>_<field>`` fill the settings (``mcc`` → ``mcc_temperature``); default: the name."""
    log_name: str | None = None
    """The name its loss is logged under (default ``<name>_loss``)."""
    source_free: SourceFreeSpec | None = None
    """Set for a method that adapts without source data (SHOT, TENT, SAR): what it updates and needs."""

    @property
    def needs_source(self) -> bool:
        """Whether the method trains on labelled source batches (every method but the source-free ones)."""
        return self.source_free is None

    @property
    def needs_discriminator(self) -> bool:
        return self.domain_head is not None

    def card_for(self, settings: Any) -> MethodCard:
        return self.describe(settings) if self.describe is not None else self.card


_REGISTRY: dict[str, AlignmentMethod] = {}
_DISCOVERED = False


def register_method(method: AlignmentMethod) -> AlignmentMethod:
    """Add ``method`` to the registry (once per name)."""
    if not dataclasses.is_dataclass(method.settings_class):
        raise TypeError(f"{method.name}: settings_class must be a dataclass, got {method.settings_class!r}.")
    existing = _REGISTRY.get(method.name)
    if existing is not None and existing != method:
        raise ValueError(f"An alignment method named {method.name!r} is already registered.")
    _REGISTRY[method.name] = method
    return method


def _discover() -> None:
    """Import every module of :mod:`hf_transfer.alignment`, so built-in methods register themselves."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    package = importlib.import_module(__name__.rpartition(".")[0])
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def available_methods() -> list[str]:
    """Registered method names, sorted."""
    _discover()
    return sorted(_REGISTRY)


def source_free_methods() -> list[str]:
    """Registered methods that need no source data (``hf-transfer adapt``), sorted."""
    return [name for name in available_methods() if not _REGISTRY[name].needs_source]


def get_method(name: str) -> AlignmentMethod:
    """The registered method ``name``; an unknown name is an error that lists the known ones."""
    _discover()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown alignment method {name!r}; choose one of {', '.join(available_methods())}.")
    return _REGISTRY[name]


def domain_head_spec(kind: str) -> DomainHeadSpec:
    """The registered domain head of ``kind`` (``domain``, ``conditional``)."""
    _discover()
    for method in _REGISTRY.values():
        if method.domain_head is not None and method.domain_head.kind == kind:
            return method.domain_head
    raise ValueError(f"No registered method builds a {kind!r} domain head.")


# ----------------------------------------------------------------------------- settings
def settings_to_dict(settings: Any) -> dict[str, Any]:
    """A method's settings as JSON-ready values (the one naming used in ``domain_adaptation.json``)."""
    return dataclasses.asdict(settings)


def settings_from_dict(method: AlignmentMethod, values: Mapping[str, Any] | None) -> Any:
    """Settings back from :func:`settings_to_dict`; unknown keys are an error naming the known ones."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(method.settings_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {unknown} for method {method.name!r}; its settings are {sorted(known) or 'none'}."
        )
    return method.settings_class(**values)


def settings_from_arguments(method: AlignmentMethod, arguments: Any, overrides: Mapping[str, Any] | None = None) -> Any:
    """Fill ``method``'s settings from ``DomainAdaptationArguments``, then from ``overrides`` (``method_settings``)."""
    prefix = method.settings_prefix or method.name
    values: dict[str, Any] = {}
    for setting in dataclasses.fields(method.settings_class):
        argument = setting.metadata.get("argument", f"{prefix}_{setting.name}")
        if hasattr(arguments, argument):
            values[setting.name] = getattr(arguments, argument)
    values.update(overrides or {})
    return settings_from_dict(method, values)


def term_weight(method: AlignmentMethod, arguments: Any) -> float:
    """The weight of ``method``'s term from its ``weight_argument`` (``default_weight`` when unset)."""
    if method.weight_argument is None:
        return method.default_weight
    value = getattr(arguments, method.weight_argument, None)
    return method.default_weight if value is None else float(value)
