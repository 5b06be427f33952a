"""Data layer: load domains, align their labels, decode media and build lazy transforms.

Typical use::

    source = load_domain(DomainDataArguments(dataset="data/photos"))
    target = load_domain(DomainDataArguments(dataset="data/sketches", label_column=None))
    source, target, names = align_labels(source, target)
    modality = infer_modality(source)
    check_modality(processor, modality, backbone="google/vit-base-patch16-224-in21k")
    source, report = scan_domain(source, modality)
    source = source.with_transform(build_transform(processor, modality))
"""

from .collator import DomainBatchCollator
from .pairing import IGNORE_INDEX, MultiSource, SourceTargetDataset
from .few_shot import stratified_indices
from .augmentation import AUGMENTATIONS, ImageAugmentation, build_image_augmentation
from .audio_augmentation import AUDIO_AUGMENTATIONS, AudioAugmentation, build_audio_augmentation
from .audio import AUDIO_EXTENSIONS, AudioDecodeError, load_audio, read_audio, resample, to_mono
from ..modalities import ModalityMismatchError, infer_modality
from .loaders import load_domain
from .image import IMAGE_EXTENSIONS, CenterCrop, ImageDecodeError, load_image
from .labels import align_labels, label_names, parse_label_mapping
from .schema import DomainDataArguments
from .preprocessing import (
    BadExamplesError,
    DomainTransform,
    ScanReport,
    build_transform,
    check_modality,
    dataloader_settings,
    modalities_of,
    prepare_domain,
    scan_domain,
)

__all__ = [
    "AUGMENTATIONS",
    "AUDIO_AUGMENTATIONS",
    "AudioAugmentation",
    "build_audio_augmentation",
    "CenterCrop",
    "ImageAugmentation",
    "build_image_augmentation",
    "IGNORE_INDEX",
    "DomainBatchCollator",
    "SourceTargetDataset",
    "MultiSource",
    "stratified_indices",
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "AudioDecodeError",
    "BadExamplesError",
    "DomainDataArguments",
    "DomainTransform",
    "ImageDecodeError",
    "ModalityMismatchError",
    "ScanReport",
    "align_labels",
    "build_transform",
    "check_modality",
    "dataloader_settings",
    "infer_modality",
    "label_names",
    "load_audio",
    "load_domain",
    "load_image",
    "modalities_of",
    "parse_label_mapping",
    "prepare_domain",
    "read_audio",
    "resample",
    "scan_domain",
    "to_mono",
]
