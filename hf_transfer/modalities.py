"""The three modalities, image, audio and text: one table of what each means, and how to tell them apart.

Every fact that depends on the modality is read from :data:`MODALITY_TABLE`: the model's main
input name (``pixel_values``, ``input_values``/``input_features``, ``input_ids``), the pipeline task,
the ``AutoModelFor...`` and ``Auto...Processor`` classes, the processor component, the media file
suffixes. :func:`infer_modality` reads the modality of a loaded domain (a ``datasets.Dataset``) or
of a model; :class:`ModalityMismatchError` is raised wherever data, processor and backbone disagree.

Standard library only (``datasets`` is imported when a dataset is inspected), so the card, the Hub
push and the CLI's ``--help`` can use it without loading the ML stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from typing import TypeAlias

    from datasets import Dataset
    from datasets.features.features import FeatureType
    from torch import nn
    from transformers import FeatureExtractionMixin, ImageProcessingMixin, PreTrainedTokenizerBase, ProcessorMixin

    #: What feeds a backbone: one of the table's processor kinds, or a multimodal bundle of them.
    Processor: TypeAlias = ImageProcessingMixin | FeatureExtractionMixin | PreTrainedTokenizerBase | ProcessorMixin


class ModalityMismatchError(ValueError):
    """The data's modality is not what the backbone, its processor or the request expects."""


@dataclass(frozen=True)
class Modality:
    """One row of :data:`MODALITY_TABLE`."""

    name: str
    #: the model's ``main_input_name`` (audio models take raw ``input_values`` or ``input_features`` spectrograms)
    input_names: tuple[str, ...]
    #: the ``transformers.pipeline`` task, also the card's ``pipeline_tag``
    task: str
    #: the ``transformers`` auto class that loads a classifier for this modality
    auto_model: str
    #: the name of that auto class's model-type mapping in ``transformers.models.auto.modeling_auto``
    auto_mapping: str
    #: the ``transformers`` auto class of the preprocessor
    auto_processor: str
    #: the base class of that preprocessor, ``module:Class``
    processor_base: str
    #: the attribute that holds this modality's component in a multimodal ``ProcessorMixin``
    processor_attribute: str
    #: the files a checkpoint needs for that preprocessor (for error messages)
    processor_files: str
    #: substrings of a classifier class name that give the modality away (``config.architectures``)
    architecture_markers: tuple[str, ...]
    #: media file suffixes, lower case (empty for text)
    file_suffixes: frozenset[str]
    #: the data, in a sentence: "the backbone expects {plural}"
    plural: str
    #: a checkpoint to suggest, and a sentence suggesting a backbone for this data
    example_checkpoint: str
    backbone_hint: str


IMAGE = Modality(
    name="image",
    input_names=("pixel_values",),
    task="image-classification",
    auto_model="AutoModelForImageClassification",
    auto_mapping="MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    auto_processor="AutoImageProcessor",
    processor_base="transformers.image_processing_utils:ImageProcessingMixin",
    processor_attribute="image_processor",
    processor_files="preprocessor_config.json (an image processor)",
    architecture_markers=("ImageClassification",),
    file_suffixes=frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}),
    plural="images",
    example_checkpoint="google/vit-base-patch16-224-in21k",
    backbone_hint="an image backbone such as a ViT checkpoint (google/vit-base-patch16-224-in21k) or a timm model",
)
AUDIO = Modality(
    name="audio",
    input_names=("input_values", "input_features"),
    task="audio-classification",
    auto_model="AutoModelForAudioClassification",
    auto_mapping="MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES",
    auto_processor="AutoFeatureExtractor",
    processor_base="transformers.feature_extraction_sequence_utils:SequenceFeatureExtractor",
    processor_attribute="feature_extractor",
    processor_files="preprocessor_config.json (a feature extractor)",
    # Wav2Vec2ForSequenceClassification is an audio classifier despite its name
    architecture_markers=("AudioClassification", "Wav2Vec2"),
    file_suffixes=frozenset({".wav", ".flac", ".ogg", ".mp3"}),
    plural="audio",
    example_checkpoint="facebook/wav2vec2-base",
    backbone_hint="an audio backbone such as a wav2vec2 checkpoint (facebook/wav2vec2-base)",
)
TEXT = Modality(
    name="text",
    input_names=("input_ids",),
    task="text-classification",
    auto_model="AutoModelForSequenceClassification",
    auto_mapping="MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    auto_processor="AutoTokenizer",
    processor_base="transformers.tokenization_utils_base:PreTrainedTokenizerBase",
    processor_attribute="tokenizer",
    processor_files="tokenizer.json / tokenizer_config.json (a tokenizer)",
    architecture_markers=("SequenceClassification",),
    file_suffixes=frozenset(),
    plural="text",
    example_checkpoint="sentence-transformers/all-MiniLM-L6-v2",
    backbone_hint="a text backbone such as a BERT-style checkpoint (sentence-transformers/all-MiniLM-L6-v2)",
)

#: Order matters: a model type listed for several modalities (e.g. ``perceiver``) resolves to the first.
MODALITY_TABLE: dict[str, Modality] = {m.name: m for m in (IMAGE, AUDIO, TEXT)}
MODALITIES: tuple[str, ...] = tuple(MODALITY_TABLE)


# --------------------------------------------------------------------------- lookups


def get_modality(name: str) -> Modality:
    """The table row of ``name``; an unknown name is a ``ValueError`` that lists the known ones."""
    try:
        return MODALITY_TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown modality {name!r}; expected one of {MODALITIES}.") from None


def task_of(modality: str) -> str:
    """The pipeline task of ``modality`` (``"image"`` → ``"image-classification"``)."""
    return get_modality(modality).task


def modality_of_task(task: str | None) -> str | None:
    """The modality of a pipeline task, or None for another task."""
    return next((m.name for m in MODALITY_TABLE.values() if m.task == task), None)


def modality_of_input_name(input_name: str | None) -> str | None:
    """The modality of a model's main input name (``pixel_values`` → ``"image"``), or None."""
    return next((m.name for m in MODALITY_TABLE.values() if input_name in m.input_names), None)


def modality_of_path(path: str | os.PathLike[str]) -> str | None:
    """``"image"``/``"audio"`` for a media file name (by its suffix), else None."""
    suffix = os.path.splitext(str(path))[1].lower()
    return next((m.name for m in MODALITY_TABLE.values() if suffix in m.file_suffixes), None)


def modality_of_architectures(architectures: Iterable[str]) -> str | None:
    """The modality that ``config.architectures`` (class names) gives away, or None."""
    names = " ".join(architectures)
    return next((m.name for m in MODALITY_TABLE.values() if any(k in names for k in m.architecture_markers)), None)


# --------------------------------------------------------------------------- inference


def modality_of_model(model: nn.Module) -> str:
    """``image`` / ``audio`` / ``text`` from a model's ``main_input_name``."""
    main_input = getattr(model, "main_input_name", None)
    modality = modality_of_input_name(main_input)
    if modality is None:
        raise ValueError(f"Cannot tell the modality of {type(model).__name__} (main input {main_input!r}).")
    return modality


def modality_of_feature(feature: FeatureType) -> str | None:
    """``"image"``/``"audio"``/``"text"`` for a ``datasets`` feature, else None."""
    from datasets import Audio, Image, Value

    if isinstance(feature, Image):
        return "image"
    if isinstance(feature, Audio):
        return "audio"
    if isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
        return "text"
    return None


def modality_of_paths(values: Iterable[object]) -> str | None:
    """image/audio if every non-empty string value ends in that modality's media suffix."""
    strings = [v for v in values if isinstance(v, str) and v]
    if not strings:
        return None
    kinds = {modality_of_path(v) for v in strings}
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _head(dataset: Dataset, column: str, n: int = 20) -> list[object]:
    return list(dataset.select(range(min(n, len(dataset))))[column])


def modality_of_column(dataset: Dataset, column: str) -> str | None:
    """Modality of ``dataset[column]``: its feature type, and for a string column of media file paths
    (judged on its first rows) image/audio; None for any other feature."""
    modality = modality_of_feature(dataset.features[column])
    if modality == "text":
        modality = modality_of_paths(_head(dataset, column)) or "text"
    return modality


def modality_of_dataset(dataset: Dataset, column: str = "input") -> str:
    """Modality of ``dataset[column]`` read from its feature type.

    For a domain returned by :func:`~hf_transfer.data.load_domain` this is exact; string columns
    whose values are media file paths are reported as image/audio.
    """
    if column not in dataset.column_names:
        raise ValueError(f"Column {column!r} not in dataset columns {dataset.column_names}")
    modality = modality_of_column(dataset, column)
    if modality is None:
        raise ValueError(
            f"Cannot infer modality of column {column!r} with feature {dataset.features[column]}; "
            "expected an Image, Audio or string column."
        )
    return modality


def infer_modality(data_or_model: Dataset | nn.Module, column: str = "input") -> str:
    """The modality of a loaded domain (its ``column``'s feature type) or of a model (its main input name)."""
    if hasattr(data_or_model, "column_names") and hasattr(data_or_model, "features"):
        return modality_of_dataset(data_or_model, column)
    return modality_of_model(data_or_model)


__all__ = [
    "AUDIO",
    "IMAGE",
    "MODALITIES",
    "MODALITY_TABLE",
    "TEXT",
    "Modality",
    "ModalityMismatchError",
    "get_modality",
    "infer_modality",
    "modality_of_architectures",
    "modality_of_column",
    "modality_of_dataset",
    "modality_of_feature",
    "modality_of_input_name",
    "modality_of_model",
    "modality_of_path",
    "modality_of_paths",
    "task_of",
]
