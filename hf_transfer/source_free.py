"""Source-free adaptation: adapt a shared classifier to your own unlabelled data, without its source data.

A hospital, a bank or a call centre can publish a model trained on records that never leave it. On the other side,
:func:`adapt` takes that model and unlabelled target data and returns a **new LoRA adapter** on top of it, with one
of the registered source-free methods (``needs_source`` is ``False`` in the registry): SHOT
(:mod:`~hf_transfer.alignment.shot`), TENT (:mod:`~hf_transfer.alignment.tent`) or SAR
(:mod:`~hf_transfer.alignment.sar`). The starting model (:func:`load_source_model`) is a Hub id or a local folder
holding

* a fine-tuned ``AutoModelFor*Classification`` checkpoint (``config.json`` + safetensors);
* a peft LoRA adapter (``adapter_config.json``) whose classification head is in the adapter or its base; or
* an hf_transfer adapter (``domain_adaptation.json`` too; its domain discriminator is unused).

The new adapter applies to the same base model (the checkpoint itself, or the given adapter's base), starts from
the given adapter's weights, and is saved and pushed like any other (:class:`~hf_transfer.modeling.
DomainAdaptationModel`); its run info records where it started (``source_free``). Every batch is target data: the
collator's domain labels are all 1, the target's labels (if any) are dropped with a warning, and SHOT's pseudo-labels
take their place. Safety: weights are read from safetensors only (remote code off unless asked), and nothing is ever
written into the folder the model was read from (a Hub download's cache folder included).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback

from .alignment.objective import AlignmentObjective, ObjectiveTerm
from .alignment.registry import AlignmentBatch, AlignmentMethod, get_method, settings_from_arguments, source_free_methods
from .artifacts import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, DISCRIMINATOR_WEIGHTS_NAME, RUN_INFO_NAME, RunInfo

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

    from .modalities import Processor
    from .modeling import DomainAdaptationModel
    from .training_args import DomainAdaptationArguments

logger = logging.getLogger(__name__)

KINDS = ("transformers", "peft", "hf_transfer")
"""What :func:`load_source_model` accepts: a fine-tuned checkpoint, a peft adapter, an hf_transfer adapter."""
NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
IGNORE_INDEX = -100


# ----------------------------------------------------------------------------- the starting model
@dataclass
class SourceModel:
    """A trained classifier to adapt: the base model with its head, and (for adapters) the adapter to start from."""

    model: PreTrainedModel
    """The base ``AutoModelFor*Classification`` (its label set is the model's)."""
    processor: Processor | None
    modality: str
    kind: str
    """``transformers``, ``peft`` or ``hf_transfer``."""
    name: str
    """What the user gave (a Hub id or a local folder)."""
    base_model: str
    """What the new adapter records as its base: the checkpoint, or the given adapter's base (Hub id or folder)."""
    folder: Path
    """Where the given model was read from (a local folder or the Hub cache): never written to."""
    adapter_config: dict[str, Any] | None = None
    run_info: RunInfo | None = None

    @property
    def hub_id(self) -> str | None:
        """The Hub id the model came from (``None`` for a local folder)."""
        from .privacy import is_hub_id

        return self.name if is_hub_id(self.name) and not os.path.isdir(self.name) else None

    @property
    def label_names(self) -> list[str]:
        id2label = self.model.config.id2label
        return [str(id2label[i]) for i in sorted(id2label)]


def _download(name: str, *, revision: str | None, token: str | None, cache_dir: str | os.PathLike | None,
              trust_remote_code: bool) -> Path:
    """A Hub repo's safetensors, JSON and text files (never pickles; code only when remote code is trusted)."""
    from huggingface_hub import snapshot_download

    from .hub.load import DOWNLOAD_PATTERNS

    patterns = DOWNLOAD_PATTERNS + (["*.py"] if trust_remote_code else [])
    return Path(snapshot_download(name, revision=revision, token=token, cache_dir=cache_dir, allow_patterns=patterns))


def _model_folder(name: str, **hub: Any) -> Path:
    from .privacy import is_hub_id

    if os.path.isdir(name):
        return Path(name)
    if is_hub_id(name):
        return _download(name, **hub)
    raise FileNotFoundError(f"{name!r} is neither a local folder nor a Hub model id.")


def _missing_head(name: str, model: PreTrainedModel, loading_info: Mapping[str, Any], saved_in_adapter: Sequence[str]):
    """The classification head's weights that neither the checkpoint nor the adapter holds (an error)."""
    from .backbones import classification_head_modules
    from .modeling import MissingClassifierError, find_classifier

    head = set(classification_head_modules(model)) | {find_classifier(model)}
    fresh = list(loading_info.get("missing_keys", [])) + [k[0] for k in loading_info.get("mismatched_keys", [])]
    uncovered = sorted(
        key for key in fresh
        if any(key == h or key.startswith(f"{h}.") for h in head)
        and not any(f".{saved}." in f".{key}" for saved in saved_in_adapter)  # modules_to_save: names or suffixes
    )
    if uncovered:
        raise MissingClassifierError(
            f"{name} has no trained classification head: {', '.join(uncovered[:4])} would start from random values. "
            "Source-free adaptation starts from a classifier trained on the source task: give a fine-tuned "
            "AutoModelFor*Classification checkpoint, or a peft/hf_transfer adapter that saves its head "
            "(modules_to_save), not a bare backbone such as an AutoModel checkpoint."
        )


def _load_classifier(name_or_path: str, labels: list[str] | None, modality: str | None, *, trust_remote_code: bool,
                     saved_in_adapter: Sequence[str] = (), display: str | None = None, **hub: Any) -> tuple[Any, str]:
    """``(model, modality)``: the checkpoint as its ``*ForClassification`` class, safetensors only."""
    from transformers import AutoConfig

    from .backbones import BackboneError, _fix_timm_config, _model_class, _pickle_message, _refuse_pickle_only, _set_labels
    from .backbones import detect_modality

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **hub)
    if labels is not None:
        _set_labels(config, labels)
    resolved = detect_modality(config, modality, trust_remote_code=trust_remote_code)
    _fix_timm_config(config)
    _refuse_pickle_only(name_or_path)
    if os.path.isdir(name_or_path) and not any(p.suffix == ".safetensors" for p in Path(name_or_path).iterdir()):
        raise BackboneError(_pickle_message(display or name_or_path))
    model_class = _model_class(config, resolved, trust_remote_code)
    try:
        model, info = model_class.from_pretrained(
            name_or_path, config=config, use_safetensors=True, trust_remote_code=trust_remote_code,
            ignore_mismatched_sizes=True, output_loading_info=True, **hub,
        )
    except OSError as error:
        if "safetensors" in str(error):
            raise BackboneError(f"{_pickle_message(display or name_or_path)} ({str(error).splitlines()[0]})") from error
        raise
    _missing_head(display or name_or_path, model, info, saved_in_adapter)
    return model, resolved


def _adapter_labels(folder: Path, run_info: RunInfo | None) -> list[str] | None:
    """The given adapter's label set: its run info's, else its ``config.json``'s (a pushed repo), else the base's."""
    id2label = run_info.id2label if run_info is not None else None
    if not id2label and (folder / "config.json").is_file():
        id2label = json.loads((folder / "config.json").read_text()).get("id2label")
    if not id2label:
        return None
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def load_source_model(
    name_or_path: str | os.PathLike,
    *,
    modality: str | None = None,
    processor: Processor | None = None,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
) -> SourceModel:
    """Load the classifier to adapt (see the module docstring for the three kinds), ready for :func:`wrap_for_method`.

    ``modality`` (the target data's) is checked against the model's: a mismatch is an error naming both. A model
    without a trained classification head is an error naming what is missing.
    """
    from .artifacts import resolve_base_model
    from .backbones import BackboneError, _load_processor

    name = os.fspath(name_or_path)
    hub = {"revision": revision, "token": token, "cache_dir": cache_dir, "trust_remote_code": trust_remote_code}
    folder = _model_folder(name, **hub)
    hub_kwargs = {k: v for k, v in {"token": token, "cache_dir": cache_dir}.items() if v is not None}
    adapter_config = None
    run_info = None
    if (folder / ADAPTER_CONFIG_NAME).is_file():
        adapter_config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text())
        if adapter_config.get("peft_type", "LORA") != "LORA":
            raise BackboneError(f"{name} is a {adapter_config.get('peft_type')} adapter; only LoRA adapters can be adapted.")
        if not (folder / ADAPTER_WEIGHTS_NAME).is_file():
            raise BackboneError(f"{name} has no {ADAPTER_WEIGHTS_NAME}: only safetensors adapters are loaded.")
        run_info = RunInfo.read(folder) if (folder / RUN_INFO_NAME).is_file() else None
        kind = "hf_transfer" if run_info is not None else "peft"
        base = resolve_base_model(adapter_config.get("base_model_name_or_path"), folder)
        if not base:
            raise BackboneError(f"{name}'s {ADAPTER_CONFIG_NAME} does not name its base model.")
        modality = modality or (run_info.modality if run_info is not None else None)
        model, resolved = _load_classifier(
            base, _adapter_labels(folder, run_info), modality, trust_remote_code=trust_remote_code,
            saved_in_adapter=adapter_config.get("modules_to_save") or (), display=f"{name} (base model {base})",
            **({"revision": adapter_config["revision"]} if adapter_config.get("revision") else {}), **hub_kwargs,
        )
        base_model = base
    elif (folder / "config.json").is_file():
        kind = "transformers"
        model, resolved = _load_classifier(str(folder), None, modality, trust_remote_code=trust_remote_code, display=name)
        base_model = name if not os.path.isdir(name) else str(Path(name).resolve())
    else:
        raise BackboneError(
            f"{name} holds neither a config.json (a transformers checkpoint) nor an {ADAPTER_CONFIG_NAME} (a peft or "
            "hf_transfer adapter)."
        )
    if processor is None:
        for candidate in (str(folder), base_model):
            try:
                processor = _load_processor(candidate, resolved, hub_kwargs if candidate == base_model else {},
                                            trust_remote_code)
                break
            except BackboneError:
                continue
        else:
            raise BackboneError(f"Neither {name} nor its base model ships a {resolved} preprocessor; pass processor=.")
    logger.info("Loaded %s (%s, %s model, %d classes) to adapt without source data.", name, kind, resolved,
                model.config.num_labels)
    return SourceModel(model=model, processor=processor, modality=resolved, kind=kind, name=name,
                       base_model=base_model, folder=folder, adapter_config=adapter_config, run_info=run_info)


# ----------------------------------------------------------------------------- wrapping for a method
def normalisation_modules(model: nn.Module, exclude: Sequence[str] = ()) -> list[str]:
    """Names of the normalisation layers with affine parameters (LayerNorm, GroupNorm, BatchNorm, RMSNorm-like),
    outside ``exclude`` (the classification head)."""
    names = []
    for name, module in model.named_modules():
        if not name or any(name == e or name.startswith(f"{e}.") for e in exclude):
            continue
        is_norm = isinstance(module, NORM_TYPES) or type(module).__name__.endswith(("LayerNorm", "RMSNorm", "GroupNorm"))
        if is_norm and any(p is not None for p in module.parameters(recurse=False)):
            names.append(name)
    return names


def wrap_for_method(
    source: SourceModel,
    method: str,
    settings: Any | None = None,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    lora_target_modules: str | list[str] | None = "auto",
    seed: int | None = None,
) -> DomainAdaptationModel:
    """A new LoRA adapter on ``source`` for source-free ``method``, with only what the method updates trainable.

    SHOT trains the LoRA weights (the head is frozen and, for a plain checkpoint, left in the base); TENT and SAR
    train the normalisation layers' affine parameters, saved in the adapter (``modules_to_save``). A given adapter's
    LoRA configuration and weights (head included) are the starting point; the ``lora_*`` values apply to a plain
    checkpoint.
    """
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    from . import __version__
    from .alignment.registry import domain_head_spec
    from .artifacts import installed_versions
    from .backbones import classification_head_modules
    from .modalities import task_of
    from .modeling import DomainAdaptationModel, _first_linear, _resolve_targets, find_classifier
    from .utils.peft_compat import peft_wrapping

    spec = _source_free_method(method)
    settings = settings if settings is not None else spec.settings_class()
    if hasattr(source.model, "peft_config"):
        raise ValueError(f"{source.name} was wrapped for adaptation already (LoRA goes into the model in place): "
                         "load it again with load_source_model for another run.")
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)
    backbone = source.model
    classifier = find_classifier(backbone)
    head = sorted(set(classification_head_modules(backbone)) | {classifier})
    norms = normalisation_modules(backbone, exclude=head) if spec.source_free.updates == "norm" else []
    if spec.source_free.updates == "norm" and not norms:
        raise ValueError(f"{source.name} has no normalisation layer with affine parameters for {method} to update; "
                         "use method 'shot'.")
    if source.adapter_config is not None:
        config = LoraConfig.from_pretrained(str(source.folder))
        config.modules_to_save = list(dict.fromkeys([*(config.modules_to_save or []), *norms])) or None
        config.inference_mode = False
    else:
        targets = _resolve_targets(backbone, lora_target_modules, lora_r, head)
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=targets,
                            modules_to_save=norms or None)
    config.base_model_name_or_path = source.base_model
    with peft_wrapping():
        peft_model = get_peft_model(backbone, config)
    peft_model.peft_config["default"].base_model_name_or_path = source.base_model
    if source.adapter_config is not None:
        # the norm layers TENT/SAR add to modules_to_save start from the base's values (the given adapter has none)
        state = {**get_peft_model_state_dict(peft_model), **load_file(str(source.folder / ADAPTER_WEIGHTS_NAME))}
        result = set_peft_model_state_dict(peft_model, state)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"{source.name}'s adapter weights do not fit its base model: {result.unexpected_keys[:4]}.")
    _set_trainable(peft_model, spec.source_free.updates, norms)

    feature_dim = _first_linear(backbone.get_submodule(classifier)).in_features
    previous = source.run_info
    if previous is not None and previous.discriminator:  # an hf_transfer adapter's: carried over, unused
        domain_head = domain_head_spec(previous.domain_head_kind).load(
            {"discriminator": previous.discriminator, "conditioning": previous.conditioning})
        weights = source.folder / DISCRIMINATOR_WEIGHTS_NAME
        if weights.is_file():
            domain_head.discriminator.load_state_dict(load_file(str(weights)))
    else:
        domain_head = domain_head_spec("domain").build(feature_dim, backbone.config.num_labels, hidden_size=16,
                                                       num_layers=1, dropout=0.0, settings=None)
    domain_head.requires_grad_(False)
    objective = AlignmentObjective(spec.name, [ObjectiveTerm(spec.name, 1.0, settings)])
    lora = {"r": config.r, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
            "target_modules": sorted(config.target_modules) if isinstance(config.target_modules, (set, list))
            else config.target_modules}
    run_info = RunInfo(
        base_model=source.base_model, modality=source.modality, task=task_of(source.modality),
        model_type=getattr(backbone.config, "model_type", None),
        id2label={str(k): v for k, v in backbone.config.id2label.items()},
        label2id={k: int(v) for k, v in backbone.config.label2id.items()},
        classifier=classifier, lora=lora, method=spec.name, objective=objective.to_dict(),
        source_free={"adapted_from": source.hub_id, "kind": source.kind, "updates": spec.source_free.updates,
                     **({"previous_method": previous.method} if previous is not None else {})},
        license=previous.license if previous is not None else None,
        hf_transfer_version=__version__, framework_versions=installed_versions(), **domain_head.to_dict(),
    )
    model = DomainAdaptationModel(peft_model, domain_head, classifier, run_info=run_info, objective=objective)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("hf_transfer: %s adapts %s: %s trainable parameters of %s; no source data.", spec.name,
                _updates_text(spec), f"{trainable:,}", f"{sum(p.numel() for p in model.parameters()):,}")
    return model


def _updates_text(spec: AlignmentMethod) -> str:
    return "LoRA weights (head frozen)" if spec.source_free.updates == "lora" else "normalisation affine parameters"


def _set_trainable(peft_model: nn.Module, updates: str, norms: Sequence[str]) -> None:
    """Freeze everything, then unfreeze what the method updates (LoRA weights, or the adapter's norm-layer copies)."""
    peft_model.requires_grad_(False)
    if updates == "lora":
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.requires_grad_(True)
        return
    backbone = peft_model.base_model.model
    for name in norms:
        wrapper = backbone.get_submodule(name)
        trained = wrapper.modules_to_save["default"] if hasattr(wrapper, "modules_to_save") else wrapper
        trained.requires_grad_(True)


def _source_free_method(name: str) -> AlignmentMethod:
    method = get_method(name)
    if method.needs_source:
        raise ValueError(
            f"method {name!r} trains on labelled source data; source-free adaptation runs one of "
            f"{', '.join(source_free_methods())} (or use `hf-transfer train` with a source section)."
        )
    return method


# ----------------------------------------------------------------------------- the trainer
class TargetOnlyDataset(Dataset):
    """Target examples without their labels, each with its position (``example_index``) for SHOT's pseudo-labels."""

    INDEX = "example_index"

    def __init__(self, target: Any) -> None:
        if target is None or len(target) == 0:
            raise ValueError("The target dataset is empty (or missing): pass the unlabelled target examples to adapt to.")
        self.target = target

    def __len__(self) -> int:
        return len(self.target)

    def _strip(self, example: Mapping[str, Any], index: int) -> dict[str, Any]:
        item = {k: v for k, v in example.items() if k not in ("labels", "label")}
        item[self.INDEX] = index
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._strip(self.target[index], index)

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        many = getattr(self.target, "__getitems__", None)
        examples = many(indices) if many is not None else [self.target[i] for i in indices]
        return [self._strip(example, i) for example, i in zip(examples, indices)]


class SourceFreeTrainer(Trainer):
    """A ``transformers.Trainer`` for source-free methods: every batch is target data, the loss is the method's.

    ``args`` are :class:`~hf_transfer.training_args.DomainAdaptationArguments` whose ``method`` is source-free (its
    settings come from ``method_settings``). SHOT's pseudo-labels are recomputed over the whole target set at every
    epoch start; SAR runs SAM's two passes per step (``gradient_accumulation_steps`` must be 1) and resets the
    adapted parameters when its loss signals a collapse. Target labels are dropped (with a warning); labelled
    ``eval_datasets`` (``{"target": ds}``) are scored as in training runs (``eval_target_accuracy``, ...).
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: DomainAdaptationModel,
        args: DomainAdaptationArguments,
        target_dataset: Any,
        eval_datasets: dict[str, Any] | None = None,
        processing_class: Processor | None = None,
        data_collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] | None = None,
        compute_metrics: Callable[..., dict[str, float]] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        **kwargs: Any,
    ) -> None:
        from .data.collator import DomainBatchCollator
        from .data.pairing import has_labels
        from .metrics import ClassificationMetrics

        self.method = _source_free_method(args.method)
        if target_dataset is not None and len(target_dataset) and has_labels(target_dataset):
            logger.warning("The target dataset has labels but method=%s is unsupervised: they are dropped and never "
                           "trained on.", args.method)
        if self.method.source_free.sharpness_aware and args.gradient_accumulation_steps != 1:
            raise ValueError(f"method {args.method!r} takes two passes per step (SAM): set gradient_accumulation_steps "
                             "to 1.")
        self.settings = settings_from_arguments(self.method, args, args.method_settings)
        self.term = self.method.build_term(self.settings)
        super().__init__(
            model=model, args=args, train_dataset=TargetOnlyDataset(target_dataset), eval_dataset=eval_datasets or None,
            processing_class=processing_class,
            data_collator=data_collator or DomainBatchCollator.for_processor(processing_class),
            compute_metrics=compute_metrics or ClassificationMetrics(), callbacks=callbacks, **kwargs,
        )
        self.model_accepts_loss_kwargs = False
        self._pseudo_labels: torch.Tensor | None = None
        self._pseudo_epoch: int | None = None
        self._log_sums: dict[str, torch.Tensor] = {}
        self._log_steps = 0
        self.resets = 0
        trainable = [p for p in model.parameters() if p.requires_grad]
        self._initial = [p.detach().clone() for p in trainable] if self.method.source_free.sharpness_aware else None
        info = model.run_info
        info.method = self.method.name
        info.objective = AlignmentObjective(self.method.name, [ObjectiveTerm(self.method.name, 1.0, self.settings)]).to_dict()
        info.training = {"max_steps": args.max_steps, "num_train_epochs": args.num_train_epochs,
                         "learning_rate": args.learning_rate, "per_device_train_batch_size": args.per_device_train_batch_size,
                         "seed": args.seed}

    # -- the loss ---------------------------------------------------------------------------------

    def _target_batch(self, model: nn.Module, inputs: dict[str, Any], keep: torch.Tensor | None = None):
        index = inputs.pop(TargetOnlyDataset.INDEX, None)
        inputs.pop("labels", None)
        inputs.pop("domain_labels", None)
        labels = self._pseudo_labels_of(index)
        outputs = model(**inputs, output_features=True)
        logits = outputs.logits
        batch = AlignmentBatch(features=outputs.features.float(), logits=logits, labels=labels,
                               domain_labels=torch.ones(len(logits), dtype=torch.long, device=logits.device))
        extra = {"keep": keep} if keep is not None else {}
        return batch, self.term(batch, domain_head=None, grl_lambda=0.0, **extra)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation on a labelled split
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        _, out = self._target_batch(model, inputs)
        self._record(out.logs)
        return (out.loss, None) if return_outputs else out.loss

    def _record(self, logs: Mapping[str, torch.Tensor]) -> None:
        for key, value in logs.items():
            value = value.float()
            self._log_sums[key] = self._log_sums[key] + value if key in self._log_sums else value
        self._log_steps += 1

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.method.source_free.sharpness_aware:
            return super().training_step(model, inputs, num_items_in_batch)
        return self._sharpness_aware_step(model, inputs)

    def _sharpness_aware_step(self, model, inputs):
        """SAM (Foret et al. 2021) as SAR uses it: gradient at Θ + ε̂ of the loss on rows reliable at Θ and Θ + ε̂."""
        from .alignment.sar import sam_perturbation

        model.train()
        inputs = self._prepare_inputs(inputs)
        parameters = [p for p in model.parameters() if p.requires_grad]
        with self.compute_loss_context_manager():
            first, out = self._target_batch(model, dict(inputs))
        self.accelerator.backward(out.loss)
        keep = self.term.reliable(first.logits.detach())
        with torch.no_grad():
            epsilon = sam_perturbation(parameters, self.term.settings.rho)
            for parameter, step in zip(parameters, epsilon):
                parameter.add_(step)
        model.zero_grad(set_to_none=True)
        with self.compute_loss_context_manager():
            _, second = self._target_batch(model, dict(inputs), keep=keep)
        self.accelerator.backward(second.loss)
        with torch.no_grad():
            for parameter, step in zip(parameters, epsilon):
                parameter.sub_(step)
        logs = dict(second.logs)
        reliable_rows = int(logs.pop("sar_reliable_rows"))
        self._record(logs)
        if self.term.should_reset(float(second.loss.detach()), reliable_rows):
            self._reset(parameters)
        return second.loss.detach()

    def _reset(self, parameters: list[nn.Parameter]) -> None:
        """SAR's model recovery: the adapted parameters back to their initial values, their optimizer state cleared."""
        with torch.no_grad():
            for parameter, initial in zip(parameters, self._initial):
                parameter.copy_(initial)
                parameter.grad = None
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        for parameter in parameters:
            optimizer.state.pop(parameter, None)
        self.resets += 1
        logger.info("SAR: the loss's moving average fell below %g at step %d; parameters reset (%d so far).",
                    self.term.settings.reset_constant, self.state.global_step, self.resets)

    # -- SHOT's pseudo-labels --------------------------------------------------------------------

    def _pseudo_labels_of(self, index: torch.Tensor | None) -> torch.Tensor | None:
        if not hasattr(self.term, "pseudo_labels") or index is None:
            return None
        epoch = int(self.state.epoch or 0)
        if self._pseudo_labels is None or self._pseudo_epoch != epoch:
            self.refresh_pseudo_labels()
            self._pseudo_epoch = epoch
        return self._pseudo_labels.to(index.device)[index]

    @torch.no_grad()
    def refresh_pseudo_labels(self) -> torch.Tensor:
        """The method's pseudo-labels of every target example, from the current model in eval mode."""
        from torch.utils.data import DataLoader

        # Every process labels the whole target set itself with the unwrapped model (no sharding, no collective).
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        features, logits, order = [], [], []
        loader = DataLoader(self.train_dataset, batch_size=self.args.per_device_eval_batch_size, shuffle=False,
                            collate_fn=self.data_collator, num_workers=self.args.dataloader_num_workers)
        try:
            for batch in loader:
                order.append(batch.pop(TargetOnlyDataset.INDEX).cpu())
                batch = self._prepare_inputs(batch)
                output = model(**batch, output_features=True)
                features.append(output.features.float().cpu())
                logits.append(output.logits.float().cpu())
        finally:
            model.train(was_training)
        labels = torch.full((len(self.train_dataset),), IGNORE_INDEX, dtype=torch.long)
        labels[torch.cat(order)] = self.term.pseudo_labels(torch.cat(features), torch.cat(logits))
        self._pseudo_labels = labels
        return labels

    # -- logging, evaluation, saving -------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._log_steps and "loss" in logs:
            for key, value in self._log_sums.items():
                logs[key] = round(float(value) / self._log_steps, 6)
            if self.method.source_free.sharpness_aware:
                logs["sar_resets"] = self.resets
            self._log_sums.clear()
            self._log_steps = 0
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        model = self.accelerator.unwrap_model(self.model)
        model.run_info.metrics.update(
            {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not k.endswith(("_runtime", "_per_second"))}
        )
        return metrics

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        from .artifacts import TRAINING_ARGS_NAME, portable_training_args, save_processor

        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        model.save_pretrained(output_dir, state_dict=state_dict)
        save_processor(self.processing_class, model, output_dir)
        torch.save(portable_training_args(self.args, output_dir), os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        model.load_adapter_weights(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        self.accelerator.unwrap_model(self.model).load_adapter_weights(self.state.best_model_checkpoint)


# ----------------------------------------------------------------------------- the API
@dataclass
class SourceFreeResult:
    """What :func:`adapt` returns: the adapted model, its trainer, the evaluation metrics and where it was saved."""

    model: DomainAdaptationModel
    trainer: SourceFreeTrainer
    metrics: dict[str, float] = field(default_factory=dict)
    output_dir: str | None = None
    commit_url: str | None = None


def check_output_dir(output_dir: str | os.PathLike, source: SourceModel) -> None:
    """Never write into the folder the model was read from (a local checkpoint, or its Hub cache folder)."""
    out = Path(output_dir).resolve()
    protected = [source.folder.resolve()]
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        protected.append(Path(HF_HUB_CACHE).resolve())
    except ImportError:  # pragma: no cover
        pass
    for folder in protected:
        if out == folder or folder in out.parents:
            raise ValueError(
                f"output_dir {output_dir} is inside {folder}, where the model to adapt was read from (or the Hub "
                "cache): adapting never writes there. Choose another output_dir."
            )


def adapt(
    model: str | os.PathLike | SourceModel,
    target: Any,
    *,
    method: str | None = None,
    args: DomainAdaptationArguments | None = None,
    eval_datasets: dict[str, Any] | None = None,
    target_description: Mapping[str, Any] | None = None,
    push_to_hub: str | None = None,
    hub_private: bool = False,
    trust_remote_code: bool = False,
    **overrides: Any,
) -> SourceFreeResult:
    """Adapt ``model`` (Hub id, local folder or :class:`SourceModel`) to ``target`` without any source data.

    ``method`` is ``shot`` (default), ``tent`` or ``sar``. ``target`` is the unlabelled target data as model inputs (a ``datasets.Dataset`` with its transform, or a
    sequence of dicts such as ``{"pixel_values": ...}``); :func:`run_source_free` builds it from a data folder or a
    Hub dataset. ``args`` are the run's :class:`~hf_transfer.training_args.DomainAdaptationArguments` (default: a
    short run in ``overrides["output_dir"]``; other ``overrides`` fill the arguments, e.g. ``max_steps=200,
    learning_rate=1e-4, method_settings={"pseudo_label_weight": 0.3}``). The adapted model is saved to
    ``args.output_dir`` and, with ``push_to_hub="namespace/name"``, pushed in one commit; ``eval_datasets``
    (``{"target": labelled_split}``) are evaluated after training, never used to pick a model.
    """
    from .training_args import DomainAdaptationArguments

    if args is None:
        overrides.setdefault("output_dir", "outputs/source-free")
        overrides.setdefault("report_to", "none")
        overrides.setdefault("save_strategy", "no")
        args = DomainAdaptationArguments(method=method or "shot", **overrides)
    elif overrides:
        raise TypeError(f"Pass either args or argument overrides, not both (got {sorted(overrides)}).")
    elif method is not None and method != args.method:
        raise ValueError(f"method={method!r} but args.method={args.method!r}: give the method once.")
    _source_free_method(args.method)
    if args.push_to_hub:  # pushed once, after saving, by hf_transfer's push (not the Trainer's upload of the folder)
        push_to_hub = push_to_hub or args.hub_model_id
        hub_private = hub_private or bool(args.hub_private_repo)
        args = dataclasses.replace(args, push_to_hub=False)
    source = model if isinstance(model, SourceModel) else load_source_model(model, trust_remote_code=trust_remote_code)
    check_output_dir(args.output_dir, source)
    adapted = wrap_for_method(
        source, args.method, settings_from_arguments(get_method(args.method), args, args.method_settings),
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lora_target_modules=args.lora_target_modules, seed=args.seed,
    )
    adapted.run_info.target_domain = dict(target_description or {})
    trainer = SourceFreeTrainer(adapted, args, target, eval_datasets=eval_datasets, processing_class=source.processor)
    trainer.train()
    metrics = trainer.evaluate() if trainer.eval_dataset else {}
    trainer.save_model(args.output_dir)
    commit_url = None
    if push_to_hub:
        from .hub import push_to_hub as push

        info = push(args.output_dir, push_to_hub, private=hub_private, include_discriminator=False,
                    domain=args.hub_card_domain, license=args.hub_license, base_model_repo_id=args.hub_base_model_repo_id)
        commit_url = info.commit_url
    return SourceFreeResult(adapted, trainer, metrics, args.output_dir, commit_url)


def load_target_splits(model_args: Any, target_args: Any, source: SourceModel, *, seed: int = 0) -> dict[str, Any]:
    """The target's training split (``target``) and, with ``eval_split``, its labelled test split (``eval_target``),
    as model inputs for ``source``'s processor; labels are matched to the model's classes by name."""
    from datasets import ClassLabel, Dataset, Features

    from .data import align_labels, infer_modality, load_domain, parse_label_mapping, scan_domain
    from .pipeline import domain_transforms

    splits = {"target": load_domain(target_args, seed=seed)}
    modality = infer_modality(splits["target"])
    if modality != source.modality:
        from .modalities import ModalityMismatchError

        raise ModalityMismatchError(f"{source.name} is a model for {source.modality} but the target data is {modality}: "
                                    f"adapt it with {source.modality} target data, or pick a model for {modality}.")
    if target_args.eval_split:
        splits["eval_target"] = load_domain(target_args, split=target_args.eval_split, seed=seed)
    # The model's classes stand in for the source's: the target's labels (evaluation only) are matched by name.
    classes = Dataset.from_dict({"label": []}, features=Features({"label": ClassLabel(names=source.label_names)}))
    mapping = parse_label_mapping(model_args.label_mapping) if model_args.label_mapping else None
    transforms = domain_transforms(source.processor, modality, model_args, target_args, target_args)
    ready = {}
    for name, dataset in splits.items():
        if name == "target" and "label" in dataset.column_names:  # never trained on, so never matched to the model
            logger.warning("The target's training split has labels but source-free methods are unsupervised: they are "
                           "dropped (only target.eval_split is scored with its labels).")
            dataset = dataset.remove_columns("label")
        if "label" in dataset.column_names:
            _, dataset, _ = align_labels(classes, dataset, label_mapping=mapping, allow_missing_target_labels=True,
                                         allow_extra_target_labels=model_args.allow_extra_target_labels)
        if modality != "text":
            dataset, report = scan_domain(dataset, modality, skip_bad_examples=model_args.skip_bad_examples)
            if report.num_bad:
                logger.warning("%s: %s", name, report.summary())
        ready[name] = dataset.with_transform(transforms[name])
    return ready


def run_source_free(model_args: Any, target_args: Any, training_args: DomainAdaptationArguments) -> dict[str, float]:
    """The config/CLI job (``hf-transfer adapt``, or ``hf-transfer train`` with no source section): load the model
    and the target data, adapt, evaluate on ``target.eval_split`` if set, save (and push with ``push_to_hub``)."""
    from .pipeline import _domain_description

    _source_free_method(training_args.method)
    source = load_source_model(model_args.model_name_or_path, revision=model_args.revision,
                               trust_remote_code=model_args.trust_remote_code)
    check_output_dir(training_args.output_dir, source)
    ready = load_target_splits(model_args, target_args, source, seed=training_args.seed)
    if source.modality != "text" and training_args.dataloader_num_workers == 0:
        from .data import dataloader_settings

        # Decode images/audio in worker processes while the main process trains (as `hf-transfer train` does).
        training_args.dataloader_num_workers = dataloader_settings(training_args.device)["num_workers"]
    result = adapt(source, ready["target"], method=training_args.method, args=training_args,
                   eval_datasets={"target": ready["eval_target"]} if "eval_target" in ready else None,
                   target_description=_domain_description(target_args))
    return result.metrics


# ----------------------------------------------------------------------------- prediction-time adaptation
class TestTimeAdapter(nn.Module):
    """TENT (or SAR's reliable entropy) at prediction time: each batch updates the model, then is predicted.

    ``TestTimeAdapter(model, method="tent", episodic=False)`` wraps a classifier (a transformers model, a
    ``PeftModel`` or a :class:`~hf_transfer.modeling.DomainAdaptationModel`); calling it like the model
    (``adapter(pixel_values=...)``) takes ``steps`` entropy-minimisation steps on the normalisation layers' affine
    parameters with that batch, then returns the model's output for it. *Continual* (default): the updates
    accumulate over batches; *episodic*: the model is reset after every batch (each batch adapts alone).
    :meth:`reset` restores the initial state. :meth:`pipeline` returns a ``transformers.pipeline`` whose every call
    adapts first.
    """

    __test__ = False  # not a pytest class

    def __init__(self, model: nn.Module, *, method: str = "tent", learning_rate: float = 1e-3, steps: int = 1,
                 episodic: bool = False, optimizer: str = "sgd") -> None:
        super().__init__()
        spec = _source_free_method(method)
        if spec.source_free.updates != "norm":
            raise ValueError(f"method {method!r} is not a prediction-time method; use 'tent' or 'sar' (SHOT needs "
                             "the whole target set per epoch: run hf_transfer.source_free.adapt).")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        self.model = model
        self.term = spec.build_term(spec.settings_class())
        self.steps, self.episodic = steps, episodic
        self.model.requires_grad_(False)
        self.parameters_to_adapt = []
        for name in normalisation_modules(model):
            for parameter in model.get_submodule(name).parameters(recurse=False):
                parameter.requires_grad_(True)
                self.parameters_to_adapt.append(parameter)
        if not self.parameters_to_adapt:
            raise ValueError("The model has no normalisation layer with affine parameters to adapt.")
        make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        kwargs = {"momentum": 0.9} if optimizer == "sgd" else {}
        self.optimizer = make(self.parameters_to_adapt, lr=learning_rate, **kwargs)
        self._initial = copy.deepcopy(self._state())

    def _state(self) -> dict[str, Any]:
        return {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def reset(self) -> None:
        """Back to the model and optimizer state it was wrapped with."""
        self.model.load_state_dict(self._initial["model"])
        self.optimizer.load_state_dict(self._initial["optimizer"])

    def forward(self, **inputs: Any) -> Any:
        with torch.inference_mode(False), torch.enable_grad():
            inputs = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            self.model.train()
            for _ in range(self.steps):
                logits = self.model(**inputs).logits
                batch = AlignmentBatch(features=logits, logits=logits, labels=None,
                                       domain_labels=torch.ones(len(logits), dtype=torch.long, device=logits.device))
                loss = self.term(batch).loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
            self.model.eval()
            with torch.no_grad():
                output = self.model(**inputs)
        if self.episodic:
            self.reset()
        return output

    def pipeline(self, task: str, **kwargs: Any):
        """A ``transformers.pipeline`` for ``task`` over the wrapped model whose every forward adapts first.

        It is the task's own pipeline class with one change: its model call goes through this adapter (pre- and
        post-processing, batching and devices are the pipeline's). ``kwargs`` go to ``transformers.pipeline``.
        """
        import importlib

        from transformers import pipeline
        from transformers.pipelines import check_task

        base = check_task(task)[1]["impl"]
        if isinstance(base, str):  # transformers 5 names the class: "transformers.pipelines.<module>.<Class>"
            module, _, name = base.rpartition(".")
            base = getattr(importlib.import_module(module), name)
        adapter = self

        class TestTimeAdaptingPipeline(base):
            def _forward(self, model_inputs: dict[str, Any], **forward_params: Any) -> Any:
                return adapter(**{k: v for k, v in model_inputs.items() if isinstance(v, torch.Tensor)})

        return pipeline(task, model=self.model, pipeline_class=TestTimeAdaptingPipeline, **kwargs)


__all__ = [
    "KINDS",
    "SourceFreeResult",
    "SourceFreeTrainer",
    "SourceModel",
    "TargetOnlyDataset",
    "TestTimeAdapter",
    "adapt",
    "check_output_dir",
    "load_source_model",
    "load_target_splits",
    "normalisation_modules",
    "run_source_free",
    "wrap_for_method",
]
