"""Heads beyond the main classifier, on the same adapted features: extra label tasks and rotation prediction.

Multi-task learning (Caruana 1997): several tasks share the LoRA-adapted backbone, each with its own linear head on
the pooled features that enter the main classifier (what the discriminator sees too), and the loss is

.. math:: \\mathcal{L} = \\mathcal{L}_{cls} + \\sum_t w_t \\mathcal{L}_t + \\mathcal{L}_{align}.

* **Label tasks** (``kind="labels"``): another label column of the labelled domain, e.g. a staining protocol next
  to the cell type; batch key ``labels__<task>`` (``-100`` = unlabelled). Like the main labels they are trained on
  source rows only (target rows are masked when ``domain_labels`` are given).
* **Rotation** (``kind="rotation"``), the self-supervised task of Sun et al. 2019, *Unsupervised Domain Adaptation
  through Self-Supervision*: each image x (source *and* target: no label is needed) is turned by
  k·90° with k drawn uniformly from {0, 1, 2, 3}, and a 4-way head predicts k from the features of the turned
  image,

  .. math:: \\mathcal{L}_{rot} = \\frac{1}{n}\\sum_i \\mathrm{CE}\\big(h_{rot}(F(\\mathrm{rot}_{k_i}(x_i))), k_i\\big).

  Learning it on both domains pulls their features onto a shared, label-free structure; it adds one backbone
  forward on the turned batch per step. **Audio and text have no counterpart here**: the analogues (predicting a
  time-reversal or a masked span of a waveform or a sentence) are either trivially solvable from low-level cues
  (reversed audio is told apart by the onset envelope) or already what the backbone was pretrained on (masked
  language modelling), so they would add cost without a new signal; hf_transfer refuses ``rotation`` for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TASK_LABEL_PREFIX = "labels__"
"""Batch key prefix of a label task's labels: ``labels__<task>``."""
TASK_KINDS = ("labels", "rotation")
NUM_ROTATIONS = 4


@dataclass
class TaskSpec:
    """One auxiliary task: its kind and, for a label task, its class names (the head's outputs, in order)."""

    kind: str
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"A task's kind must be one of {TASK_KINDS}, got {self.kind!r}.")
        if self.kind == "rotation":
            self.labels = [f"{90 * k}°" for k in range(NUM_ROTATIONS)]
        elif len(self.labels) < 2:
            raise ValueError(f"A label task needs at least two classes, got {self.labels}.")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TaskSpec:
        return cls(kind=values["kind"], labels=list(values.get("labels") or []))


def tasks_for(weights: Mapping[str, float], label_names: Mapping[str, Sequence[str]] | None = None) -> dict[str, TaskSpec]:
    """The tasks ``weights`` name: ``rotation`` is the rotation task; any other name a label task whose class names
    ``label_names[name]`` gives (a missing one is an error naming the fix)."""
    label_names = label_names or {}
    specs = {}
    for name in weights:
        if name == "rotation":
            specs[name] = TaskSpec("rotation")
        elif name in label_names:
            specs[name] = TaskSpec("labels", list(label_names[name]))
        else:
            raise ValueError(
                f"Task {name!r} is not 'rotation', so it is a label column, but its class names are not known: pass "
                f"label_names={{{name!r}: [...]}} (the column's classes in id order)."
            )
    return specs


def build_task_heads(specs: Mapping[str, TaskSpec], feature_dim: int) -> nn.ModuleDict:
    """One linear head per task, ``feature_dim → num_classes``."""
    for name in specs:
        if not name.isidentifier():
            raise ValueError(f"Task name {name!r} must be a Python identifier (letters, digits, underscores).")
    return nn.ModuleDict({name: nn.Linear(feature_dim, spec.num_classes) for name, spec in specs.items()})


def rotate_images(pixel_values: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Each image ``pixel_values[i]`` (C, H, W; H = W) turned counter-clockwise by ``rotations[i]`` × 90°."""
    if pixel_values.dim() != 4 or pixel_values.shape[-1] != pixel_values.shape[-2]:
        raise ValueError(
            f"Rotation prediction needs square image batches (B, C, H, H), got shape {tuple(pixel_values.shape)}."
        )
    return torch.stack([torch.rot90(image, int(k), dims=(-2, -1)) for image, k in zip(pixel_values, rotations.tolist())])


def rotation_batch(pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The turned images and their labels k ∈ {0, 1, 2, 3} (uniform; ``generator`` for a fixed draw)."""
    rotations = torch.randint(0, NUM_ROTATIONS, (pixel_values.shape[0],), generator=generator)
    return rotate_images(pixel_values, rotations), rotations.to(pixel_values.device)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean CE over rows with a label (``-100`` = none); an exact 0 that keeps the graph when none has one."""
    summed = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    return summed / (labels != -100).sum().clamp(min=1)


def source_only_labels(labels: torch.Tensor, domain_labels: torch.Tensor | None) -> torch.Tensor:
    """A label task's labels with target rows (``domain_labels == 1``) masked: only the source's are trained on."""
    if domain_labels is None:
        return labels
    return torch.where(domain_labels.to(labels.device) == 0, labels, torch.full_like(labels, -100))


def pop_task_labels(inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Remove and return the ``labels__<task>`` entries of a batch (the backbone must not see them)."""
    return {k[len(TASK_LABEL_PREFIX):]: inputs.pop(k) for k in [k for k in inputs if k.startswith(TASK_LABEL_PREFIX)]}


def parse_task_weights(value: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"stain=0.5,rotation=0.1"`` (or a mapping) → ``{"stain": 0.5, "rotation": 0.1}``."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    weights = {}
    for item in str(value).split(","):
        name, sep, weight = item.strip().partition("=")
        try:
            weights[name.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"Task weights are 'name=weight' pairs separated by commas, got {item.strip()!r}.")
    return weights


def check_tasks_fit(specs: Mapping[str, TaskSpec], modality: str | None) -> None:
    """A rotation task only for images (see the module docstring for audio and text)."""
    if modality and modality != "image" and any(s.kind == "rotation" for s in specs.values()):
        raise ValueError(
            f"The rotation task predicts how an image was turned; this model is {modality}. No self-supervised task "
            "fits audio or text here (see hf_transfer.auxiliary): set the rotation weight to 0."
        )


def task_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(correct, counted) over the rows with a label."""
    mask = labels != -100
    return int((logits.argmax(-1)[mask] == labels[mask]).sum()), int(mask.sum())


__all__ = [
    "NUM_ROTATIONS",
    "TASK_KINDS",
    "TASK_LABEL_PREFIX",
    "TaskSpec",
    "build_task_heads",
    "check_tasks_fit",
    "masked_cross_entropy",
    "parse_task_weights",
    "pop_task_labels",
    "rotate_images",
    "rotation_batch",
    "source_only_labels",
    "task_accuracy",
    "tasks_for",
]
