"""Collate source/target items into one concatenated batch.

Source examples come first, target examples after; ``domain_labels`` says which is which
(0 = source, 1 = target). With several sources (items holding a list of source examples, one per
source) the batch also carries ``domain_ids``: ``k`` for source ``k``, ``K`` for the target, what the
multi-class discriminator predicts; ``domain_labels`` keep their meaning. Padding, stacking and tensor conversion are delegated to a standard
collator (``default_data_collator`` or ``DataCollatorWithPadding`` for text), so one forward
pass serves both domains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, default_data_collator


class DomainBatchCollator:
    """Flattens ``{"source": ex, "target": [ex, ...]}`` items; passes plain examples through (evaluation)."""

    def __init__(self, base_collator: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> None:
        self.base_collator = base_collator or default_data_collator

    @classmethod
    def for_processor(cls, processor: Any | None) -> "DomainBatchCollator":
        """Dynamic padding for tokenizers, plain stacking for image/audio inputs."""
        tokenizer = getattr(processor, "tokenizer", processor)
        if isinstance(tokenizer, PreTrainedTokenizerBase):
            return cls(DataCollatorWithPadding(tokenizer))
        return cls()

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features or "source" not in features[0]:
            return self.base_collator(features)
        several = isinstance(features[0]["source"], list)
        if several:
            sources = [example for item in features for example in item["source"]]
            num_sources = len(features[0]["source"])
        else:
            sources = [item["source"] for item in features]
        targets = [example for item in features for example in item["target"]]
        batch = self.base_collator(sources + targets)
        batch["domain_labels"] = torch.tensor([0] * len(sources) + [1] * len(targets), dtype=torch.long)
        if several:
            ids = [k for _ in features for k in range(num_sources)] + [num_sources] * len(targets)
            batch["domain_ids"] = torch.tensor(ids, dtype=torch.long)
        return batch
