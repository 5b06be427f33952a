"""Metrics shipped as local `evaluate` modules (loaded by path, so they work offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METRICS_DIR = Path(__file__).parent
SHIPPED_METRICS = ("accuracy", "f1", "balanced_accuracy")


def load_metric(name: str) -> Any:
    """``evaluate.load`` on the copy of ``name`` that ships with hf_transfer."""
    import evaluate

    if name not in SHIPPED_METRICS:
        raise ValueError(f"hf_transfer ships the metrics {SHIPPED_METRICS}; got {name!r}.")
    return evaluate.load(str(METRICS_DIR / name / f"{name}.py"))


class ClassificationMetrics:
    """``compute_metrics`` for the Trainer: accuracy, macro-F1 and balanced accuracy, skipping unlabelled (-100) rows.

    Under ``eval_dataset={"source": ..., "target": ...}`` the Trainer prefixes these as
    ``eval_source_accuracy``, ``eval_target_f1`` and so on.
    """

    def __init__(self) -> None:
        self.accuracy = load_metric("accuracy")
        self.f1 = load_metric("f1")
        self.balanced_accuracy = load_metric("balanced_accuracy")

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        predictions = np.asarray(logits).argmax(-1)
        labels = np.asarray(labels)
        keep = labels != -100
        if not keep.any():
            return {}
        predictions, labels = predictions[keep], labels[keep]
        return {
            "accuracy": self.accuracy.compute(predictions=predictions, references=labels)["accuracy"],
            "f1": self.f1.compute(predictions=predictions, references=labels, average="macro")["f1"],
            "balanced_accuracy": self.balanced_accuracy.compute(predictions=predictions, references=labels)[
                "balanced_accuracy"
            ],
        }
