"""Adapter fusion and routing: one base model, several hf_transfer adapters trained for different targets.

Two ways to serve K adapted domains with one model:

* **Fusion** (:func:`fuse_adapters`): the K LoRA adapters become one, with peft's ``add_weighted_adapter``.
  With ``combination_type="cat"`` (the default) the fused update of every adapted weight is exactly the
  weighted sum of the adapters' updates,

  .. math:: ΔW = \\sum_k w_k \\, s_k B_k A_k, \\qquad s_k = α_k / r_k,

  stored at rank :math:`\\sum_k r_k` (A and B stacked). ``"linear"`` keeps rank r and mixes the factors,
  :math:`ΔW = (\\sum_k \\sqrt{w_k s_k} B_k)(\\sum_k \\sqrt{w_k s_k} A_k)`: the weighted sum *plus the cross
  terms* :math:`\\sqrt{w_i s_i w_j s_j} B_i A_j` (peft calls it "a rough approximation"); ``"ties"``,
  ``"dare_ties"`` and ``"dare_linear"`` prune and sign-elect the factors first (TIES-Merging, Yadav et al. 2023;
  DARE, Yu et al. 2024) and need a ``density``; ``"svd"`` re-factorises the exact sum at a chosen rank.
* **Routing** (:class:`AdapterRouter`): every adapter stays as it is, and each input goes to the adapter of
  its own domain in one mixed-batch forward (peft's ``adapter_names=`` argument). The domain is predicted
  without labels, by a domain discriminator: either each adapter's own (``scores="discriminators"``: the
  adapter whose discriminator is surest the input is its target wins), or a K-way domain classifier fitted on
  unlabelled examples of each domain (:meth:`AdapterRouter.fit_domain_classifier`), which is what routing needs
  when the adapters' own discriminators were trained to be fooled.

**Heads.** Every hf_transfer adapter carries its classification head (peft ``modules_to_save``), which peft
refuses to merge. Fusion therefore requires the same label set (same ``id2label``) in every adapter, and the
fused head is the weighted average of the heads, :math:`\\sum_k w_k h_k / \\sum_k w_k` (the classes line up
row by row because the label sets are identical). Routing routes the heads too: each input is classified by its
own adapter's head. The domain discriminators are not fused (each was trained against one target); the fused
folder has none, and a fused adapter that is adapted further starts with a fresh one; nor are auxiliary task heads
(:mod:`hf_transfer.auxiliary`).

The fused folder is a standard hf_transfer folder (peft adapter, ``domain_adaptation.json``, card): it saves,
evaluates and pushes like any other, and its run info and card list the adapters fused and their domains.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .artifacts import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    DISCRIMINATOR_WEIGHTS_NAME,
    MODEL_CARD_NAME,
    PROCESSOR_FILES,
    RunInfo,
    base_model_reference,
    resolve_base_model,
)
from .privacy import is_hub_id, sanitize

logger = logging.getLogger(__name__)

COMBINATION_TYPES = ("cat", "linear", "ties", "dare_ties", "dare_linear", "svd")
"""peft ``add_weighted_adapter`` combinations offered; ``cat`` is the exact weighted sum of the updates."""
NEEDS_DENSITY = ("ties", "dare_ties", "dare_linear")
ROUTER_SCORES = ("discriminators", "domain_classifier")
FUSED_ADAPTER_NAME = "fused"


class FusionError(ValueError):
    """Adapters that cannot be fused or routed together, with what to change."""


@dataclass
class FusionSource:
    """One adapter of a fusion: its folder, name (its domain's), weight and recorded run."""

    path: Path
    name: str
    weight: float
    run_info: RunInfo
    adapter_config: dict[str, Any]

    @property
    def base_model(self) -> str | None:
        return resolve_base_model(self.run_info.base_model or self.adapter_config.get("base_model_name_or_path"), self.path)

    def describe(self) -> dict[str, Any]:
        """What the fused run info and card say about this adapter (no local path: a Hub id or the folder name)."""
        return {
            "name": self.name,
            "adapter": str(self.path) if is_hub_id(str(self.path)) and not self.path.exists() else self.path.name,
            "weight": self.weight,
            "method": self.run_info.method,
            "lora_r": self.adapter_config.get("r"),
            "source_domain": self.run_info.source_domain,
            "target_domain": self.run_info.target_domain,
            "metrics": {k: v for k, v in self.run_info.metrics.items() if k.endswith(("_accuracy", "_f1"))},
        }


def read_sources(
    adapters: Sequence[str | os.PathLike], *, names: Sequence[str] | None = None, weights: Sequence[float] | None = None
) -> list[FusionSource]:
    """Read and check the adapters: the same base model, modality, classifier, head modules and label set."""
    if len(adapters) < 2:
        raise FusionError(f"Fusion and routing need at least two adapters, got {len(adapters)}.")
    paths = [Path(a) for a in adapters]
    names = list(names) if names else _default_names(paths)
    weights = [1.0 / len(paths)] * len(paths) if weights is None else [float(w) for w in weights]
    if len(names) != len(paths) or len(weights) != len(paths):
        raise FusionError(
            f"{len(paths)} adapters but {len(names)} names and {len(weights)} weights: give one name and one weight "
            "per adapter (or none, for the folder names and equal weights)."
        )
    if len(set(names)) != len(names):
        raise FusionError(f"Adapter names must differ, got {names}: pass --names with one name per adapter's domain.")
    if FUSED_ADAPTER_NAME in names or "__base__" in names:
        raise FusionError(f"{FUSED_ADAPTER_NAME!r} and '__base__' are reserved adapter names; rename that adapter.")
    sources = []
    for path, name, weight in zip(paths, names, weights):
        if not (path / ADAPTER_CONFIG_NAME).is_file() or not (path / ADAPTER_WEIGHTS_NAME).is_file():
            raise FusionError(
                f"{path} is not a saved adapter folder (no {ADAPTER_CONFIG_NAME} / {ADAPTER_WEIGHTS_NAME}): pass folders "
                "written by `hf-transfer train` (download Hub repos first with hf_transfer.hub.download_adapted_model)."
            )
        config = json.loads((path / ADAPTER_CONFIG_NAME).read_text(encoding="utf-8"))
        sources.append(FusionSource(path, name, weight, RunInfo.read(path), config))
    first = sources[0]
    checks = {
        "base model": lambda s: s.base_model,
        "modality": lambda s: s.run_info.modality,
        "classifier": lambda s: s.run_info.classifier,
        "head modules (modules_to_save)": lambda s: sorted(s.adapter_config.get("modules_to_save") or []),
        "label set (id2label)": lambda s: s.run_info.id2label,
    }
    for what, value in checks.items():
        for source in sources[1:]:
            if value(source) != value(first):
                raise FusionError(
                    f"Adapters {first.name!r} and {source.name!r} differ in their {what} ({value(first)!r} vs "
                    f"{value(source)!r}): only adapters trained on the same base model with the same labels can be "
                    "fused or routed (their heads are averaged, or chosen per input, class by class)."
                )
    return sources


def _default_names(paths: Sequence[Path]) -> list[str]:
    """The folder names (``outputs/usps-dann`` → ``usps-dann``), numbered when two are alike."""
    names = [p.resolve().name.replace(".", "_") or f"adapter{i}" for i, p in enumerate(paths)]
    return names if len(set(names)) == len(names) else [f"{n}-{i}" for i, n in enumerate(names)]


def _load_base(sources: Sequence[FusionSource], base_model: Any = None) -> Any:
    from .modeling import _load_base_model

    if base_model is not None:
        return base_model
    info = dataclasses.replace(sources[0].run_info, base_model=sources[0].base_model)
    return _load_base_model(info)


def _split_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An adapter file's LoRA factors and its head (``modules_to_save``) weights."""
    from safetensors.torch import load_file

    state = load_file(str(path / ADAPTER_WEIGHTS_NAME))
    lora = {k: v for k, v in state.items() if ".lora_" in k}
    head = {k: v for k, v in state.items() if ".lora_" not in k}
    return lora, head


def load_lora_only(sources: Sequence[FusionSource], base_model: Any = None) -> Any:
    """One ``PeftModel`` holding every adapter's LoRA factors (no heads) under its name: what peft can merge."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    from .utils.peft_compat import peft_wrapping

    model = None
    for source in sources:
        config = LoraConfig.from_pretrained(str(source.path))
        config.modules_to_save = None
        config.inference_mode = True
        if model is None:
            with peft_wrapping():
                model = get_peft_model(_load_base(sources, base_model), config, adapter_name=source.name)
        else:
            model.add_adapter(source.name, config)
        lora, _ = _split_state(source.path)
        result = set_peft_model_state_dict(model, lora, adapter_name=source.name)
        if getattr(result, "unexpected_keys", None):
            raise FusionError(f"{source.path} has LoRA weights its own config does not target: {result.unexpected_keys[:3]}")
    return model.eval()


def combine_heads(sources: Sequence[FusionSource]) -> dict[str, torch.Tensor]:
    """The weighted average of the adapters' heads, :math:`\\sum_k w_k h_k / \\sum_k w_k` (same label set checked)."""
    total = sum(s.weight for s in sources)
    if abs(total) < 1e-12:
        raise FusionError("The fusion weights sum to 0: the heads cannot be averaged; use weights with a non-zero sum.")
    heads = [_split_state(s.path)[1] for s in sources]
    keys = set(heads[0])
    if any(set(h) != keys for h in heads[1:]):
        raise FusionError("The adapters' heads hold different tensors; they were not trained with the same head modules.")
    return {k: sum(s.weight * h[k].float() for s, h in zip(sources, heads)) / total for k in sorted(keys)}


def fuse_adapters(
    adapters: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    weights: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    combination_type: str = "cat",
    density: float | None = None,
    majority_sign_method: str = "total",
    svd_rank: int | None = None,
    base_model: Any = None,
) -> Path:
    """Fuse saved hf_transfer adapters into one saved adapter in ``output_dir``; returns the folder.

    ``weights`` default to equal weights summing to 1; ``names`` (each adapter's domain) to the folder names.
    See the module docstring for the combinations and how the heads are combined.
    """
    if combination_type not in COMBINATION_TYPES:
        raise FusionError(f"combination_type must be one of {COMBINATION_TYPES}, got {combination_type!r}.")
    if combination_type in NEEDS_DENSITY and density is None:
        raise FusionError(f"combination_type {combination_type!r} prunes the factors: pass a density in (0, 1], e.g. 0.5.")
    if density is not None and not 0 < density <= 1:
        raise FusionError(f"density must be in (0, 1], got {density}.")
    sources = read_sources(adapters, names=names, weights=weights)
    from peft.utils import get_peft_model_state_dict

    model = load_lora_only(sources, base_model)
    with torch.no_grad():
        model.add_weighted_adapter(
            [s.name for s in sources], [s.weight for s in sources], FUSED_ADAPTER_NAME,
            combination_type=combination_type, density=density, majority_sign_method=majority_sign_method,
            svd_rank=svd_rank,
        )
    config = model.peft_config[FUSED_ADAPTER_NAME]
    state = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model, adapter_name=FUSED_ADAPTER_NAME).items()}
    state.update(combine_heads(sources))
    config.modules_to_save = list(sources[0].adapter_config.get("modules_to_save") or []) or None
    config.inference_mode = True
    run_info = _fused_run_info(sources, config, combination_type=combination_type, density=density)
    _write_fused(Path(output_dir), sources, config, state, run_info)
    return Path(output_dir)


def _fused_run_info(sources: Sequence[FusionSource], config: Any, **settings: Any) -> RunInfo:
    first = sources[0].run_info
    shared_source = all(s.run_info.source_domain == first.source_domain for s in sources)
    targets = ", ".join(f"{s.name} ({s.run_info.target_domain.get('description') or 'no description'})" for s in sources)
    return dataclasses.replace(
        first,
        lora={"r": config.r, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
              "target_modules": sorted(config.target_modules) if not isinstance(config.target_modules, str)
              else config.target_modules},
        source_domain=first.source_domain if shared_source else {"description": "the sources of the fused adapters"},
        target_domain={"description": f"{len(sources)} targets, one per fused adapter: {targets}"},
        metrics={},
        tasks=None,  # auxiliary task heads are not fused: the fused adapter has the main head only
        baseline=None,
        shift=None,
        pictures=None,
        selection=None,
        fusion={
            "combination_type": settings["combination_type"],
            **({"density": settings["density"]} if settings.get("density") is not None else {}),
            "head": "weighted average of the adapters' heads (same label set)",
            "sources": [sanitize(s.describe()) for s in sources],  # no local path reaches the run info or card
        },
    )


def _write_fused(output_dir: Path, sources: Sequence[FusionSource], config: Any, state: dict[str, torch.Tensor],
                 run_info: RunInfo) -> None:
    from safetensors.torch import save_file

    from .modeling import _write_card
    from .utils.io import atomic_directory_update

    base = sources[0].base_model
    with atomic_directory_update(output_dir) as scratch:
        recorded = config.base_model_name_or_path
        config.base_model_name_or_path = base_model_reference(base, output_dir)
        try:
            config.save_pretrained(str(scratch))
        finally:
            config.base_model_name_or_path = recorded
        save_file(state, str(scratch / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
        for name in PROCESSOR_FILES:  # the processor travels with the adapter, as after training
            if (sources[0].path / name).is_file():
                shutil.copyfile(sources[0].path / name, scratch / name)
        dataclasses.replace(run_info, base_model=base_model_reference(base, output_dir)).write(scratch)
        _write_card(scratch, output_dir.name)
    (output_dir / DISCRIMINATOR_WEIGHTS_NAME).unlink(missing_ok=True)  # a stale one from an earlier save: not ours
    if not (output_dir / MODEL_CARD_NAME).exists():
        logger.warning("No model card was written in %s.", output_dir)


# ----------------------------------------------------------------------------- routing
class AdapterRouter(nn.Module):
    """Every adapter (LoRA + head) in one ``PeftModel``; each input goes to its predicted domain's adapter.

    ``router(**inputs)`` returns the logits of a mixed-batch forward (``adapter_names=`` in peft) in which row i
    uses adapter ``route(**inputs)[i]``: exactly what that adapter alone gives for row i.
    """

    def __init__(self, model: Any, sources: Sequence[FusionSource], discriminators: Mapping[str, nn.Module] | None,
                 classifier: str) -> None:
        super().__init__()
        self.model = model
        self.names = [s.name for s in sources]
        self.discriminators = nn.ModuleDict(dict(discriminators or {}))
        self.domain_classifier: nn.Linear | None = None
        self._feature_mean: torch.Tensor | None = None
        self._feature_std: torch.Tensor | None = None
        self._features: list[torch.Tensor] = []
        self.model.base_model.model.get_submodule(classifier).register_forward_pre_hook(self._capture)

    @classmethod
    def from_pretrained(
        cls, adapters: Sequence[str | os.PathLike], *, names: Sequence[str] | None = None, base_model: Any = None
    ) -> AdapterRouter:
        """Load every adapter (with its head, and its discriminator when saved) onto one base model."""
        from peft import PeftModel

        from .alignment.registry import domain_head_spec
        from .utils.peft_compat import peft_wrapping

        sources = read_sources(adapters, names=names)
        base = _load_base(sources, base_model)
        with peft_wrapping():
            model = PeftModel.from_pretrained(base, str(sources[0].path), adapter_name=sources[0].name)
        for source in sources[1:]:
            model.load_adapter(str(source.path), adapter_name=source.name)
        discriminators = {}
        for source in sources:
            weights = source.path / DISCRIMINATOR_WEIGHTS_NAME
            if weights.is_file() and source.run_info.domain_head_kind == "domain" and source.run_info.discriminator:
                from safetensors.torch import load_file

                head = domain_head_spec("domain").load({"discriminator": source.run_info.discriminator, "conditioning": None})
                head.discriminator.load_state_dict(load_file(str(weights)))
                discriminators[source.name] = head.discriminator
        return cls(model, sources, discriminators, sources[0].run_info.classifier or "classifier").eval()

    def _capture(self, module: nn.Module, args: tuple) -> None:
        if args:
            self._features.append(args[0])

    def _features_of(self, inputs: Mapping[str, Any], adapter: str | None) -> torch.Tensor:
        """Pooled features entering the classifier, under ``adapter`` (``None``: the base model, adapters off)."""
        from .modeling import pool_features

        self._features.clear()
        if adapter is None:
            with self.model.disable_adapter():
                self.model(**inputs)
        else:
            batch = len(next(iter(inputs.values())))
            self.model(**inputs, adapter_names=[adapter] * batch)
        features = pool_features(self._features.pop()).float()
        self._features.clear()
        return features

    @torch.no_grad()
    def route_scores(self, scores: str | None = None, **inputs: Any) -> torch.Tensor:
        """(batch, K) scores, one column per adapter; the route is the argmax.

        ``discriminators``: column k is adapter k's discriminator logit that the input is *its* target, on the
        features adapter k gives it. ``domain_classifier``: the fitted K-way domain classifier's logits on the base
        model's features. Default: the domain classifier once fitted, else the discriminators.
        """
        scores = scores or ("domain_classifier" if self.domain_classifier is not None else "discriminators")
        if scores == "domain_classifier":
            if self.domain_classifier is None:
                raise FusionError("The router has no domain classifier yet: call fit_domain_classifier first.")
            features = self._features_of(inputs, None)
            return self.domain_classifier((features - self._feature_mean) / self._feature_std)
        if scores != "discriminators":
            raise FusionError(f"scores must be one of {ROUTER_SCORES}, got {scores!r}.")
        missing = [n for n in self.names if n not in self.discriminators]
        if missing:
            raise FusionError(
                f"Adapters {missing} have no saved DANN-style domain discriminator (pushed without it, or a CDAN / "
                "discriminator-free method): fit a domain classifier instead (fit_domain_classifier, or "
                "`hf-transfer fuse --route --router domain_classifier`)."
            )
        return torch.stack([self.discriminators[n](self._features_of(inputs, n)) for n in self.names], dim=1)

    def route(self, scores: str | None = None, **inputs: Any) -> list[str]:
        """The adapter name chosen for each input."""
        return [self.names[i] for i in self.route_scores(scores, **inputs).argmax(dim=1).tolist()]

    @torch.no_grad()
    def fit_domain_classifier(self, domains: Mapping[str, Iterable[Mapping[str, Any]]], *, steps: int = 200,
                              seed: int = 0) -> dict[str, float]:
        """Fit the K-way domain classifier on unlabelled batches of each adapter's domain (labels are not read).

        A multinomial logistic regression on the base model's standardised features (the adapters' own features
        were trained to hide the domain), by full-batch L-BFGS. Returns its training accuracy per domain.
        """
        unknown = set(domains) - set(self.names)
        if unknown or not domains:
            raise FusionError(f"Domains {sorted(unknown) or '(none)'} are not adapter names {self.names}: name each "
                              "domain's data after the adapter trained for it.")
        features, labels = [], []
        for name, batches in domains.items():
            for batch in batches:
                batch = {k: v for k, v in batch.items() if k not in ("labels", "domain_labels")}
                features.append(self._features_of(batch, None))
                labels.append(torch.full((len(features[-1]),), self.names.index(name)))
        x, y = torch.cat(features), torch.cat(labels)
        self._feature_mean, self._feature_std = x.mean(0), x.std(0).clamp(min=1e-6)
        x = (x - self._feature_mean) / self._feature_std
        torch.manual_seed(seed)
        classifier = nn.Linear(x.shape[1], len(self.names))
        optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(classifier(x), y) + 1e-3 * classifier.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        self.domain_classifier = classifier.requires_grad_(False)
        predicted = classifier(x).argmax(1)
        return {n: float((predicted[y == i] == i).float().mean()) for i, n in enumerate(self.names) if (y == i).any()}

    @torch.no_grad()
    def forward(self, adapter_names: Sequence[str] | None = None, scores: str | None = None, **inputs: Any) -> Any:
        """The mixed-batch output: row i through adapter ``adapter_names[i]`` (default: the predicted routes)."""
        inputs = {k: v for k, v in inputs.items() if k not in ("labels", "domain_labels")}
        names = list(adapter_names) if adapter_names is not None else self.route(scores, **inputs)
        unknown = set(names) - set(self.model.peft_config) - {"__base__"}
        if unknown:
            raise FusionError(f"Unknown adapters {sorted(unknown)}; this router holds {sorted(self.model.peft_config)}.")
        self._features.clear()
        output = self.model(**inputs, adapter_names=names)
        self._features.clear()
        return output


__all__ = [
    "COMBINATION_TYPES",
    "AdapterRouter",
    "FusionError",
    "FusionSource",
    "combine_heads",
    "evaluate_fusion",
    "record_fusion_evaluation",
    "fuse_adapters",
    "load_lora_only",
    "read_sources",
]


# ----------------------------------------------------------------------------- evaluation on every domain
class _OneAdapter(nn.Module):
    """The router's model with every row through one adapter: a fused adapter, or a domain's own."""

    def __init__(self, router: AdapterRouter, adapter: str) -> None:
        super().__init__()
        self.router, self.adapter = router, adapter

    def forward(self, **inputs: Any) -> Any:
        batch = len(next(iter(inputs.values())))
        return self.router(adapter_names=[self.adapter] * batch, **inputs)


class _Routed(nn.Module):
    def __init__(self, router: AdapterRouter, scores: str | None) -> None:
        super().__init__()
        self.router, self.scores, self.routes = router, scores, []

    def forward(self, **inputs: Any) -> Any:
        names = self.router.route(self.scores, **inputs)
        self.routes += names
        return self.router(adapter_names=names, **inputs)


def evaluate_fusion(
    adapters: Sequence[str | os.PathLike],
    domains: Mapping[str, Mapping[str, Any]],
    *,
    names: Sequence[str] | None = None,
    fused_dir: str | os.PathLike | None = None,
    route: bool = True,
    router_scores: str = "domain_classifier",
    router_domains: Mapping[str, Mapping[str, Any]] | None = None,
    max_router_examples: int = 256,
    batch_size: int = 32,
    base_model: Any = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy and macro-F1 on every domain: the fused adapter, routing, and the domain's own adapter.

    ``domains`` maps a domain name to its labelled evaluation data (``DomainDataArguments`` fields: ``dataset``,
    ``split``, ``center_crop``, ...); a domain named after an adapter is that adapter's own domain (its "own" column,
    and the router's right answer). ``router_domains`` (default: ``domains`` with ``split`` ``train``) gives the
    unlabelled examples the domain classifier is fitted on, at most ``max_router_examples`` per adapter's domain.
    When ``fused_dir`` is given, the results are written into its run info and card.
    """
    from transformers import AutoProcessor

    from .data import DomainBatchCollator
    from .evaluation import evaluate_model, load_eval_domain, prepare_eval_data

    if router_scores not in ROUTER_SCORES:
        raise FusionError(f"router_scores must be one of {ROUTER_SCORES}, got {router_scores!r}.")
    router = AdapterRouter.from_pretrained(adapters, names=names, base_model=base_model)
    first = Path(adapters[0])
    run_info = RunInfo.read(first)
    processor = AutoProcessor.from_pretrained(str(first))
    if fused_dir is not None:
        router.model.load_adapter(str(fused_dir), adapter_name=FUSED_ADAPTER_NAME)
    if route and router_scores == "domain_classifier":
        fit_on = router_domains or {n: {**d, "split": "train"} for n, d in domains.items() if n in router.names}
        batches = {}
        for name, args in fit_on.items():
            data = load_eval_domain(run_info, str(first), **{k: v for k, v in args.items() if k != "center_crop"})
            data = data.select(range(min(len(data), max_router_examples)))
            data = prepare_eval_data(data, processor, run_info, center_crop=args.get("center_crop"))
            loader = torch.utils.data.DataLoader(data, batch_size=batch_size,
                                                 collate_fn=DomainBatchCollator.for_processor(processor))
            batches[name] = list(loader)
        router.fit_domain_classifier(batches)
    results: dict[str, dict[str, Any]] = {}
    for domain, args in domains.items():
        crop = args.get("center_crop")
        data = load_eval_domain(run_info, str(first), **{k: v for k, v in args.items() if k != "center_crop"})
        row: dict[str, Any] = {}
        if fused_dir is not None:
            row["fused"] = evaluate_model(_OneAdapter(router, FUSED_ADAPTER_NAME), data, processor, run_info,
                                          batch_size=batch_size, center_crop=crop)
        if route:
            routed = _Routed(router, router_scores)
            row["routed"] = evaluate_model(routed, data, processor, run_info, batch_size=batch_size, center_crop=crop)
            if domain in router.names:
                row["routing_accuracy"] = sum(r == domain for r in routed.routes) / max(len(routed.routes), 1)
        if domain in router.names:
            row["own"] = evaluate_model(_OneAdapter(router, domain), data, processor, run_info, batch_size=batch_size,
                                        center_crop=crop)
        results[domain] = row
    if fused_dir is not None:
        record_fusion_evaluation(fused_dir, results)
    return results


def record_fusion_evaluation(fused_dir: str | os.PathLike, results: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the per-domain results into the fused folder's run info (``fusion.evaluation``, ``metrics``) and card."""
    from .modeling import _write_card

    info = RunInfo.read(fused_dir)
    fusion = dict(info.fusion or {})
    fusion["evaluation"] = json.loads(json.dumps(results))
    metrics = dict(info.metrics)
    for domain, row in results.items():
        for key in ("accuracy", "f1"):
            if key in (row.get("fused") or {}):
                metrics[f"eval_{domain}_{key}"] = float(row["fused"][key])
    dataclasses.replace(info, fusion=fusion, metrics=metrics).write(fused_dir)
    _write_card(Path(fused_dir), Path(fused_dir).name)
