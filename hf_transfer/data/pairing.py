"""Training examples that hold both domains.

Every item of :class:`SourceTargetDataset` is one labelled source example plus
``target_ratio`` target examples, so every batch the Trainer draws (whatever its sampler,
DDP sharding included) holds source and target in a fixed ratio, and one epoch is one pass
over the source set. The target set cycles: item ``i`` of epoch ``e`` takes target positions
``e·n_s·r + i·r + k`` (mod ``n_t``) of a seeded permutation, so a target set larger than the
source set is still covered across epochs, deterministically (resume-safe).

Target labels are replaced by ``-100`` except for the ``num_target_labels`` examples the user
allows (semi-supervised); they never reach the classification loss otherwise.

**Few-shot targets** (``labelled_target_indices``, the stratified K-per-class draw of
:mod:`~hf_transfer.data.few_shot`): every item also holds one of those labelled target examples (cycling
through them in a seeded order), so the few labels are seen at every step, as in MME's labelled batches;
the target cycle then masks every label, the few shots included.

**Several sources** (:class:`MultiSource`): every item holds one example of *each* source (each cycling
through its own seeded order; an epoch is one pass over the largest) plus ``target_ratio`` target
examples, so a batch is balanced across the sources in a fixed ratio and the domain discriminator sees
every domain equally often.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import Any

import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100


class MultiSource(tuple):
    """Several labelled source datasets, in order (source ``k`` has domain id ``k``, the target ``K``).

    A tuple of its own type so that one source given as a plain list of examples is never mistaken for several.
    """

    def __new__(cls, sources: Any) -> MultiSource:
        return super().__new__(cls, tuple(sources))


class SourceTargetDataset(Dataset):
    """Pairs a labelled source dataset (or a :class:`MultiSource`) with a cycling target dataset.

    Args:
        source: indexable dataset of examples (dicts of model inputs + ``labels``), or a
            :class:`MultiSource` of several.
        target: indexable dataset of target examples; their ``labels`` are masked.
        target_ratio: target examples per source example (per item, with several sources).
        num_target_labels: how many target examples (a seeded choice) keep their labels.
        seed: seeds the target permutation and the labelled-target choice.
        labelled_target_indices: the few-shot target examples (positions in ``target``) that keep their labels;
            each item holds one of them besides its ``target_ratio`` unlabelled ones.
    """

    def __init__(
        self,
        source: Any,
        target: Any,
        *,
        target_ratio: int = 1,
        num_target_labels: int = 0,
        seed: int = 0,
        labelled_target_indices: Sequence[int] | None = None,
    ) -> None:
        self.multi_source = isinstance(source, MultiSource)
        sources = list(source) if self.multi_source else [source]
        if not sources or any(len(s) == 0 for s in sources):
            raise ValueError("The source dataset is empty: domain adaptation needs labelled source examples.")
        if len(target) == 0:
            raise ValueError("The target dataset is empty: pass at least one (unlabelled) target example.")
        if target_ratio < 1:
            raise ValueError(f"target_ratio must be >= 1, got {target_ratio}.")
        if labelled_target_indices is not None and num_target_labels:
            raise ValueError("Give either num_target_labels or labelled_target_indices (a few-shot draw), not both.")
        self.sources, self.target = sources, target
        self.source = sources[0]  # the (first) source: what single-source readers (the shift report) look at
        self.target_ratio = target_ratio
        self.epoch = 0
        self._length = max(len(s) for s in sources)
        generator = torch.Generator().manual_seed(seed)
        self._target_order = torch.randperm(len(target), generator=generator).tolist()
        keep = torch.randperm(len(target), generator=generator)[: min(num_target_labels, len(target))]
        self.labelled_target_indices = frozenset(keep.tolist())
        self.few_shot: list[int] = []
        if labelled_target_indices is not None:
            shots = sorted({int(i) for i in labelled_target_indices})
            if not shots or shots[0] < 0 or shots[-1] >= len(target):
                raise ValueError(f"labelled_target_indices must be positions in the target (0..{len(target) - 1}).")
            order = torch.randperm(len(shots), generator=torch.Generator().manual_seed(seed + 1)).tolist()
            self.few_shot = [shots[i] for i in order]
        # A smaller source cycles through its own seeded order (one per source, drawn after the target's).
        self._source_orders = [
            None if len(s) == self._length else torch.randperm(len(s), generator=generator).tolist() for s in sources
        ]

    @property
    def num_sources(self) -> int:
        return len(self.sources)

    def __len__(self) -> int:
        return self._length

    def set_epoch(self, epoch: int) -> None:
        """Shift the target cycle (called by the trainer at each epoch start)."""
        self.epoch = int(epoch)

    def target_indices(self, index: int) -> list[int]:
        start = self.epoch * len(self) * self.target_ratio + index * self.target_ratio
        n_t = len(self.target)
        return [self._target_order[(start + k) % n_t] for k in range(self.target_ratio)]

    def source_index(self, k: int, index: int) -> int:
        """Position in source ``k`` of item ``index`` (this epoch)."""
        order = self._source_orders[k]
        if order is None:
            return index
        return order[(self.epoch * len(self) + index) % len(order)]

    def few_shot_index(self, index: int) -> int:
        """The labelled target example item ``index`` holds (few-shot runs)."""
        return self.few_shot[(self.epoch * len(self) + index) % len(self.few_shot)]

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
        per_source = [_fetch(s, [self.source_index(k, i) for i in indices]) for k, s in enumerate(self.sources)]
        targets = _fetch(self.target, target_positions)
        shots = _fetch(self.target, [self.few_shot_index(i) for i in indices]) if self.few_shot else None
        items = []
        for k, index in enumerate(indices):
            group = []
            for offset in range(self.target_ratio):
                j = target_positions[k * self.target_ratio + offset]
                example = dict(targets[k * self.target_ratio + offset])
                if self.few_shot or j not in self.labelled_target_indices:
                    example["labels"] = IGNORE_INDEX
                group.append(example)
            if shots is not None:
                group.append(dict(shots[k]))  # the one labelled target example of this item
            source: Any = [dict(rows[k]) for rows in per_source] if self.multi_source else dict(per_source[0][k])
            items.append({"source": source, "target": group})
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
