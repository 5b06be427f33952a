"""What an adapted-model folder holds: one home for its file names.

A folder written by :meth:`~hf_transfer.modeling.DomainAdaptationModel.save_pretrained` (and pushed by
:mod:`hf_transfer.hub`) is a standard peft adapter plus two hf_transfer files:

* ``adapter_config.json`` + ``adapter_model.safetensors``: the LoRA adapter and the trained head (peft);
* ``domain_discriminator.safetensors``: the domain discriminator, to continue adapting;
* ``task_heads.safetensors`` (only with auxiliary tasks): their heads (:mod:`hf_transfer.auxiliary`);
* ``domain_adaptation.json``: the run info (method, domains, settings, metrics), read by the card,
  the Hub push and ``hf-transfer evaluate``;
* ``README.md``: the model card;
* ``training_args.bin`` (written by the trainer): the ``DomainAdaptationArguments`` of the run.

**No absolute local path is written into any of them.** A base model that is a local checkpoint folder
is recorded relative to the saved folder (:func:`base_model_reference`: ``./source-pretrained`` for the
pretraining stage's backbone inside ``output_dir``, ``../vit`` for a sibling folder), in
``adapter_config.json`` (``base_model_name_or_path``) and ``domain_adaptation.json`` (``base_model``);
:func:`resolve_base_model` turns it back into a path when the folder is loaded on the same machine, and
the Hub push replaces it with the base's Hub id. Absolute paths in ``training_args.bin``
(``output_dir``, ``logging_dir``, ``resume_from_checkpoint``, ...) are written relative to the saved
folder too (:func:`portable_training_args`).
"""

from __future__ import annotations

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
DISCRIMINATOR_WEIGHTS_NAME = "domain_discriminator.safetensors"
TASK_HEADS_WEIGHTS_NAME = "task_heads.safetensors"
"""The auxiliary tasks' heads (:mod:`hf_transfer.auxiliary`), when the run had any."""
RUN_INFO_NAME = "domain_adaptation.json"
MODEL_CARD_NAME = "README.md"
TRAINING_ARGS_NAME = "training_args.bin"
BASE_CONFIG_NAME = "config.json"
"""Only in a pushed repo (the base model's config with this run's labels); a saved folder has none."""
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
)
"""The processor's files (image processor, feature extractor or tokenizer) that travel with the adapter."""

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_PATH_PREFIXES = ("./", "../", ".\\", "..\\")
"""How a recorded base model says it is a folder relative to the saved folder (never a Hub id)."""

RUN_INFO_FORMAT = 2
"""Version of ``domain_adaptation.json``: 1 (hf_transfer 0.1.0: ``grl``/``mcc`` blocks, no ``objective``), 2."""


@dataclass
class RunInfo:
    """What ``domain_adaptation.json`` records: one typed record, read by the card, the Hub push and ``evaluate``.

    The model fills the structure when it is built, the trainer the objective, training settings and
    metrics, the training job the domain descriptions; :meth:`write` is the one place that writes it.
    Keys this version does not know are kept in :attr:`extra` and written back unchanged.
    """

    base_model: str | None = None
    """Hub id (or, for a local checkpoint, a relative name) of the backbone the adapter applies to."""
    modality: str | None = None
    task: str | None = None
    model_type: str | None = None
    id2label: dict[str, str] = field(default_factory=dict)
    label2id: dict[str, int] = field(default_factory=dict)
    classifier: str | None = None
    """Name of the classification head inside the backbone."""
    lora: dict[str, Any] = field(default_factory=dict)
    discriminator: dict[str, Any] = field(default_factory=dict)
    """The domain head's discriminator (``feature_dim``, ``hidden_size``, ``num_layers``, ``dropout``)."""
    conditioning: dict[str, Any] | None = None
    """CDAN's conditioning map; ``None`` for DANN's plain discriminator."""
    method: str = "dann"
    objective: dict[str, Any] | None = None
    """``AlignmentObjective.to_dict()``: the method, and each term's weight and settings."""
    grl: dict[str, Any] = field(default_factory=dict)
    """The λ schedule: ``schedule``, ``gamma``, ``max_lambda``."""
    training: dict[str, Any] = field(default_factory=dict)
    source_domain: dict[str, Any] = field(default_factory=dict)
    source_domains: list[dict[str, Any]] | None = None
    """Multi-source runs: every source's description, in domain-id order (``source_domain`` is the first)."""
    target_domain: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    """Optional source-only comparison: ``{"method": "source_only", "metrics": {...}}``."""
    shift: dict[str, Any] | None = None
    """The domain shift on the features entering the classifier, before and after adaptation
    (:func:`hf_transfer.diagnostics.shift_report`): ``a_distance_before``, ``a_distance_after``, ``mmd_before``, ..."""
    pictures: dict[str, str] | None = None
    """Pictures saved next to the adapter: what they show -> file name, relative to the folder (uploaded with it)."""
    selection: dict[str, Any] | None = None
    """How a sweep chose this adapter among candidates, without target labels (:func:`hf_transfer.sweep.run_sweep`)."""
    tasks: dict[str, Any] | None = None
    """Auxiliary tasks on the shared features (:mod:`hf_transfer.auxiliary`): name -> ``{"kind", "labels"}``."""
    fusion: dict[str, Any] | None = None
    """A fused adapter's recipe (:func:`hf_transfer.fusion.fuse_adapters`): the combination, and each adapter fused
    with its weight and domains; with the evaluation on every domain once measured."""
    source_free: dict[str, Any] | None = None
    """A source-free adaptation (:mod:`hf_transfer.source_free`): the model it started from (``adapted_from``, a Hub
    id or ``None`` for a local folder), that model's ``kind`` and what the method ``updates``. No source data was used."""
    license: str | None = None
    hf_transfer_version: str | None = None
    framework_versions: dict[str, str] = field(default_factory=dict)
    """peft, transformers, torch and huggingface_hub versions of the run (what the card lists)."""
    format: int = RUN_INFO_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def domain_head_kind(self) -> str:
        """``conditional`` (CDAN), a kind the head recorded itself (MME's ``prototype``), else ``domain`` (DANN)."""
        if self.conditioning:
            return "conditional"
        return str((self.discriminator or {}).get("kind", "domain"))

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        values = {k: v for k, v in values.items() if v is not None}
        values["format"] = RUN_INFO_FORMAT  # what is written is always this version's format
        return json.loads(json.dumps({**self.extra, **values}))  # a deep, JSON-clean copy

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunInfo:
        """Read either format; a 0.1.0 file gets its ``objective`` rebuilt from ``method``, ``grl`` and ``mcc``."""
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        legacy_mcc = values.pop("mcc", None)
        if values.get("objective") is None:
            values["objective"] = _objective_of_format_1(values, legacy_mcc)
            values.setdefault("format", 1)
        extra = {k: v for k, v in values.items() if k not in known}
        return cls(**{k: v for k, v in values.items() if k in known}, extra=extra)

    @classmethod
    def read(cls, directory: str | os.PathLike) -> RunInfo:
        path = Path(directory) / RUN_INFO_NAME
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{directory} has no {RUN_INFO_NAME}: it is not a folder saved by hf_transfer "
                "(DomainAdaptationModel.save_pretrained or `hf-transfer train`)."
            ) from None

    def write(self, directory: str | os.PathLike) -> Path:
        """Write ``domain_adaptation.json`` into ``directory`` atomically."""
        from .utils.io import write_json_atomic

        path = Path(directory) / RUN_INFO_NAME
        write_json_atomic(path, self.to_dict())
        return path


def _objective_of_format_1(values: dict[str, Any], mcc: dict[str, Any] | None) -> dict[str, Any]:
    """The objective a 0.1.0 run trained with, from its ``method``, ``grl``, ``conditioning`` and ``mcc`` blocks."""
    method = values.get("method") or "dann"
    grl = values.get("grl") or {}
    mcc = mcc or {}
    mcc_term = {"method": "mcc", "weight": float(mcc.get("weight") or 0.0),
                "settings": {"temperature": float(mcc.get("temperature", 2.5))}}
    class_weighting = bool(grl.get("class_weighting", False))
    terms: list[dict[str, Any]] = []
    if method == "dann":
        terms.append({"method": "dann", "weight": float(grl.get("domain_loss_weight", 1.0)),
                      "settings": {"class_weighting": class_weighting}})
    elif method == "cdan":
        conditioning = values.get("conditioning") or {}
        terms.append({"method": "cdan", "weight": float(grl.get("domain_loss_weight", 1.0)),
                      "settings": {"entropy_conditioning": bool(conditioning.get("entropy_conditioning", True)),
                                   "randomized_dim": int(conditioning.get("randomized_dim", 1024)),
                                   "class_weighting": class_weighting}})
    elif method == "mcc":
        terms.append(mcc_term)
    if method in ("dann", "cdan") and mcc_term["weight"] > 0:
        terms.append(mcc_term)
    return {"method": method, "terms": terms}


def base_model_reference(base: str | None, save_directory: str | os.PathLike) -> str | None:
    """How a folder saved in ``save_directory`` names its base model ``base``.

    A Hub id is kept as it is. A local checkpoint folder (absolute, or relative to the working directory)
    becomes its path relative to ``save_directory``, always with a leading ``./`` or ``../``, so it never
    reads as a Hub id, holds no absolute path, and still loads when the output folder and its base move
    together. Anything else (a path that does not exist here) is kept as it is.
    """
    if not base or not os.path.isdir(os.path.expanduser(base)):
        return base
    return _relative_to(base, save_directory)


def _relative_to(path: str, directory: str | os.PathLike) -> str:
    """``path`` relative to ``directory``, with a leading ``./`` or ``../`` (``./name`` across drives)."""
    target = Path(os.path.expanduser(path)).resolve()
    try:
        relative = os.path.relpath(target, Path(directory).resolve())
    except ValueError:  # another drive (Windows): no relative path exists
        return f"./{target.name}"
    relative = relative.replace(os.sep, "/")
    return relative if relative.startswith("../") or relative == ".." else f"./{relative}"


def is_relative_reference(recorded: str | None) -> bool:
    """Whether ``recorded`` (a saved base model name) is a path relative to the saved folder."""
    return isinstance(recorded, str) and (recorded in (".", "..") or recorded.startswith(LOCAL_PATH_PREFIXES))


def resolve_base_model(recorded: str | None, directory: str | os.PathLike) -> str | None:
    """The base model a folder names, as something ``from_pretrained`` can load from this machine.

    A relative reference (``./x``, ``../x``) is resolved against ``directory`` (the saved folder); a Hub
    id, or an absolute path written by hf_transfer 0.1.0, comes back unchanged.
    """
    if is_relative_reference(recorded):
        return str((Path(directory) / recorded).resolve())
    return recorded


_PATH_FIELDS = ("output_dir", "logging_dir", "resume_from_checkpoint", "run_name", "deepspeed")


def portable_training_args(args: Any, save_directory: str | os.PathLike) -> Any:
    """A shallow copy of ``args`` (``TrainingArguments``) with absolute local paths made relative to
    ``save_directory``: what ``training_args.bin`` holds, so a saved folder carries no absolute path."""
    import copy

    portable = copy.copy(args)
    for name in _PATH_FIELDS:
        value = getattr(portable, name, None)
        if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
            object.__setattr__(portable, name, _relative_to(value, save_directory))
    return portable


FRAMEWORKS = ("peft", "transformers", "torch", "huggingface_hub")


def installed_versions(packages: tuple[str, ...] = FRAMEWORKS) -> dict[str, str]:
    """The installed versions of ``packages`` (those not installed are left out)."""
    from importlib import metadata

    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def save_processor(processor: Any, model: Any, output_dir: str | os.PathLike) -> None:
    """Save ``processor`` beside the adapter, so the folder preprocesses as the run did.

    timm's ``TimmWrapperImageProcessor`` has no file of its own: it reads ``pretrained_cfg`` from the model's
    ``config.json``, which an adapter folder otherwise lacks, so a reload would take the *base's* input size (224)
    instead of the one trained at (``image_size``). For it, the model's config (this run's labels and input size,
    no local path) is written as ``config.json``: what a push uploads too.
    """
    if processor is None:
        return
    processor.save_pretrained(output_dir)
    try:
        from transformers import TimmWrapperImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        return
    config = getattr(model, "config", None)
    if isinstance(processor, TimmWrapperImageProcessor) and config is not None:
        from .utils.io import write_text_atomic

        values = config.to_diff_dict()
        values.pop("_name_or_path", None)
        write_text_atomic(Path(output_dir) / BASE_CONFIG_NAME, json.dumps(values, indent=2, sort_keys=True) + "\n")
