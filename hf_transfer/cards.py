"""Model cards for adapted models: Hub metadata (model-index, datasets, tags) plus a readable body.

Why a module of its own: the card is the only human-facing artefact pushed to the Hub, so it must be
correct (metadata the Hub validates), honest (adapted vs source-only results, domain-specific limits)
and must never leak local paths, user names or tokens from the machine that trained the model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .artifacts import (
    ADAPTER_CONFIG_NAME,
    BASE_CONFIG_NAME,
    DISCRIMINATOR_WEIGHTS_NAME,
    PROCESSOR_FILES,
    RUN_INFO_NAME,
    installed_versions,
    is_relative_reference,
    resolve_base_model,
)
from .modalities import get_modality, modality_of_task, task_of
from .privacy import LOCAL_DATA, is_hub_id, sanitize, scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from huggingface_hub import EvalResult, ModelCard

# huggingface_hub's card classes are imported where a card is built: the CLI reads DOMAINS from here
# for its --help, which then starts in a fraction of a second.

# The card's domain sections; training_args (hub_card_domain) and the push CLI (--domain) read it from here.
DOMAINS = ("generic", "medical", "finance", "speech")
TEMPLATE_NAME = "hf_transfer_card.md"
TEMPLATE_PATH = Path(__file__).parent / "templates" / TEMPLATE_NAME

def _conditioning_summary(info: Mapping) -> str:
    """CDAN's conditioning in words: which multilinear map, and whether entropy conditioning was on."""
    settings = _as_dict(info.get("conditioning"))
    if settings.get("map") == "randomized":
        kind = f"randomized multilinear map (features ⊗ predictions, {settings.get('randomized_dim')} dimensions)"
    else:
        kind = "multilinear map (features ⊗ predictions)"
    entropy = "on" if settings.get("entropy_conditioning", True) else "off"
    return f"{kind}; entropy conditioning {entropy}"


def method_view(info: Mapping) -> dict[str, Any]:
    """Title, short name, description, tags and the target's role for the card, from the run's objective.

    The text of each method comes from the method registry (:mod:`hf_transfer.alignment.registry`);
    torch is imported only here, when a card is rendered.
    """
    from .alignment.objective import AlignmentObjective
    from .alignment.registry import get_method
    from .artifacts import RunInfo

    objective = AlignmentObjective.from_dict(RunInfo.from_dict(dict(info)).objective)
    card = objective.card()
    terms = [
        f"{term.weight:g} × {term.method}"
        + (f" ({', '.join(f'{k}={v}' for k, v in vars(term.settings).items())})" if vars(term.settings) else "")
        for term in objective.terms
    ]
    return {
        "method": objective.method,
        "title": card.title,
        "short": card.short,
        "description": card.description,
        "tags": list(card.tags),
        "role": "unlabelled during training" if card.uses_target else "evaluation only",
        "adversarial": any(
            get_method(t.method).needs_discriminator and get_method(t.method).domain_head.kind != "prototype"
            for t in objective.terms
        ),
        "objective_summary": " + ".join(terms if not get_method(objective.method).needs_source
                                        else ["classification loss", *terms]),
    }


def native_adapter_loading(model_type: str | None, task: str) -> bool:
    """Whether transformers' own PEFT integration can load an adapter repo for this architecture.

    Some models (e.g. wav2vec2) override ``load_adapter`` for their own language adapters, so
    ``AutoModel...from_pretrained(adapter_repo)`` and ``pipeline`` fail there; PEFT still works.
    """
    if not model_type:
        return True
    try:
        import transformers
        from transformers.integrations import PeftAdapterMixin
        from transformers.models.auto import modeling_auto as auto

        mapping = getattr(auto, get_modality(modality_of_task(task)).auto_mapping)  # ValueError: another task
        model_class = getattr(transformers, mapping[model_type])
    except (ImportError, KeyError, AttributeError, ValueError):
        return True
    return model_class.load_adapter is PeftAdapterMixin.load_adapter


def load_run_info(output_dir: str | os.PathLike) -> dict:
    """Read ``domain_adaptation.json`` (optional) and fill gaps from ``adapter_config.json``.

    Also says what the folder holds, for the card: ``has_discriminator``, ``has_base_config``, ``has_processor``,
    and ``base_model_is_local`` when the recorded base is a checkpoint folder on this machine (not a Hub id).
    """
    from .artifacts import RunInfo

    directory = Path(output_dir)
    info: dict = {}
    if (directory / RUN_INFO_NAME).is_file():
        info = RunInfo.read(directory).to_dict()
    if (directory / ADAPTER_CONFIG_NAME).is_file():
        adapter = json.loads((directory / ADAPTER_CONFIG_NAME).read_text())
        info.setdefault("base_model", adapter.get("base_model_name_or_path"))
        base_config = Path(str(resolve_base_model(adapter.get("base_model_name_or_path"), directory) or "")) / "config.json"
        for config_path in (directory / "config.json", base_config):
            if "model_type" not in info and config_path.is_file():
                info["model_type"] = json.loads(config_path.read_text()).get("model_type")
        if not info.get("lora"):
            info["lora"] = {k: adapter.get(k) for k in ("r", "lora_alpha", "lora_dropout", "target_modules") if k in adapter}
    info["has_discriminator"] = (directory / DISCRIMINATOR_WEIGHTS_NAME).is_file()
    info["has_base_config"] = (directory / BASE_CONFIG_NAME).is_file()
    info["has_processor"] = any((directory / name).is_file() for name in PROCESSOR_FILES)
    base = info.get("base_model")
    info["base_model_is_local"] = isinstance(base, str) and (
        is_relative_reference(base) or os.path.isabs(base) or os.path.isdir(str(resolve_base_model(base, directory)))
    )
    return info


def _as_dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None or value == "":
        return "—"
    return str(value)


def _summary(values: Mapping, keys: list[str]) -> str:
    parts = [f"{k}={values[k]}" for k in keys if values.get(k) is not None]
    return ", ".join(parts) if parts else "not recorded"


PARQUET_EXPORT = "refs/convert/parquet"


def dataset_config_of(domain: Mapping) -> str | None:
    """The dataset config a domain read: ``config``, or for the Hub's parquet export (where a config is a
    folder) its ``data_dir``."""
    config = domain.get("config")
    if isinstance(config, str) and config:
        return config
    data_dir = domain.get("data_dir")
    return data_dir if domain.get("revision") == PARQUET_EXPORT and isinstance(data_dir, str) and data_dir else None


def _domain_view(domain: Mapping) -> dict:
    view = {key: _fmt(domain.get(key)) for key in ("dataset", "split", "description", "license")}
    view["config"] = _fmt(dataset_config_of(domain))
    eval_split = domain.get("eval_split")
    if isinstance(eval_split, str) and eval_split and eval_split != domain.get("split"):
        view["split"] = f"{view['split']} (evaluated on {eval_split})"
    rows = domain.get("filter")
    if isinstance(rows, Mapping) and rows.get("column"):
        values = ", ".join(str(v) for v in rows.get("values") or [])
        view["split"] = f"{view['split']}, rows with {rows['column']} ∈ {{{values}}}"
    return view


def _metric(metrics: Mapping, split: str, name: str) -> float | None:
    value = metrics.get(f"eval_{split}_{name}", metrics.get(f"{split}_{name}"))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def source_domains(info: Mapping) -> list[dict[str, Any]]:
    """Every labelled source of the run, in domain-id order (one for a single-source run)."""
    several = info.get("source_domains")
    if isinstance(several, list) and several:
        return [_as_dict(d) for d in several]
    return [_as_dict(info.get("source_domain"))]


def _evaluated_domains(info: Mapping) -> list[tuple[str, str, dict[str, Any]]]:
    """``(metric split, display name, domain description)`` of every evaluated domain: the source (pooled, with
    several), each of several sources (``source_1`` ..), the target."""
    sources = source_domains(info)
    rows = [("source", "Source" if len(sources) == 1 else "Sources (pooled)", sources[0] if len(sources) == 1 else {})]
    if len(sources) > 1:
        rows += [(f"source_{k + 1}", _source_name(k, d, len(sources)), d) for k, d in enumerate(sources)]
    return [*rows, ("target", "Target", _as_dict(info.get("target_domain")))]


def _source_name(k: int, domain: Mapping, count: int) -> str:
    if count == 1:
        return "Source"
    description = domain.get("description")
    return f"Source {k + 1}" + (f" ({description})" if isinstance(description, str) and description else "")


def build_eval_results(info: Mapping, task: str) -> list[EvalResult]:
    """model-index entries: accuracy and macro-F1 per domain, for this model and the source-only baseline."""
    from huggingface_hub import EvalResult

    metrics = _as_dict(info.get("metrics"))
    baseline = _as_dict(_as_dict(info.get("baseline")).get("metrics"))
    method = info.get("method", "dann")
    results = []
    for split, shown, domain in _evaluated_domains(info):
        dataset = domain.get("dataset")
        # huggingface_hub groups results by (task, dataset type, config, split, revision), not by name: local data
        # gets a type per domain, or the target's metrics would be filed under the source's entry.
        dataset_type = dataset if is_hub_id(dataset) else f"local-{split.replace('_', '-')}-data"
        dataset_name = f"{shown} domain: {dataset if is_hub_id(dataset) else LOCAL_DATA}"
        eval_split = domain.get("eval_split")
        common = dict(
            task_type=task,
            task_name=task.replace("-", " ").capitalize(),
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_config=dataset_config_of(domain) if is_hub_id(dataset) else None,
            # metrics are measured on the evaluation split, never on the training split: no split when none was recorded
            dataset_split=eval_split if isinstance(eval_split, str) and eval_split else None,
            dataset_revision=domain.get("revision") if is_hub_id(dataset) and isinstance(domain.get("revision"), str) else None,
        )
        for name, metric_type, args in (("accuracy", "accuracy", None), ("f1", "f1", {"average": "macro"})):
            label = "Accuracy" if name == "accuracy" else "Macro-F1"
            value = _metric(metrics, split, name)
            if value is not None:
                results.append(
                    EvalResult(**common, metric_type=metric_type, metric_value=value, metric_args=args,
                               metric_name=f"{shown} {label} ({method})")
                )
            base_value = _metric(baseline, split, name)
            if base_value is not None:
                results.append(
                    EvalResult(**common, metric_type=metric_type, metric_value=base_value, metric_args=args,
                               metric_config="source_only_baseline",
                               metric_name=f"{shown} {label} (source-only baseline)")
                )
    return results + _task_eval_results(info, task, metrics) + _fusion_eval_results(info, task)


def _fusion_eval_results(info: Mapping, task: str) -> list[EvalResult]:
    """model-index entries of a fused adapter (:mod:`hf_transfer.fusion`): its accuracy on every domain involved."""
    from huggingface_hub import EvalResult

    evaluation = _as_dict(_as_dict(info.get("fusion")).get("evaluation"))
    results = []
    for domain, row in evaluation.items():
        for column in ("fused", "routed", "own"):
            value = _as_dict(_as_dict(row).get(column)).get("accuracy")
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            results.append(EvalResult(
                task_type=task, task_name=task.replace("-", " ").capitalize(), dataset_type=f"local-{domain}-data",
                dataset_name=f"Domain {domain}: {LOCAL_DATA}", metric_type="accuracy", metric_value=float(value),
                metric_config=column, metric_name=f"{domain} accuracy ({column})",
            ))
    return results


def _task_eval_results(info: Mapping, task: str, metrics: Mapping) -> list[EvalResult]:
    """model-index entries of the auxiliary tasks (:mod:`hf_transfer.auxiliary`): accuracy per task and domain."""
    from huggingface_hub import EvalResult

    results = []
    for name in _as_dict(info.get("tasks")):
        for split in ("source", "target"):
            value = _metric(metrics, split, f"{name}_accuracy")
            if value is None:
                continue
            dataset = _as_dict(info.get(f"{split}_domain")).get("dataset")
            results.append(EvalResult(
                task_type=task, task_name=task.replace("-", " ").capitalize(),
                dataset_type=dataset if is_hub_id(dataset) else f"local-{split}-data",
                dataset_name=f"{split.capitalize()} domain: {dataset if is_hub_id(dataset) else LOCAL_DATA}",
                metric_type="accuracy", metric_value=value, metric_config=f"task_{name}",
                metric_name=f"{split.capitalize()} {name} accuracy",
            ))
    return results


def tasks_summary(info: Mapping) -> str:
    """The card's line on the auxiliary tasks: each with its kind, classes and loss weight."""
    weights = _as_dict(_as_dict(info.get("training")).get("task_loss_weights"))
    parts = []
    for name, spec in _as_dict(info.get("tasks")).items():
        spec = _as_dict(spec)
        weight = f"weight {weights[name]:g}" if isinstance(weights.get(name), (int, float)) else "weight not recorded"
        if spec.get("kind") == "rotation":
            parts.append(f"{name} ({weight}; predicts the image's rotation by 0/90/180/270°, on source and target, "
                         "Sun et al. 2019)")
        else:
            parts.append(f"{name} ({weight}; its own head over {', '.join(map(str, spec.get('labels') or []))}; source labels)")
    return "; ".join(parts)


def _result_rows(info: Mapping) -> tuple[list[dict], bool]:
    metrics = _as_dict(info.get("metrics"))
    baseline = _as_dict(_as_dict(info.get("baseline")).get("metrics"))
    rows = []
    for split, shown, _ in _evaluated_domains(info):
        for name, label in (("accuracy", "Accuracy"), ("f1", "Macro-F1")):
            value, base = _metric(metrics, split, name), _metric(baseline, split, name)
            if value is None and base is None:
                continue
            delta = f"{value - base:+.4f}" if value is not None and base is not None else "—"
            rows.append({"domain": shown, "metric": label, "value": _fmt(value), "baseline": _fmt(base), "delta": delta})
    return rows, bool(baseline)


def _versions(info: Mapping) -> tuple[dict[str, str], bool]:
    """The versions the run recorded, and whether it recorded them (else this machine's, said as such)."""
    recorded = {str(k): str(v) for k, v in _as_dict(info.get("framework_versions")).items()}
    version = info.get("hf_transfer_version")
    if recorded and version:
        return {"hf_transfer": str(version), **recorded}, True
    here = {"hf_transfer": _installed_hf_transfer(), **installed_versions()}
    if version:
        here["hf_transfer"] = f"{version} (recorded by the run)"
    return here, False


def _installed_hf_transfer() -> str:
    from . import __version__

    return __version__


def _target_role(role: str, training: Mapping) -> str:
    """The target's role; a few-shot run says how many labels per class it trained on (seeded, stratified)."""
    shots = training.get("target_labels_per_class")
    if isinstance(shots, int) and shots > 0:
        return (f"{shots} labelled example{'s' if shots > 1 else ''} per class, a stratified draw seeded with "
                f"{training.get('seed')}; the rest unlabelled")
    return role


def build_model_card(
    output_dir_or_info: str | os.PathLike | Mapping,
    *,
    repo_id: str,
    domain: str = "generic",
    base_model: str | None = None,
    license: str | None = None,
    template_path: str | os.PathLike | None = None,
    extra_tags: list[str] | None = None,
) -> ModelCard:
    """Render the hf_transfer model card for an adapted model directory (or its run-info dict).

    ``base_model`` overrides the recorded base (pass the Hub id when training used a local
    checkpoint); local paths are never written: they become ``"local data"`` or are omitted.
    """
    from huggingface_hub import ModelCard, ModelCardData

    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    raw = dict(output_dir_or_info) if isinstance(output_dir_or_info, Mapping) else load_run_info(output_dir_or_info)
    base = base_model or (None if raw.get("base_model_is_local") else raw.get("base_model"))
    info = sanitize(raw)
    base = base if is_hub_id(base) else None  # never a local path, never an invented name
    task = info.get("task") or task_of("image")
    modality = info.get("modality") or modality_of_task(task) or "image"
    view = method_view(info)
    method = view["method"]
    source, target = _as_dict(info.get("source_domain")), _as_dict(info.get("target_domain"))
    sources = source_domains(info)
    datasets = [d for d in (*(s.get("dataset") for s in sources), target.get("dataset")) if is_hub_id(d)]
    tags = ["domain-adaptation", *view["tags"], "lora", "hf-transfer", modality, "peft"]
    if domain != "generic":
        tags.append(domain)
    tags = list(dict.fromkeys([*tags, *(extra_tags or [])]))
    card_license = license or info.get("license") or "unknown"

    card_data = ModelCardData(
        base_model=base,
        library_name="peft",
        pipeline_tag=task,
        datasets=list(dict.fromkeys(datasets)) or None,
        tags=tags,
        license=card_license,
        model_name=repo_id.split("/")[-1],
        eval_results=build_eval_results(info, task) or None,
        source_domain={k: v for k, v in source.items() if v is not None} or None,
        **({"source_domains": [{k: v for k, v in d.items() if v is not None} for d in sources]}
           if len(sources) > 1 else {}),
        target_domain={k: v for k, v in target.items() if v is not None} or None,
    )
    id2label = _as_dict(info.get("id2label"))
    labels = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k) if str(k).isdigit() else str(k))]
    rows, has_baseline = _result_rows(info)
    versions, versions_recorded = _versions(info)
    licences = [
        f"{role} data ({_fmt(d.get('dataset'))}): {d.get('license') or 'licence not recorded'}"
        for role, d in (*((_source_name(k, s, len(sources)), s) for k, s in enumerate(sources)), ("Target", target))
    ]
    licences.append(f"Base model ({base or 'not on the Hub'}): see its model card")
    from .card_sections import shift_and_selection_view

    source_free = _source_free_view(_as_dict(info.get("source_free")), target) if info.get("source_free") else None

    card = ModelCard.from_template(
        card_data,
        **shift_and_selection_view(info),
        template_path=str(template_path or TEMPLATE_PATH),
        repo_id=repo_id,
        base_model=base,
        task=task,
        domain=domain,
        method=method,
        method_title=view["title"],
        method_short=view["short"],
        method_description=view["description"],
        target_role=_target_role(view["role"], _as_dict(info.get("training"))),
        source=_domain_view(source),
        sources=[{"name": "Source" if len(sources) == 1 else f"Source {k + 1}", **_domain_view(s)}
                 for k, s in enumerate(sources)],
        target=_domain_view(target),
        source_phrase="a **source domain**" if len(sources) == 1 else f"**{len(sources)} source domains**",
        labels=labels,
        results=rows,
        has_baseline=has_baseline,
        lora_summary=_summary(_as_dict(info.get("lora")), ["r", "lora_alpha", "lora_dropout", "target_modules"]),
        discriminator_summary=_summary(
            _as_dict(info.get("discriminator")), ["feature_dim", "hidden_size", "num_layers", "dropout"]
        ),
        conditioning_summary=_conditioning_summary(info) if info.get("conditioning") else "",
        adversarial=view["adversarial"],
        objective_summary=view["objective_summary"],
        grl_summary=_summary(_as_dict(info.get("grl")), ["schedule", "gamma", "max_lambda"]),
        tasks_summary=tasks_summary(info),
        training_summary=_summary(
            _as_dict(info.get("training")), ["max_steps", "learning_rate", "per_device_train_batch_size", "seed",
                                             "target_labels_per_class", "num_sources", "pooled_sources"]
        ),
        auto_class=get_modality(modality_of_task(task) or "image").auto_model,
        native_loading=native_adapter_loading(raw.get("model_type"), task),
        model_type=raw.get("model_type") or "this architecture",
        has_discriminator=bool(raw.get("has_discriminator")),
        has_base_config=bool(raw.get("has_base_config")),
        has_processor=bool(raw.get("has_processor", True)),
        licences=licences,
        source_free=source_free,
        versions=versions,
        versions_recorded=versions_recorded,
    )
    card.text = scrub_text(card.text)  # safety net for anything a template variable let through
    return card


_KIND_NAMES = {"transformers": "a fine-tuned checkpoint", "peft": "a PEFT adapter", "hf_transfer": "an hf_transfer adapter"}


def _source_free_view(source_free: Mapping, target: Mapping) -> dict[str, str]:
    """How the card names a source-free run's starting model and target (Hub ids as links; local things in words)."""
    start = source_free.get("adapted_from")
    model = f"[{start}](https://huggingface.co/{start})" if is_hub_id(start) else "a model from a local folder"
    dataset, description = target.get("dataset"), target.get("description")
    named = description or (dataset if is_hub_id(dataset) else None)
    return {"model": model, "target": str(named) if named else "unlabelled target data",
            "kind": _KIND_NAMES.get(str(source_free.get("kind")), str(source_free.get("kind") or "—"))}


def card_code_blocks(card: ModelCard | str) -> list[str]:
    """The ```python blocks of a card (the tests run them, so the usage docs cannot rot)."""
    text = card if isinstance(card, str) else card.content
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)
