"""Few-shot targets: which K labelled target examples per class a run may train on.

Semi-supervised adaptation (Saito et al. 2019) gives the learner a handful of labelled target examples
per class and keeps the rest of the target unlabelled. The draw is **stratified** (exactly K per
class, so a rare class is not left out by chance) and **seeded** (the same seed picks the same
examples, so the few-shot run, its DANN + K variant and the fine-tune-on-K baseline all see the same
labels). :func:`stratified_indices` is the one place that draws them: ``training.target_labels_per_class``
keeps their labels inside the target, ``<domain>.examples_per_class`` keeps only them (the baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def dataset_labels(dataset: Any) -> list[int]:
    """The class id of every example of ``dataset`` (negative = unlabelled), read without its transform.

    A ``datasets.Dataset`` is read from its ``label``/``labels`` column with the format (and so the lazy
    decoding transform) switched off; any other sequence of dicts from each example's ``labels``/``label``.
    """
    with_format = getattr(dataset, "with_format", None)
    columns = getattr(dataset, "column_names", None)
    if with_format is not None and columns is not None:
        column = next((c for c in ("labels", "label") if c in columns), None)
        if column is None:
            raise ValueError("The target has no 'label' column: a few-shot draw needs labelled target examples.")
        return [int(v) if v is not None else IGNORE_INDEX for v in with_format(None)[column]]
    labels = []
    for example in dataset:
        value = example.get("labels", example.get("label")) if isinstance(example, dict) else None
        labels.append(IGNORE_INDEX if value is None else int(value))
    return labels


def stratified_indices(
    labels: Sequence[int], per_class: int, *, seed: int, num_classes: int | None = None, name: str = "the target"
) -> list[int]:
    """``per_class`` indices of each class of ``labels``, drawn with ``seed``; sorted.

    A class with fewer labelled examples (a rare class of a small target) gives all it has, and a warning names
    it; with ``num_classes``, a class with none at all is an error (there is nothing to label it with), as is a
    split with no labelled example.
    """
    if per_class < 1:
        raise ValueError(f"The number of labelled examples per class must be >= 1, got {per_class}.")
    counts: dict[int, int] = {}
    for label in labels:
        if label is not None and int(label) >= 0:
            counts[int(label)] = counts.get(int(label), 0) + 1
    classes = list(range(num_classes)) if num_classes is not None else sorted(counts)
    empty = [c for c in classes if not counts.get(c)]
    if not counts or empty:
        raise ValueError(
            f"{name} has no labelled example of class(es) {empty or 'any'}: a few-shot draw labels examples of every "
            "class. Give the target split labels for every class, or turn the few-shot draw off."
        )
    short = {c: counts[c] for c in classes if counts[c] < per_class}
    if short:
        logger.warning(
            "%s has fewer than %d labelled examples in class(es) %s: all of them are taken.", name, per_class,
            ", ".join(f"{c} ({n})" for c, n in short.items()),
        )
    # One seeded permutation of all rows, then the first K rows of each class in that order: the rows drawn
    # depend on which rows share a class, never on the class ids or names, so the same data split with its
    # classes named or numbered differently (a target aligned to a source, or loaded as a source) gives the
    # same shots.
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    taken = {c: 0 for c in classes}
    chosen: list[int] = []
    for index in order:
        label = labels[index]
        if label is None or int(label) < 0 or int(label) not in taken or taken[int(label)] >= per_class:
            continue
        taken[int(label)] += 1
        chosen.append(index)
    return sorted(chosen)

__all__ = ["dataset_labels", "stratified_indices"]
