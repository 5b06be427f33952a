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
from typing import Any

import torch

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

    Every class ``0 .. num_classes-1`` (default: every class present) must have at least ``per_class``
    labelled examples, else the error names the short classes and the largest K that fits.
    """
    if per_class < 1:
        raise ValueError(f"The number of labelled examples per class must be >= 1, got {per_class}.")
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        if label is not None and int(label) >= 0:
            by_class.setdefault(int(label), []).append(index)
    classes = range(num_classes) if num_classes is not None else sorted(by_class)
    counts = {c: len(by_class.get(c, [])) for c in classes}
    short = {c: n for c, n in counts.items() if n < per_class}
    if not counts or short:
        fits = min(counts.values(), default=0)
        raise ValueError(
            f"{name} has fewer than {per_class} labelled examples in class(es) "
            f"{', '.join(f'{c} ({n})' for c, n in short.items()) or 'all'}: a stratified few-shot draw needs "
            f"{per_class} per class. Lower target_labels_per_class / examples_per_class to at most {fits}, "
            "or give the target labels for every class."
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
