"""Class labels: encode a domain's raw label values, name its classes, and put the target domain's
labels into the source domain's label index space.

Two domains rarely agree on label ids (folder order, CSV string order, Hub
conventions), so labels are matched by *name*, and the source's
``ClassLabel`` order wins because the classifier head is trained on it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from datasets import ClassLabel, Dataset, Value

logger = logging.getLogger(__name__)


def label_names(dataset: Any) -> list[str] | None:
    """Class names of the ``label`` (or ``labels``) ClassLabel column; None when unlabelled or not a ``datasets`` set."""
    features = getattr(dataset, "features", None) or {}
    for column in ("label", "labels"):
        feature = features.get(column)
        if isinstance(feature, ClassLabel):
            return list(feature.names)
    return None


def parse_label_mapping(text: str | None) -> dict[str, str] | None:
    """Parse ``"pos=positive,neg=negative"`` into ``{"pos": "positive", "neg": "negative"}``.

    For configs/CLI flags, where a dict field is awkward.  Empty/None -> None.
    """
    if text is None or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"Bad label mapping entry {item.strip()!r} in {text!r}; expected 'target=source'.")
        if key in mapping and mapping[key] != value:
            raise ValueError(f"Label {key!r} is mapped twice in {text!r}.")
        mapping[key] = value
    return mapping


def encode_labels(values: Sequence[object], name: str) -> tuple[list[int], list[str]]:
    """Map raw label values to ids + names; None/NaN/''/negative ints mean "no label".

    Integer labels keep their ids (names are "0".."K-1"); string labels are
    sorted by name, as imagefolder does with class folders.
    """

    def missing(v: object) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())

    present = [v for v in values if not missing(v)]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if any(float(v) != int(v) for v in present):
            raise ValueError(f"Label column of {name!r} has non-integer numbers; labels must be classes.")
        ids = [-1 if missing(v) or int(v) < 0 else int(v) for v in values]
        return ids, [str(i) for i in range(max(ids, default=-1) + 1)]
    names = sorted({str(v).strip() for v in present})
    index = {n: i for i, n in enumerate(names)}
    return [-1 if missing(v) else index[str(v).strip()] for v in values], names


def rename_classes(ds: Dataset, label_names: list[str], name: str) -> Dataset:
    """Give class ids 0..K-1 the names ``label_names`` (more names than classes seen is fine)."""
    feature = ds.features["label"]
    if not isinstance(feature, ClassLabel):
        raise ValueError(f"label_names was given for {name!r}, but that domain has no label column.")
    if len(label_names) < feature.num_classes:
        raise ValueError(
            f"{name!r} has {feature.num_classes} classes ({feature.names}) but label_names has only "
            f"{len(label_names)}: {label_names}. Give one name per class id."
        )
    return ds.cast_column("label", ClassLabel(names=list(label_names)))


def align_labels(
    source: Dataset,
    target: Dataset,
    label_mapping: dict[str, str] | None = None,
    allow_extra_target_labels: bool = False,
    allow_missing_target_labels: bool = False,
) -> tuple[Dataset, Dataset, list[str]]:
    """Remap ``target["label"]`` ids onto ``source``'s label names.

    ``label_mapping`` renames target labels to source labels (``{"pos":
    "positive"}``: target name -> source name) before matching.  By default
    any label present in only one domain is an error, because it is usually a
    naming mismatch.  ``allow_extra_target_labels`` instead sets target
    examples of unknown classes to ``-1`` (unlabelled: the source-trained head
    cannot predict them), and ``allow_missing_target_labels`` accepts a target
    that covers only some source classes.  An unlabelled target passes through.

    Returns ``(source, target, label_names)``; ``label_names`` is the source's.
    """
    names = label_names(source)
    if names is None:
        raise ValueError("The source domain must be labelled (its 'label' column must be a ClassLabel).")
    target_names = label_names(target)
    if target_names is None:
        if label_mapping:
            logger.warning("label_mapping is ignored: the target domain is unlabelled.")
        return source, target, names

    mapping = dict(label_mapping or {})
    unknown_keys = sorted(set(mapping) - set(target_names))
    if unknown_keys:
        raise ValueError(
            f"label_mapping keys {unknown_keys} are not target labels; keys must be target label names "
            f"(target labels: {target_names}), values source label names."
        )
    bad_values = sorted({v for v in mapping.values() if v not in names})
    if bad_values:
        raise ValueError(f"label_mapping values {bad_values} are not source labels (source labels: {names}).")

    renamed = [mapping.get(n, n) for n in target_names]
    source_index = {n: i for i, n in enumerate(names)}
    extra = sorted({n for n in renamed if n not in source_index})
    missing = sorted(set(names) - set(renamed))
    problems = []
    if extra and not allow_extra_target_labels:
        problems.append(f"target labels {extra} do not exist in the source")
    if missing and not allow_missing_target_labels:
        problems.append(f"source labels {missing} do not exist in the target")
    if problems:
        raise ValueError(
            "Source and target label sets differ: "
            + "; ".join(problems)
            + f" (source: {names}, target: {target_names}). "
            "If they are the same classes under different names, pass label_mapping "
            "(target=source, e.g. 'pos=positive,neg=negative'); otherwise set "
            "allow_extra_target_labels=True (extra target classes become unlabelled) and/or "
            "allow_missing_target_labels=True."
        )
    if extra:
        logger.warning("Target labels %s are not in the source; those target examples become unlabelled.", extra)

    old_to_new = [source_index.get(n, -1) for n in renamed]
    if old_to_new == list(range(len(names))):
        if target_names != names:  # same ids, renamed classes: only the names change
            target = target.cast_column("label", ClassLabel(names=names))
        return source, target, names

    def remap(batch: dict[str, list[int]]) -> dict[str, list[int]]:
        return {"label": [old_to_new[i] if i is not None and i >= 0 else -1 for i in batch["label"]]}

    target = target.cast_column("label", Value("int64")).map(remap, batched=True, desc="Aligning target labels")
    target = target.cast_column("label", ClassLabel(names=names))
    return source, target, names
