"""Load any supported classification backbone, for images, audio or text, with one call.

:func:`load_backbone` reads the checkpoint's config, works out its modality from the
transformers auto mappings, loads the matching ``AutoModelFor*Classification`` with a head
sized for ``label_names`` (a pretrained head of another size is replaced, not an error)
and the matching preprocessor. It is strict where a wrong guess would cost a training run:

* weights are loaded from safetensors only (no pickle), remote code stays off unless asked;
* a checkpoint of the wrong modality for the data is refused with the fix in the message;
* a checkpoint without its preprocessor is refused unless ``processor=`` is given.

It also works around a timm/transformers incompatibility: timm 1.0.31's ``save_for_hf``
(and so ``push_to_hf_hub``) writes ``model_args.num_classes`` into ``config.json``, which
``TimmWrapperForImageClassification`` then passes to ``timm.create_model`` a second time.

:data:`BACKBONE_FAMILIES` lists the families hf_transfer is tested with (rendered in the README).
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import transformers
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.models.auto import modeling_auto

from .modalities import MODALITIES, ModalityMismatchError, get_modality, task_of

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .modalities import Processor

logger = logging.getLogger(__name__)

_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


class BackboneError(ValueError):
    """A checkpoint hf_transfer cannot (or will not) use as a classification backbone."""


class MissingProcessorError(BackboneError):
    """The checkpoint ships no preprocessor and none was passed."""


@dataclass
class Backbone:
    """A classification model sized for the label set, with the preprocessor that feeds it."""

    model: PreTrainedModel
    processor: Processor | None
    modality: str
    task: str
    name_or_path: str
    model_type: str = ""

    @property
    def label_names(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[i] for i in sorted(id2label)]


@dataclass(frozen=True)
class BackboneFamily:
    """One row of the "supported backbones" table; the classes it loads with default to its modality's."""

    modality: str
    example_checkpoint: str
    model_type: str
    lora_policy: str
    notes: str = ""
    auto_class: str = ""
    processor_class: str = ""

    def __post_init__(self) -> None:
        row = get_modality(self.modality)
        object.__setattr__(self, "auto_class", self.auto_class or row.auto_model)
        object.__setattr__(self, "processor_class", self.processor_class or row.auto_processor)


_ATTENTION = "attention (q/k/v/out projections)"
BACKBONE_FAMILIES: dict[str, BackboneFamily] = {
    "vit": BackboneFamily("image", "google/vit-base-patch16-224-in21k", "vit", _ATTENTION),
    "deit": BackboneFamily(
        "image", "facebook/deit-small-patch16-224", "deit", _ATTENTION,
        "distilled checkpoints load as DeiTForImageClassification (the teacher variant cannot train)",
    ),
    "beit": BackboneFamily("image", "microsoft/beit-base-patch16-224", "beit", _ATTENTION),
    "swin": BackboneFamily("image", "microsoft/swin-tiny-patch4-window7-224", "swin", _ATTENTION),
    "dinov2": BackboneFamily("image", "facebook/dinov2-small", "dinov2", _ATTENTION),
    "resnet": BackboneFamily("image", "microsoft/resnet-50", "resnet", "conv (every nn.Conv2d)"),
    "timm": BackboneFamily(
        "image", "timm/resnet50.a1_in1k", "timm_wrapper",
        "auto: attention for timm ViTs, 1×1 (pointwise) convs for depthwise-separable CNNs (EfficientNet, MobileNet), "
        "conv for other CNNs",
        "conv skips grouped convs unless the LoRA rank is a multiple of their groups; pointwise never adapts them",
        auto_class="AutoModelForImageClassification (TimmWrapperForImageClassification)",
        processor_class="AutoImageProcessor (TimmWrapperImageProcessor)",
    ),
    "wav2vec2": BackboneFamily("audio", "facebook/wav2vec2-base", "wav2vec2", _ATTENTION),
    "hubert": BackboneFamily("audio", "facebook/hubert-base-ls960", "hubert", _ATTENTION),
    "wavlm": BackboneFamily(
        "audio", "microsoft/wavlm-base-plus", "wavlm", "feed-forward (intermediate_dense, output_dense)",
        "its attention passes q/k/v/out weights to F.multi_head_attention_forward, so LoRA cannot go there",
    ),
    "whisper": BackboneFamily(
        "audio", "openai/whisper-base", "whisper", _ATTENTION,
        "the encoder only (the decoder's weights are ignored); its conv stem takes no LoRA (the encoder reads conv1.stride)",
        auto_class="AutoModelForAudioClassification (WhisperForAudioClassification)",
    ),
    "bert": BackboneFamily("text", "google-bert/bert-base-uncased", "bert", _ATTENTION),
    "roberta": BackboneFamily("text", "FacebookAI/roberta-base", "roberta", _ATTENTION),
    "distilbert": BackboneFamily("text", "distilbert/distilbert-base-uncased", "distilbert", _ATTENTION),
    "minilm": BackboneFamily(
        "text", "sentence-transformers/all-MiniLM-L6-v2", "bert", _ATTENTION,
        "a BertModel checkpoint: the classification head is added fresh",
    ),
}


def supported_backbones_markdown() -> str:
    """:data:`BACKBONE_FAMILIES` as the README's "Supported backbones" Markdown table."""
    rows = [
        "| Family | Modality | Example checkpoint | Loaded with | Preprocessor | LoRA targets (auto) | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in BACKBONE_FAMILIES.items():
        rows.append(
            f"| {name} | {f.modality} | `{f.example_checkpoint}` | {f.auto_class} | {f.processor_class} "
            f"| {f.lora_policy} | {f.notes} |"
        )
    return "\n".join(rows)


def _class_names(entry: str | tuple[str, ...]) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else tuple(entry)


def _mapping_names(modality: str) -> dict[str, str | tuple[str, ...]]:
    """transformers' model type → classifier class name(s) for ``modality`` (e.g. ``MODEL_FOR_IMAGE_..._NAMES``)."""
    return getattr(modeling_auto, get_modality(modality).auto_mapping)


def _auto_model(modality: str) -> type:
    return getattr(transformers, get_modality(modality).auto_model)


def _candidate_modalities(config: PretrainedConfig, trust_remote_code: bool) -> list[str]:
    """Modalities for which transformers has a classification class for this config, best first."""
    model_type = getattr(config, "model_type", "")
    # MODALITIES' order matters: a model type listed for several modalities (e.g. ``perceiver``) resolves
    # to the first one unless its ``architectures`` or the caller's ``modality=`` say otherwise.
    candidates = [m for m in MODALITIES if model_type in _mapping_names(m)]
    if trust_remote_code:
        auto_map = getattr(config, "auto_map", None) or {}
        candidates += [m for m in MODALITIES if get_modality(m).auto_model in auto_map and m not in candidates]
    architectures = set(getattr(config, "architectures", None) or [])
    if len(candidates) > 1 and architectures:
        # e.g. perceiver: PerceiverForImageClassificationLearned vs PerceiverForSequenceClassification
        named = [m for m in candidates if architectures & set(_class_names(_mapping_names(m).get(model_type, ())))]
        candidates = named + [m for m in candidates if m not in named]
    return candidates


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def detect_modality(config: PretrainedConfig, modality: str | None = None, *, trust_remote_code: bool = False) -> str:
    """The modality to load ``config`` as, checked against the data's ``modality`` if given.

    Raises:
        ModalityMismatchError: the checkpoint is a backbone of another modality.
        BackboneError: transformers has no classification class for this model type.
    """
    if modality is not None and modality not in MODALITIES:
        raise BackboneError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    model_type = getattr(config, "model_type", "") or type(config).__name__
    candidates = _candidate_modalities(config, trust_remote_code)
    if not candidates:
        raise BackboneError(
            f"Model type {model_type!r} has no image, audio or sequence classification class in transformers "
            f"{transformers.__version__} (AutoModelForImageClassification / AutoModelForAudioClassification / "
            "AutoModelForSequenceClassification), so it cannot be a classification backbone here. "
            "Pick a checkpoint from hf_transfer.backbones.BACKBONE_FAMILIES, e.g. "
            f"{get_modality(modality or 'image').example_checkpoint}."
        )
    if modality is None:
        return candidates[0]
    if modality not in candidates:
        name = getattr(config, "name_or_path", "") or "The checkpoint"
        raise ModalityMismatchError(
            f"{name}: {model_type!r} is {_a(candidates[0])} backbone but the data is {modality}; "
            f"use {_a(modality)} checkpoint such as {get_modality(modality).example_checkpoint} "
            f"(or pass modality={candidates[0]!r} "
            f"if the data really is {candidates[0]})."
        )
    return modality


def _model_class(config: PretrainedConfig, modality: str, trust_remote_code: bool) -> type[PreTrainedModel]:
    """The concrete class to load, preferring one whose ``forward`` takes ``labels``.

    ``AutoModelForImageClassification`` follows ``config.architectures``, which for distilled DeiT
    checkpoints is ``DeiTForImageClassificationWithTeacher``: an inference-only class without a loss.
    """
    auto_class = _auto_model(modality)
    if trust_remote_code and auto_class.__name__ in (getattr(config, "auto_map", None) or {}):
        return auto_class  # the repo's own code, explicitly trusted
    entry = _mapping_names(modality).get(getattr(config, "model_type", ""))
    if entry is None:
        return auto_class
    classes = [getattr(transformers, name) for name in _class_names(entry) if hasattr(transformers, name)]
    for cls in classes:
        if "labels" in inspect.signature(cls.forward).parameters:
            return cls
    return classes[0] if classes else auto_class


def _fix_timm_config(config: PretrainedConfig) -> None:
    """Drop ``model_args.num_classes`` from a timm config (timm 1.0.31 writes it, transformers passes it again).

    TimmWrapper models always call ``timm.create_model(arch, num_classes=..., **model_args)``, so a
    ``num_classes`` inside ``model_args`` raises "got multiple values for keyword argument". The head
    size comes from ``config.num_labels`` anyway.
    """
    model_args = getattr(config, "model_args", None)
    if getattr(config, "model_type", "") == "timm_wrapper" and isinstance(model_args, dict) and "num_classes" in model_args:
        config.model_args = {k: v for k, v in model_args.items() if k != "num_classes"}
        logger.debug("Dropped model_args.num_classes from the timm config of %s.", config.name_or_path)


def _refuse_pickle_only(name_or_path: str) -> None:
    """A local folder with only .bin/.h5 weights: say so before transformers' generic error."""
    if not os.path.isdir(name_or_path):
        return
    files = set(os.listdir(name_or_path))
    if any(f.endswith(".safetensors") for f in files) or any(f in files for f in _SAFE_WEIGHTS):
        return
    pickled = sorted(f for f in files if f in _PICKLE_WEIGHTS or f.endswith(".bin"))
    if pickled:
        raise BackboneError(_pickle_message(name_or_path, pickled))


def _pickle_message(name_or_path: str, found: list[str] | None = None) -> str:
    found_text = f" (found {', '.join(found)})" if found else ""
    return (
        f"{name_or_path} has no safetensors weights{found_text}; hf_transfer only loads safetensors, never pickled "
        "checkpoints. Convert it once (model.save_pretrained(dir) writes model.safetensors; for timm, "
        "timm.models.save_for_hf(model, dir, safe_serialization=True)), or pass revision= pointing at a "
        "safetensors branch (e.g. the 'refs/pr/N' of the Hub's safetensors conversion bot)."
    )


def _load_processor(
    name_or_path: str, modality: str, hub_kwargs: dict[str, Any], trust_remote_code: bool
) -> Processor:
    try:
        auto_processor = getattr(transformers, get_modality(modality).auto_processor)
        return auto_processor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **hub_kwargs)
    except (OSError, ValueError) as err:
        raise MissingProcessorError(
            f"Could not load the {modality} preprocessor of {name_or_path}: "
            f"it needs {get_modality(modality).processor_files} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Save it next to the weights "
            "(processor.save_pretrained(path)) or pass processor= to load_backbone."
        ) from err


def _set_labels(config: PretrainedConfig, labels: list[str]) -> None:
    """Size the head for ``labels`` whatever the checkpoint had (timm configs keep their ``num_classes``)."""
    if config.num_labels != len(labels):
        config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}


def _check_label_names(label_names: list[str]) -> list[str]:
    names = [str(n) for n in label_names]
    if not names:
        raise BackboneError("label_names is empty: pass the class names of the source dataset.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BackboneError(f"label_names has duplicates {duplicates}; class names must be unique.")
    return names


def load_backbone(
    name_or_path: str,
    *,
    label_names: list[str],
    modality: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    trust_remote_code: bool = False,
    cache_dir: str | os.PathLike | None = None,
    processor: Processor | None = None,
    load_processor: bool = True,
    random_init: bool = False,
    image_size: int | None = None,
    **model_kwargs: Any,
) -> Backbone:
    """Load ``name_or_path`` as a classifier over ``label_names``, with its preprocessor.

    Args:
        name_or_path: Hub id or local folder (``config.json`` + ``*.safetensors``, timm or transformers layout).
        label_names: the classes, in label-id order; the head gets ``len(label_names)`` outputs.
        modality: the data's modality (``image``/``audio``/``text``); a checkpoint of another one is refused.
            ``None`` takes the checkpoint's own.
        revision, token, cache_dir: passed to every ``from_pretrained``.
        trust_remote_code: off by default; only then may ``config.auto_map`` code run.
        processor: use this preprocessor instead of loading the checkpoint's.
        load_processor: ``False`` skips the preprocessor (``Backbone.processor`` is then ``processor``).
        random_init: build the architecture from ``config.json`` with random weights (no weights file
            needed): the starting point of a source-pretraining stage when no pretrained checkpoint exists.
        image_size: images only: the side, in pixels, that the preprocessor resizes and crops to instead of
            the checkpoint's (e.g. 96 instead of 224: about 5x less compute, what a CPU run needs). For
            convolutional and timm backbones; a ViT whose position embeddings fix its input size is refused.
        **model_kwargs: extra ``from_pretrained`` arguments (``dtype``, ``attn_implementation``, ...).

    Raises:
        ModalityMismatchError, MissingProcessorError, BackboneError: with the fix in the message.
    """
    labels = _check_label_names(label_names)
    reserved = {"num_labels", "id2label", "label2id", "config"} & set(model_kwargs)
    if reserved:
        raise TypeError(f"load_backbone sets {sorted(reserved)} itself (from label_names); do not pass them.")
    if model_kwargs.pop("use_safetensors", True) is not True:
        raise BackboneError("hf_transfer loads safetensors weights only; use_safetensors=False is not supported.")
    if model_kwargs.pop("ignore_mismatched_sizes", True) is not True:
        raise BackboneError("The head is always resized for label_names; ignore_mismatched_sizes=False is not supported.")
    name_or_path = os.fspath(name_or_path)
    hub_kwargs = {k: v for k, v in {"revision": revision, "token": token, "cache_dir": cache_dir}.items() if v is not None}

    config = AutoConfig.from_pretrained(
        name_or_path,
        trust_remote_code=trust_remote_code,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        **hub_kwargs,
    )
    _set_labels(config, labels)
    resolved = detect_modality(config, modality, trust_remote_code=trust_remote_code)
    _fix_timm_config(config)
    if image_size is not None and isinstance(getattr(config, "pretrained_cfg", None), dict):
        # timm reads its preprocessing from config.json: a saved or pushed model then loads at this size
        channels = list(config.pretrained_cfg.get("input_size", [3]))[0]
        config.pretrained_cfg = {**config.pretrained_cfg, "input_size": [channels, image_size, image_size]}
    if not random_init:
        _refuse_pickle_only(name_or_path)

    # Processor first: it is cheap, and a missing one should fail before the weights load.
    if processor is None and load_processor:
        processor = _load_processor(name_or_path, resolved, hub_kwargs, trust_remote_code)
    if resolved == "text" and processor is not None:
        _ensure_padding(processor, config)
    if image_size is not None:
        processor = resize_image_processor(processor, image_size, modality=resolved)

    model_class = _model_class(config, resolved, trust_remote_code)
    if random_init:
        model = model_class(config)
        logger.info("Built %s from %s with random weights.", type(model).__name__, name_or_path)
        if image_size is not None:
            _check_image_size(model, image_size, name_or_path)
        return Backbone(model=model, processor=processor, modality=resolved, task=task_of(resolved),
                        name_or_path=name_or_path, model_type=getattr(config, "model_type", ""))
    try:
        model = model_class.from_pretrained(
            name_or_path,
            config=config,
            ignore_mismatched_sizes=True,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            **hub_kwargs,
            **model_kwargs,
        )
    except OSError as err:
        if "safetensors" in str(err):  # a Hub repo without safetensors on this revision (or not reachable)
            first_line = str(err).splitlines()[0]
            raise BackboneError(f"{_pickle_message(name_or_path)} transformers said: {first_line}") from err
        raise
    logger.info(
        "Loaded %s (%s, %s) with a %d-class head %s.",
        name_or_path, type(model).__name__, resolved, len(labels), labels,
    )
    if image_size is not None:
        _check_image_size(model, image_size, name_or_path)
    return Backbone(
        model=model,
        processor=processor,
        modality=resolved,
        task=task_of(resolved),
        name_or_path=name_or_path,
        model_type=getattr(config, "model_type", ""),
    )


def resize_image_processor(processor: Processor | None, image_size: int, *, modality: str = "image") -> Processor:
    """A copy of an image ``processor`` that resizes and crops to ``image_size`` pixels (same crop ratio).

    timm processors get a ``pretrained_cfg`` whose ``input_size`` is ``image_size`` (timm keeps its
    ``crop_pct``); transformers processors get ``size``/``crop_size`` scaled the same way. The copy is what
    a trained model saves, so a reloaded model preprocesses as it was trained.
    """
    if modality != "image":
        raise BackboneError(f"image_size applies to images; this backbone's inputs are {modality}. Drop image_size.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise BackboneError(f"image_size must be a whole number of pixels >= 8, got {image_size!r}.")
    if processor is None:
        raise BackboneError("image_size needs the checkpoint's image processor; none was loaded.")
    data_config = getattr(processor, "data_config", None)
    if isinstance(data_config, dict):  # TimmWrapperImageProcessor: rebuilt from its resolved data config
        channels = list(data_config.get("input_size", [3]))[0]
        cfg = {**data_config, "input_size": [channels, image_size, image_size]}
        return type(processor)(pretrained_cfg=cfg, architecture=getattr(processor, "architecture", None))
    size = getattr(processor, "size", None)
    if size is None:
        raise BackboneError(f"{type(processor).__name__} has no size setting that image_size could change.")
    resized = copy.deepcopy(processor)
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    crop_side = _side(crop) if crop is not None else None
    side = _side(size)
    if crop_side:  # keep the resize/crop ratio (256/224 for ImageNet)
        resized.crop_size = {"height": image_size, "width": image_size}
        side = max(image_size, round(image_size * (side or crop_side) / crop_side))
    else:
        side = image_size
    resized.size = {"shortest_edge": side} if _is_shortest_edge(size) and crop_side else {"height": side, "width": side}
    return resized


def _side(size: Any) -> int | None:
    if isinstance(size, int):
        return size
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    return get("shortest_edge") or get("height")


def _is_shortest_edge(size: Any) -> bool:
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    return bool(get("shortest_edge"))


def _check_image_size(model: nn.Module, image_size: int, name_or_path: str) -> None:
    """Run one blank image through ``model`` at ``image_size``: a fixed-size ViT fails here, not mid-training."""
    import torch

    channels = int(getattr(model.config, "num_channels", None) or 3)
    blank = torch.zeros(1, channels, image_size, image_size, dtype=next(model.parameters()).dtype)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(pixel_values=blank)
    except (ValueError, RuntimeError) as err:
        raise BackboneError(
            f"{name_or_path} does not accept {image_size}x{image_size} images ({str(err).splitlines()[0]}). "
            "image_size suits convolutional and timm backbones; for this model drop image_size or pick its own size."
        ) from err
    finally:
        model.train(training)


def _ensure_padding(processor: Processor, config: PretrainedConfig) -> None:
    """Decoder-style tokenizers (GPT-2, Llama) lack a pad token; sequence classifiers need one to batch."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "pad_token", "") is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("The tokenizer has no pad token; padding with its eos token %r.", tokenizer.eos_token)
    if getattr(config, "pad_token_id", None) is None and getattr(tokenizer, "pad_token_id", None) is not None:
        config.pad_token_id = tokenizer.pad_token_id


def classification_head_modules(model: PreTrainedModel) -> list[str]:
    """Names of the modules that make up the classification head (everything outside the base model).

    These are initialised for the new label set, so they must be trained and saved in full:
    ``classifier`` for ViT/BERT, but also ``projector`` for wav2vec2/HuBERT/WavLM,
    ``pre_classifier`` for DistilBERT, and timm's ``get_classifier()`` inside a TimmWrapper.
    """
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None and hasattr(timm_model, "get_classifier"):
        head = timm_model.get_classifier()
        for name, module in model.named_modules():
            if module is head and name:
                return [name]
    base = getattr(model, "base_model_prefix", "")
    # A child that is itself a PreTrainedModel is the pretrained body even when it is not named after
    # base_model_prefix (WhisperForAudioClassification keeps its WhisperEncoder as ``encoder``).
    return [
        name
        for name, child in model.named_children()
        if name != base and not isinstance(child, PreTrainedModel) and any(True for _ in child.parameters())
    ]
