"""Training examples that hold both domains.

Every item of :class:`SourceTargetDataset` is one labelled source example plus
``target_ratio`` target examples, so every batch the Trainer draws (whatever its sampler,
DDP sharding included) holds source and target in a fixed ratio, and one epoch is one pass
over the source set. The target set cycles: item ``i`` of epoch ``e`` takes target positions
``e·n_s·r + i·r + k`` (mod ``n_t``) of a seeded permutation, so a target set larger than the
source set is still covered across epochs, deterministically (resume-safe).

Target labels are replaced by ``-100`` except for the ``num_target_labels`` examples the user
allows (semi-supervised); they never reach the classification loss otherwise.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100


class SourceTargetDataset(Dataset):
    """Pairs a labelled source dataset with a cycling target dataset.

    Args:
        source: indexable dataset of examples (dicts of model inputs + ``labels``).
        target: indexable dataset of target examples; their ``labels`` are masked.
        target_ratio: target examples per source example.
        num_target_labels: how many target examples (a seeded choice) keep their labels.
        seed: seeds the target permutation and the labelled-target choice.
    """

    def __init__(
        self,
        source: Any,
        target: Any,
        *,
        target_ratio: int = 1,
        num_target_labels: int = 0,
        seed: int = 0,
    ) -> None:
        if len(source) == 0:
            raise ValueError("The source dataset is empty: domain adaptation needs labelled source examples.")
        if len(target) == 0:
            raise ValueError("The target dataset is empty: pass at least one (unlabelled) target example.")
        if target_ratio < 1:
            raise ValueError(f"target_ratio must be >= 1, got {target_ratio}.")
        self.source, self.target = source, target
        self.target_ratio = target_ratio
        self.epoch = 0
        generator = torch.Generator().manual_seed(seed)
        self._target_order = torch.randperm(len(target), generator=generator).tolist()
        keep = torch.randperm(len(target), generator=generator)[: min(num_target_labels, len(target))]
        self.labelled_target_indices = frozenset(keep.tolist())

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Shift the target cycle (called by the trainer at each epoch start)."""
        self.epoch = int(epoch)

    def target_indices(self, index: int) -> list[int]:
        start = self.epoch * len(self.source) * self.target_ratio + index * self.target_ratio
        n_t = len(self.target)
        return [self._target_order[(start + k) % n_t] for k in range(self.target_ratio)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._items([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A whole batch at once (the DataLoader calls this): each domain's transform runs once on all its rows.

        Decoding and preprocessing (``Dataset.with_transform``) then work on a batch, as the image processors and
        feature extractors are built to, instead of one example at a time.
        """
        return self._items(indices)

    def _items(self, indices: list[int]) -> list[dict[str, Any]]:
        indices = [int(i) for i in indices]
        target_positions = [j for i in indices for j in self.target_indices(i)]
        sources = _fetch(self.source, indices)
        targets = _fetch(self.target, target_positions)
        items = []
        for k, index in enumerate(indices):
            group = []
            for offset in range(self.target_ratio):
                j = target_positions[k * self.target_ratio + offset]
                example = dict(targets[k * self.target_ratio + offset])
                if j not in self.labelled_target_indices:
                    example["labels"] = IGNORE_INDEX
                group.append(example)
            items.append({"source": dict(sources[k]), "target": group})
        return items


def _fetch(dataset: Any, indices: list[int]) -> list[Any]:
    """``dataset``'s rows at ``indices``, in one batched call when the dataset offers one (HF ``Dataset``)."""
    batched = getattr(dataset, "__getitems__", None)
    if batched is not None and len(indices) > 1:
        rows = batched(indices)
        if len(rows) == len(indices):
            return rows
        # A transform dropped rows (skip_bad_examples): fetch one by one, as before, to keep rows aligned.
    return [dataset[i] for i in indices]


def has_labels(dataset: Sized) -> bool:
    """Whether a dataset carries labels (an HF ``label``/``labels`` column with real values)."""
    features = getattr(dataset, "features", None) or getattr(dataset, "column_names", None)
    if features is not None:
        return any(name in features for name in ("label", "labels"))
    if len(dataset) == 0:
        return False
    first = dataset[0]
    value = first.get("labels", first.get("label")) if isinstance(first, dict) else None
    return value is not None and int(value) != IGNORE_INDEX and int(value) >= 0
