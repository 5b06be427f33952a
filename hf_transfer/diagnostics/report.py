"""After training: how much closer adaptation brought the domains, in numbers and pictures.

:func:`shift_report` measures the proxy A-distance and the MMD between source and target features
*before* adaptation (the same model with its LoRA adapter and trained head switched off, i.e. the
backbone training started from) and *after* it, records them in the run info
(``RunInfo.shift``, so ``domain_adaptation.json`` and the card carry them) and — with matplotlib —
draws three PNGs into the output folder, listed in ``RunInfo.pictures`` and linked from the card:

* ``shift_embedding.png``: t-SNE (UMAP if installed) of both domains' features, before and after,
  coloured by domain and by class;
* ``training_curves.png``: classification loss, domain loss, discriminator accuracy and λ;
* ``confusion_matrices.png``: a confusion matrix per labelled domain, after adaptation.

It reads the trainer's ``source``/``target`` evaluation splits (or, without them, the training domains,
the target's labels dropped). Target labels, where an evaluation split has them, only colour the
picture and fill the target's confusion matrix; the A-distance and MMD never read a label.
``args.shift_report`` chooses ``pictures`` (default), ``metrics`` (numbers only) or ``none``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.pairing import IGNORE_INDEX, SourceTargetDataset
from .features import DomainOutputs, collect_outputs
from .pictures import (
    MATPLOTLIB_NOTICE,
    draw_confusion_matrices,
    draw_embedding,
    draw_training_curves,
    matplotlib_available,
)
from .shift import feature_mmd

if TYPE_CHECKING:  # pragma: no cover
    from ..trainer import DomainAdaptationTrainer

logger = logging.getLogger(__name__)

EMBEDDING_PICTURE = "shift_embedding.png"
CURVES_PICTURE = "training_curves.png"
CONFUSION_PICTURE = "confusion_matrices.png"
@dataclass
class ShiftReport:
    """The shift before and after adaptation, and the pictures written (name -> file, relative to ``output_dir``)."""

    a_distance_before: float
    a_distance_after: float
    mmd_before: float
    mmd_after: float
    num_source: int
    num_target: int
    output_dir: Path
    pictures: dict[str, str] = field(default_factory=dict)
    notice: str | None = None
    """Why pictures were not drawn (matplotlib missing), if so."""

    def to_run_info(self) -> dict[str, Any]:
        return {
            "a_distance_before": round(self.a_distance_before, 4),
            "a_distance_after": round(self.a_distance_after, 4),
            "mmd_before": round(self.mmd_before, 6),
            "mmd_after": round(self.mmd_after, 6),
            "num_source": self.num_source,
            "num_target": self.num_target,
            "features": "pooled features entering the classifier; before = the backbone without the adapter",
        }

    def format(self) -> str:
        lines = [
            f"Proxy A-distance (0 = domains indistinguishable, 2 = separable): {self.a_distance_before:.3f} before "
            f"adaptation, {self.a_distance_after:.3f} after ({self.num_source} source / {self.num_target} target examples).",
        ]
        if self.pictures:
            lines.append(f"Pictures: {', '.join(str(self.output_dir / name) for name in self.pictures.values())}")
        elif self.notice:
            lines.append(self.notice)
        return "\n".join(lines)


class _WithoutLabels(Sequence):
    """A view of a domain whose rows carry no label (the training target, unsupervised)."""

    def __init__(self, dataset: Sequence[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**dict(self.dataset[index]), "labels": IGNORE_INDEX}


def _domains(trainer: DomainAdaptationTrainer, source: Any, target: Any) -> tuple[Any, Any]:
    evals = trainer.eval_dataset if isinstance(trainer.eval_dataset, dict) else {}
    train = trainer.train_dataset if isinstance(trainer.train_dataset, SourceTargetDataset) else None
    source = source if source is not None else evals.get("source", train.source if train is not None else None)
    if target is None:
        target = evals.get("target") or (_WithoutLabels(train.target) if train is not None else None)
    if source is None or target is None:
        raise ValueError("shift_report needs a source and a target domain: pass source= and target= datasets.")
    return source, target


def shift_report(
    trainer: DomainAdaptationTrainer,
    *,
    source: Any | None = None,
    target: Any | None = None,
    output_dir: str | os.PathLike | None = None,
    mode: str | None = None,
    max_examples: int = 500,
) -> ShiftReport | None:
    """Measure (and draw) the shift before/after adaptation; record it in the model's run info.

    Call it after ``trainer.train()`` and before ``trainer.save_model()`` (which writes the run info and the
    card); ``mode`` defaults to ``trainer.args.shift_report``. Returns ``None`` when the mode is ``none`` or on
    processes other than the main one.
    """
    args = trainer.args
    mode = mode or getattr(args, "shift_report", "pictures")
    if mode == "none" or not trainer.is_world_process_zero():
        return None
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False):
        # sharded parameters: a forward pass on the main process alone would wait for the others forever
        logger.warning("shift_report is skipped under FSDP/DeepSpeed (sharded weights); run `hf-transfer diagnose` "
                       "on the saved adapter instead.")
        return None
    try:
        return _shift_report(trainer, source, target, output_dir, mode, max_examples)
    except Exception as error:  # documentation of a finished run: it never costs the run itself
        logger.warning("The shift report could not be made (the model is saved regardless): %s: %s",
                       type(error).__name__, error)
        return None


def _shift_report(trainer, source, target, output_dir, mode: str, max_examples: int) -> ShiftReport:
    args = trainer.args
    source, target = _domains(trainer, source, target)
    model = trainer.accelerator.unwrap_model(trainer.model)
    output_dir = Path(output_dir or args.output_dir)
    seed = args.seed
    collect = dict(collator=trainer.data_collator, batch_size=args.per_device_eval_batch_size,
                   max_examples=max_examples, seed=seed)
    with model.model.disable_adapter():  # the backbone as training found it (LoRA off, original head)
        before = {"source": collect_outputs(model, source, **collect), "target": collect_outputs(model, target, **collect)}
    after = {"source": collect_outputs(model, source, **collect), "target": collect_outputs(model, target, **collect)}
    measures = {stage: _measure(outputs, seed) for stage, outputs in (("before", before), ("after", after))}
    report = ShiftReport(
        a_distance_before=measures["before"][0], a_distance_after=measures["after"][0],
        mmd_before=measures["before"][1], mmd_after=measures["after"][1],
        num_source=len(after["source"].features), num_target=len(after["target"].features), output_dir=output_dir,
    )
    if mode == "pictures":
        if matplotlib_available():
            names = [model.config.id2label[i] for i in sorted(model.config.id2label)]
            report.pictures = _draw(before, after, names, trainer.state.log_history, output_dir, seed)
        else:
            report.notice = MATPLOTLIB_NOTICE
            print(MATPLOTLIB_NOTICE)
    model.run_info.shift = report.to_run_info()
    model.run_info.pictures = dict(report.pictures) or None
    logger.info("hf_transfer: %s", report.format())
    return report


def _measure(outputs: dict[str, DomainOutputs], seed: int) -> tuple[float, float]:
    import torch

    from ..metrics.a_distance import proxy_a_distance

    source, target = outputs["source"].features, outputs["target"].features
    a_distance = proxy_a_distance(torch.from_numpy(source), torch.from_numpy(target), seed=seed)
    return a_distance, feature_mmd(source, target)


def _draw(
    before: dict[str, DomainOutputs], after: dict[str, DomainOutputs], class_names: list[str],
    log_history: list[dict[str, Any]], output_dir: Path, seed: int,
) -> dict[str, str]:
    source, target = after["source"], after["target"]
    domains = np.concatenate([np.zeros(len(source.features)), np.ones(len(target.features))])
    target_predicted = target.logits.argmax(-1)
    target_classes = target.labels if target.has_labels else target_predicted
    classes = np.concatenate([source.labels, target_classes])
    stages = {
        "before adaptation": np.concatenate([before["source"].features, before["target"].features]),
        "after adaptation": np.concatenate([source.features, target.features]),
    }
    draw_embedding(stages, domains, classes, class_names, output_dir / EMBEDDING_PICTURE,
                   target_classes_are_predictions=not target.has_labels, seed=seed)
    draw_training_curves(log_history, output_dir / CURVES_PICTURE)
    pictures = {"embedding": EMBEDDING_PICTURE, "training_curves": CURVES_PICTURE}
    labelled = {name: (out.labels, out.logits.argmax(-1)) for name, out in after.items() if out.has_labels}
    if labelled:
        draw_confusion_matrices(labelled, class_names, output_dir / CONFUSION_PICTURE)
        pictures["confusion_matrices"] = CONFUSION_PICTURE
    return pictures
