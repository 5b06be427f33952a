"""A model's outputs on a (sub-sampled) domain: pooled features entering the classifier, logits, labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..modeling import DomainAdaptationModel, find_classifier, pool_features


@dataclass
class DomainOutputs:
    """``features (n, d)``, ``logits (n, K)`` and ``labels (n,)`` (``-100`` where a row has none)."""

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).any())


def classifier_of(model: nn.Module) -> nn.Module:
    """The module whose input is the pooled representation: an adapted model's head, or a backbone's classifier."""
    if isinstance(model, DomainAdaptationModel):
        return model.backbone.get_submodule(model.classifier_name)
    return model.get_submodule(find_classifier(model))


def subsample(dataset: Sequence[Any], max_examples: int | None, seed: int = 0) -> Sequence[Any]:
    """At most ``max_examples`` rows of ``dataset``, a seeded choice kept in dataset order."""
    if max_examples is None or len(dataset) <= max_examples:
        return dataset
    indices = np.sort(np.random.default_rng(seed).choice(len(dataset), size=max_examples, replace=False))
    return torch.utils.data.Subset(dataset, indices.tolist())


@torch.no_grad()
def collect_outputs(
    model: nn.Module,
    dataset: Sequence[Any],
    collator: Callable[[list[dict[str, Any]]], dict[str, Any]],
    *,
    batch_size: int = 32,
    max_examples: int | None = 500,
    seed: int = 0,
) -> DomainOutputs:
    """Run ``model`` (eval mode, its own device) over up to ``max_examples`` rows of ``dataset``.

    Works for a :class:`~hf_transfer.modeling.DomainAdaptationModel` and for any 🤗 classification
    backbone; labels are read only to return them (rows without one get ``-100``).
    """
    rows = subsample(dataset, max_examples, seed)
    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, collate_fn=collator)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = classifier_of(model).register_forward_pre_hook(
        lambda module, args: captured.append(pool_features(args[0]).detach().float().cpu()) if args else None
    )
    features, logits, labels = [], [], []
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch_labels = batch.pop("labels", None)
            batch.pop("domain_labels", None)
            batch.pop("domain_ids", None)
            inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            captured.clear()
            out = model(**inputs)
            size = out.logits.shape[0]
            logits.append(out.logits.detach().float().cpu())
            features.append(captured[-1])
            labels.append(batch_labels.cpu() if batch_labels is not None else torch.full((size,), -100))
    finally:
        handle.remove()
        model.train(was_training)
    if not logits:
        raise ValueError("The domain has no examples to measure.")
    return DomainOutputs(
        torch.cat(features).numpy(), torch.cat(logits).numpy(), torch.cat(labels).long().numpy()
    )
