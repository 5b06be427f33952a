"""How one domain (source or target) is described: the arguments of a YAML section or the command line.

:class:`DomainDataArguments` holds only simple field types so ``transformers.HfArgumentParser`` can
build it, and checks its values when it is made, so a bad config fails at parse time.
:mod:`hf_transfer.data.loaders` turns it into a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .image import CenterCrop

INPUT_COLUMN_CANDIDATES = ("image", "img", "audio", "text", "sentence", "file", "path")


@dataclass
class DomainDataArguments:
    """One domain, described the same way in YAML configs and on the command line.

    Only simple field types so ``transformers.HfArgumentParser`` can build it
    (use a ``prefix`` / separate dataclass per domain for source and target).
    """

    dataset: str = field(
        metadata={
            "help": "Hub dataset id (e.g. 'cifar10'), a local folder (one sub-folder per class, "
            "imagefolder/audiofolder layout, or a save_to_disk folder), or a csv/tsv/json/jsonl/"
            "parquet file path or glob."
        }
    )
    config: str | None = field(default=None, metadata={"help": "Hub dataset config name."})
    revision: str | None = field(
        default=None,
        metadata={
            "help": "Branch, tag or commit of a Hub dataset, e.g. 'refs/convert/parquet' (the Hub's parquet export of "
            "a script-based dataset, with data_dir set to the config's folder)."
        },
    )
    split: str = field(
        default="train",
        metadata={"help": "Split to train on (Hub split, or split sub-folder of a local folder)."},
    )
    input_column: str | None = field(
        default=None,
        metadata={
            "help": "Column holding the input. Default: auto-detect among "
            + ", ".join(INPUT_COLUMN_CANDIDATES)
            + ", then any Image/Audio column."
        },
    )
    label_column: str | None = field(
        default="label",
        metadata={
            "help": "Column holding the class label. None/'none'/'' = unlabelled domain. If the "
            "default 'label' column is absent the domain is loaded as unlabelled (with a warning)."
        },
    )
    label_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names in class-id order, for a label column of bare integers (label i gets the i-th "
            "name, e.g. 'normal tumor' for 0/1); they name the model's classes and its card."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "data_dir for Hub datasets; for a local folder, a sub-folder of it."},
    )
    description: str | None = field(
        default=None,
        metadata={"help": "Free text describing the domain (e.g. 'studio photos'), used in model cards."},
    )
    license: str | None = field(
        default=None,
        metadata={"help": "The data's licence (e.g. 'cc-by-4.0'), written into the model card's training-data section."},
    )
    max_examples: int | None = field(
        default=None,
        metadata={"help": "Keep a random subset of at most this many examples (seeded)."},
    )
    center_crop: float | None = field(
        default=None,
        metadata={
            "help": "Images only: keep the central fraction (0-1] of the shorter side before resizing, for this "
            "domain's training and evaluation images, to match another domain's field of view/magnification."
        },
    )
    eval_split: str | None = field(
        default=None,
        metadata={"help": "Split used for evaluation (same rules as split; for file sources a path/glob)."},
    )
    filter_column: str | None = field(
        default=None,
        metadata={
            "help": "Keep only the rows whose value in this column is one of filter_values (training and evaluation "
            "splits alike), e.g. a hospital, speaker or scanner column that picks this domain out of a shared dataset."
        },
    )
    filter_values: list[str] | None = field(
        default=None,
        metadata={
            "help": "Values of filter_column to keep, compared as text; for a ClassLabel column either the class "
            "names or their ids. Filtering the label column also narrows the classes to the kept ones."
        },
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "datasets cache directory (default: HF_DATASETS_CACHE)."}
    )
    examples_per_class: int | None = field(
        default=None,
        metadata={
            "help": "Train on only K examples per class of this domain's training split (stratified, seeded with "
            "training.seed; evaluation splits are kept whole). With the target's data as the source and method "
            "'source_only' it is the fine-tune-on-K-labels baseline: the same rows training.target_labels_per_class "
            "draws from that split with the same seed."
        },
    )

    def __post_init__(self) -> None:
        if self.center_crop is not None:
            CenterCrop(self.center_crop)  # fail at parse time, with the crop's own check
        if isinstance(self.label_names, str):
            self.label_names = self.label_names.split(",")
        if self.label_names is not None:
            self.label_names = [str(n).strip() for n in self.label_names]
            if len(set(self.label_names)) != len(self.label_names) or "" in self.label_names:
                raise ValueError(f"label_names must be distinct and non-empty, got {self.label_names}.")
        if isinstance(self.filter_values, (str, int, float)):
            self.filter_values = [self.filter_values]
        if self.filter_values is not None:
            self.filter_values = [filter_key(v) for v in self.filter_values]
        if self.examples_per_class is not None and self.examples_per_class < 1:
            raise ValueError(f"examples_per_class must be >= 1 (or unset for every example), got {self.examples_per_class}.")
        if (self.filter_column is None) != (not self.filter_values):
            raise ValueError(
                f"filter_column ({self.filter_column!r}) and filter_values ({self.filter_values!r}) go together: set "
                "both to keep only some rows of the dataset, or neither to keep them all."
            )


def filter_key(value: object) -> str:
    """The text a filter value is compared as: ``2``, ``2.0`` and ``"2"`` all read ``"2"``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


__all__ = ["INPUT_COLUMN_CANDIDATES", "DomainDataArguments", "filter_key"]
