"""Turn a loaded domain into model inputs, lazily, and catch bad data early.

* :func:`build_transform` returns a callable for ``Dataset.with_transform``:
  decoding happens per batch as the DataLoader asks for it, so no decoded copy
  of the dataset is ever written (images/audio stay paths/bytes on disk).
* :func:`scan_domain` opens every file once up front so a corrupt file fails
  before training starts, with its path, instead of hours in.
* :func:`check_modality` turns "dataset is audio, backbone is ViT" into a
  readable error instead of a shape mismatch deep in the model.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from datasets import Dataset

from ..modalities import (
    MODALITIES,
    MODALITY_TABLE,
    ModalityMismatchError,
    get_modality,
    infer_modality,
    modality_of_input_name,
)
from .audio import AudioDecodeError, load_audio, read_audio
from .image import CenterCrop, ImageDecodeError, describe_source, load_image

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..modalities import Processor

logger = logging.getLogger(__name__)


class BadExamplesError(ValueError):
    """Some examples could not be decoded; the message lists their paths."""


# --------------------------------------------------------------------------- modality checks


def modalities_of(obj: str | Processor | nn.Module) -> set[str]:
    """Modalities a processor, tokenizer, feature extractor or model accepts.

    Works on strings (``"image"``), ``ProcessorMixin`` bundles (one entry per
    component), and models (via ``main_input_name``).  Empty set = unknown.
    """
    if isinstance(obj, str):
        return {get_modality(obj).name}
    for modality in MODALITY_TABLE.values():
        if isinstance(obj, _processor_base(modality.processor_base)):
            return {modality.name}
    found: set[str] = set()
    for modality in MODALITY_TABLE.values():
        component = getattr(obj, modality.processor_attribute, None)
        if component is not None and component is not obj:
            found |= modalities_of(component)
    main_input = modality_of_input_name(getattr(obj, "main_input_name", None))
    if not found and main_input is not None:
        found.add(main_input)
    return found


def _processor_base(path: str) -> type:
    """The class named ``module:Class`` in the modality table."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def check_modality(
    expected: str | Processor | nn.Module, data_modality: str, *, backbone: str | None = None
) -> None:
    """Raise :class:`ModalityMismatchError` if ``data_modality`` is not accepted.

    ``expected`` is a modality string, a processor/tokenizer/feature extractor
    or a model.  ``backbone`` (a name or checkpoint id) only improves the
    message.  Unknown processors are let through.
    """
    accepted = modalities_of(expected)
    if data_modality not in MODALITIES:
        raise ValueError(f"Unknown data modality {data_modality!r}; expected one of {MODALITIES}.")
    if not accepted or data_modality in accepted:
        return
    if backbone:
        who = f"the backbone {backbone!r}"
    elif isinstance(expected, str):
        who = "the backbone"
    else:
        who = f"the {type(expected).__name__}"
    wants = " or ".join(get_modality(m).plural for m in sorted(accepted))
    raise ModalityMismatchError(
        f"The dataset is {data_modality} but {who} expects {wants}; "
        f"pick {get_modality(data_modality).backbone_hint}, or check the domain's input_column."
    )


# --------------------------------------------------------------------------- transform


def _component(processor: Processor, modality: str) -> Processor:
    """The part of a (possibly multimodal) processor that handles ``modality``."""
    return getattr(processor, get_modality(modality).processor_attribute, None) or processor


def _labels(values: list[Any] | None, n: int) -> list[int]:
    """-100 (ignored by CrossEntropyLoss) where the label is missing or -1."""
    if values is None:
        return [-100] * n
    return [-100 if v is None or int(v) < 0 else int(v) for v in values]


@dataclass
class DomainTransform:
    """Callable for ``Dataset.with_transform``: batch of ``input``/``label`` -> model inputs.

    A class rather than a closure so it pickles into DataLoader worker
    processes started with ``spawn`` (macOS/Windows).
    """

    processor: Processor
    modality: str
    max_length: int | None = None
    max_duration_s: float | None = None
    sampling_rate: int | None = None
    skip_bad_examples: bool = False
    augment: Callable[[Any], Any] | None = None  # applied to each decoded image/waveform (training data)
    crop: Callable[[Any], Any] | None = None  # images only: applied after decoding, before augment (all splits)
    task_classes: dict[str, list[str]] | None = None  # auxiliary label tasks: column -> class names (id order)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, Any]:
        inputs = list(batch["input"])
        labels = _labels(batch.get("label"), len(inputs))
        if self.modality == "text":
            bad = [i for i, t in enumerate(inputs) if not isinstance(t, str)]
            decoded: list[Any] = inputs
            if bad:
                self._handle_bad([(i, describe_source(inputs[i]), "text is missing") for i in bad])
        else:
            decoded, bad_info = [], []
            for i, value in enumerate(inputs):
                try:
                    decoded.append(self._decode(value))
                except (ImageDecodeError, AudioDecodeError) as err:
                    bad_info.append((i, describe_source(value), str(err)))
                    decoded.append(None)
            bad = [i for i, _, _ in bad_info]
            if bad_info:
                self._handle_bad(bad_info)
        if bad:
            dropped = set(bad)
            keep = [i for i in range(len(inputs)) if i not in dropped]
            decoded = [decoded[i] for i in keep]
            labels = [labels[i] for i in keep]
        out = dict(self._encode(decoded)) if decoded else {}
        out["labels"] = labels
        for column, names in (self.task_classes or {}).items():
            ids = {name: i for i, name in enumerate(names)}
            values = list(batch.get(f"task__{column}") or [None] * len(inputs))
            task = [ids.get(v, -100) if v is not None else -100 for v in values]
            out[f"labels__{column}"] = [task[i] for i in keep] if bad else task
        return out

    def _decode(self, value: Any) -> Any:
        if self.modality == "image":
            image = load_image(value)
            if self.crop is not None:
                image = self.crop(image)
            return self.augment(image) if self.augment is not None else image
        waveform = load_audio(value, self._sampling_rate(), max_duration_s=self.max_duration_s)
        return self.augment(waveform) if self.augment is not None else waveform

    def _sampling_rate(self) -> int:
        rate = self.sampling_rate or getattr(_component(self.processor, "audio"), "sampling_rate", None)
        if not rate:
            raise ValueError("Audio needs a sampling rate: pass sampling_rate= or a feature extractor that has one.")
        return int(rate)

    def _encode(self, decoded: list[Any]) -> dict[str, Any]:
        component = _component(self.processor, self.modality)
        if self.modality == "image":
            return component(images=decoded, return_tensors="pt")
        if self.modality == "audio":
            rate = self._sampling_rate()
            max_samples = int(round(self.max_duration_s * rate)) if self.max_duration_s else None
            window = getattr(component, "n_samples", None)
            if window:  # Whisper: its encoder reads a fixed window (30 s, or a cut checkpoint's), always padded to it
                decoded = [audio[:max_samples] for audio in decoded] if max_samples else decoded
                max_samples = int(window)
            return component(
                decoded,
                sampling_rate=rate,
                padding="max_length" if max_samples else "longest",
                max_length=max_samples,
                truncation=max_samples is not None,
                return_tensors="pt",
            )
        # Text: lists, not tensors; the collator pads each batch to its longest.
        return component(decoded, truncation=True, max_length=self.max_length)

    def _handle_bad(self, bad: list[tuple[int, str, str]]) -> None:
        if not self.skip_bad_examples:
            raise BadExamplesError(
                f"{len(bad)} unreadable example(s) in this batch: "
                + "; ".join(err for _, _, err in bad)
                + ". Run scan_domain(...) before training, or set skip_bad_examples=True to drop them."
            )
        logger.warning("Skipping %d unreadable example(s): %s", len(bad), ", ".join(p for _, p, _ in bad))


def build_transform(
    processor: Processor,
    modality: str,
    *,
    max_length: int | None = None,
    max_duration_s: float | None = None,
    sampling_rate: int | None = None,
    skip_bad_examples: bool = False,
    augment: Callable[[Any], Any] | None = None,
    center_crop: float | None = None,
    task_classes: dict[str, list[str]] | None = None,
) -> Callable[[dict[str, list[Any]]], dict[str, Any]]:
    """Build the ``Dataset.with_transform`` function for one domain.

    Output keys: images -> ``pixel_values`` (tensor); audio -> the feature
    extractor's outputs (``input_values``/``input_features`` and
    ``attention_mask`` if it returns one), resampled to
    ``sampling_rate`` (default: the extractor's) and padded/truncated to
    ``max_duration_s`` (else padded to the batch's longest); text ->
    ``input_ids``/``attention_mask`` lists truncated to ``max_length`` (padding
    is the collator's job).  Always ``labels`` (-100 where missing).

    ``skip_bad_examples`` drops undecodable examples from the batch with a
    warning instead of raising; prefer :func:`scan_domain` to find them first.
    ``augment`` (:class:`~hf_transfer.data.augmentation.ImageAugmentation` for images,
    :class:`~hf_transfer.data.audio_augmentation.AudioAugmentation` for audio) transforms each
    decoded PIL image or waveform; use it for training data only. ``center_crop`` (images
    only, :class:`~hf_transfer.data.image.CenterCrop`) keeps the central fraction of each image
    first; use it for every split of a domain. ``task_classes`` (column → class names) adds ``labels__<column>``
    for each auxiliary label task (from the ``task__<column>`` columns :func:`load_domain` keeps; -100 = none).
    """
    check_modality(processor, modality)
    expected = getattr(augment, "modality", modality)
    if augment is not None and expected != modality:
        raise ValueError(
            f"augment= (model.{expected}_augmentation) is for {expected} data; this domain is {modality}. "
            f"Set it to 'none'{' and use model.audio_augmentation' if modality == 'audio' else ''}."
        )
    if augment is not None and modality == "text":
        raise ValueError("augment= is for images and audio; text domains take no augmentation.")
    if center_crop is not None and modality != "image":
        raise ValueError(f"center_crop is for images; this domain is {modality}. Remove it from the domain's arguments.")
    crop = CenterCrop(center_crop) if center_crop is not None else None
    return DomainTransform(
        processor, modality, max_length, max_duration_s, sampling_rate, skip_bad_examples, augment, crop,
        task_classes=dict(task_classes) if task_classes else None,
    )


def prepare_domain(
    dataset: Dataset,
    processor: Processor,
    *,
    modality: str | None = None,
    **transform_kwargs: Any,
) -> Dataset:
    """``dataset.with_transform(build_transform(...))`` with the modality inferred."""
    modality = modality or infer_modality(dataset)
    return dataset.with_transform(build_transform(processor, modality, **transform_kwargs))


# --------------------------------------------------------------------------- scanning


@dataclass
class ScanReport:
    """Result of :func:`scan_domain`: how many examples, which ones are unreadable and why."""

    total: int
    bad_indices: list[int] = field(default_factory=list)
    bad_paths: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def num_bad(self) -> int:
        return len(self.bad_indices)

    @property
    def ok(self) -> bool:
        return not self.bad_indices

    def summary(self, limit: int = 20) -> str:
        shown = self.bad_paths[:limit]
        more = f" ... and {self.num_bad - limit} more" if self.num_bad > limit else ""
        return f"{self.num_bad} of {self.total} examples are unreadable: " + ", ".join(shown) + more


def _check_example(value: Any, modality: str) -> None:
    if modality == "image":
        load_image(value)
    elif modality == "audio":
        read_audio(value)
    elif not isinstance(value, str) or not value.strip():
        raise ValueError("text is missing or empty")


def scan_domain(
    dataset: Dataset,
    modality: str | None = None,
    *,
    skip_bad_examples: bool = False,
    batch_size: int = 256,
) -> tuple[Dataset, ScanReport]:
    """Decode every example once and report the unreadable ones.

    Images are fully decoded and audio fully read (header-only checks miss
    truncated files).  Default: raise :class:`BadExamplesError` naming the
    paths.  With ``skip_bad_examples=True`` the bad rows are filtered out and
    a warning lists them.  Returns ``(dataset, report)``; the dataset is the
    input unchanged when nothing was bad.
    """
    modality = modality or infer_modality(dataset)
    report = ScanReport(total=len(dataset))
    index = 0
    for batch in dataset.select_columns(["input"]).iter(batch_size=batch_size):
        for value in batch["input"]:
            try:
                _check_example(value, modality)
            except Exception as err:
                report.bad_indices.append(index)
                report.bad_paths.append(describe_source(value) if value is not None else f"example #{index}")
                report.errors.append(str(err))
            index += 1
    if report.ok:
        return dataset, report
    if not skip_bad_examples:
        raise BadExamplesError(
            report.summary() + ". Fix or remove these files, or set skip_bad_examples=True to drop them."
        )
    logger.warning("Dropping %s", report.summary())
    bad = set(report.bad_indices)
    kept = dataset.select([i for i in range(len(dataset)) if i not in bad])
    return kept, report


# --------------------------------------------------------------------------- dataloader


def dataloader_settings(device: str | torch.device | None = None) -> dict[str, Any]:
    """``num_workers``/``pin_memory`` defaults for a DataLoader feeding ``device``.

    Workers decode images/audio in parallel with the training step; at most
    2 (more rarely helps tiny LoRA runs and competes with the main process),
    and 0 on a single-core machine where a worker would only add overhead.
    ``pin_memory`` only helps host->CUDA copies, so it is off elsewhere.
    Maps to ``TrainingArguments(dataloader_num_workers=..., dataloader_pin_memory=...)``.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device_type = torch.device(device).type
    try:
        cpus = len(os.sched_getaffinity(0))  # respects container/taskset CPU limits
    except AttributeError:  # macOS/Windows
        cpus = os.cpu_count() or 1
    return {"num_workers": 0 if cpus <= 1 else min(2, cpus), "pin_memory": device_type == "cuda"}
