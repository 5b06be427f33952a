"""What every label-free validator shares: its inputs, its direction, and the small maths helpers.

A validator scores one trained candidate from what an evaluation pass produces — the target's
logits and features, and the source's held-out logits, features and labels — and never reads a
target label. Each declares ``name`` (logged as ``eval_target_<name>``), ``higher_is_better``
(what ``TrainingArguments.greater_is_better`` must be when it is ``metric_for_best_model``) and
``required`` (the :class:`ValidationInputs` fields it reads). A missing field is a
``ValueError`` that names the field and the validator, not a ``NoneType`` traceback.

Everything is computed on the CPU in float64 NumPy, whatever came in (torch tensors on any
device and dtype, or arrays), so scores are reproducible across machines and do not depend on
the model's precision.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Union

import numpy as np

try:  # torch is a dependency of hf_transfer, but the maths here does not need it
    import torch
except ImportError:  # pragma: no cover - torch is always installed with hf_transfer
    torch = None  # type: ignore[assignment]

ArrayLike = Union[np.ndarray, "torch.Tensor"]

#: The label the Trainer uses for rows without one; skipped when the source's labels are read.
IGNORE_INDEX = -100


def to_numpy(value: Any, *, dtype: Any = np.float64) -> np.ndarray:
    """A CPU NumPy copy of a tensor or array (detached; float tensors upcast to float64, as NumPy has no bf16)."""
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.double() if value.is_floating_point() else value
        value = value.numpy()
    return np.asarray(value, dtype=dtype)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so large logits do not overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row, with :math:`0 \\log 0 = 0` so one-hot rows give exactly 0."""
    safe = np.where(probabilities > 0, probabilities, 1.0)
    return -(probabilities * np.log(safe)).sum(axis=-1)


def l2_normalize(matrix: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero instead of becoming NaN)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, eps)


@dataclass(frozen=True, eq=False)  # arrays do not compare to one bool
class ValidationInputs:
    """What one evaluation pass gives the validators; every field is optional.

    ``target_*`` come from the unlabelled target split, ``source_*`` from the source's held-out
    labelled split. Logits are ``(n, num_classes)``, features ``(n, d)`` (the pooled
    representation the classifier head reads), labels ``(n,)`` integers where ``-100`` marks an
    unlabelled row. There is deliberately no target-label field.
    """

    target_logits: ArrayLike | None = None
    target_features: ArrayLike | None = None
    source_logits: ArrayLike | None = None
    source_features: ArrayLike | None = None
    source_labels: ArrayLike | None = None

    def require(self, field: str, validator: str) -> np.ndarray:
        """The field as a float64 (labels: int64) array, or a ``ValueError`` naming what is missing."""
        if field not in _FIELD_NAMES:
            raise ValueError(f"ValidationInputs has no field {field!r}; its fields are {sorted(_FIELD_NAMES)}.")
        value = getattr(self, field)
        if value is None:
            raise ValueError(
                f"The {validator!r} validator needs {field}, which these ValidationInputs do not have."
            )
        if len(value) == 0:
            raise ValueError(f"The {validator!r} validator got an empty {field}.")
        if field == "source_labels":
            array = to_numpy(value, dtype=np.int64)
            if array.ndim != 1:
                raise ValueError(f"{field} must be one-dimensional (n,), got shape {array.shape}.")
            return array
        array = to_numpy(value)
        if array.ndim != 2:
            raise ValueError(f"{field} must be two-dimensional (n, d), got shape {array.shape}.")
        if not np.isfinite(array).all():
            raise ValueError(f"{field} holds NaN or infinite values; the {validator!r} score would be meaningless.")
        return array


_FIELD_NAMES = frozenset(f.name for f in fields(ValidationInputs))


class Validator(ABC):
    """A label-free score of one candidate. Subclasses set the three class attributes and ``compute``."""

    name: ClassVar[str]
    #: Whether a larger score means a better candidate (``TrainingArguments.greater_is_better``).
    higher_is_better: ClassVar[bool]
    #: The :class:`ValidationInputs` fields ``compute`` reads.
    required: tuple[str, ...] = ()

    def __call__(self, inputs: ValidationInputs) -> float:
        """Check the inputs this validator needs are there, then score them."""
        for field in self.required:
            inputs.require(field, self.name)
        return float(self.compute(inputs))

    @abstractmethod
    def compute(self, inputs: ValidationInputs) -> float:
        """The score; ``inputs`` are known to hold every field in ``required``."""

    def prefers(self, score: float, other: float) -> bool:
        """Whether ``score`` is strictly better than ``other`` in this validator's direction."""
        return score > other if self.higher_is_better else score < other

    def __repr__(self) -> str:
        direction = "higher" if self.higher_is_better else "lower"
        return f"{type(self).__name__}(name={self.name!r}, {direction} is better)"
