"""Label-free validators during evaluation: what one pass over each eval split gives them.

:class:`~hf_transfer.trainer.DomainAdaptationTrainer` evaluates ``{"source": ..., "target": ...}``
split by split (the source first). While a split's evaluation loop runs, :func:`capture_outputs`
hooks the model once per batch for

* its logits (the model's output),
* the pooled features that enter the classifier (what
  :meth:`~hf_transfer.modeling.DomainAdaptationModel.extract_features` returns),
* its labels — **for the source split only**: the target's labels are never read here,

each gathered across processes with ``accelerator.gather_for_metrics`` (so under DDP every rank sees
the whole split, in order, without the padding duplicates). The source split's outputs are kept
for the target split of the same evaluation; there the validators of ``args.validators`` score the
target (:func:`hf_transfer.validators.compute_validators`; at the evaluations inside ``train()`` only those of
``args.validators_during_training``, when set) and are added to the split's metrics as
``eval_target_<name>``, before the Trainer logs them and calls ``on_evaluate`` — so
``metric_for_best_model: eval_target_snd`` and an optuna pruner see them like any other metric.
``eval_target_top_class_share`` (the share of target predictions in the most predicted class)
is added too (even with no validators): the sweep reads it to spot a candidate that predicts one class for everything.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .modeling import pool_features

if TYPE_CHECKING:  # pragma: no cover
    from transformers.trainer_utils import EvalLoopOutput

    from .trainer import DomainAdaptationTrainer

logger = logging.getLogger(__name__)

SOURCE_FIELDS = frozenset({"source_logits", "source_features", "source_labels"})
TARGET_PREDICTIONS = "target_predictions.safetensors"
TOP_CLASS_SHARE = "top_class_share"


@dataclass
class SplitOutputs:
    """One split's gathered logits ``(n, K)``, pooled features ``(n, d)`` and (source only) labels ``(n,)``."""

    logits: list[torch.Tensor] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    step: int | None = None

    def array(self, name: str) -> np.ndarray | None:
        parts = getattr(self, name)
        return torch.cat(parts).numpy() if parts else None


@contextlib.contextmanager
def capture_outputs(
    model: torch.nn.Module, gather: Callable[[torch.Tensor], torch.Tensor], *, keep_labels: bool
) -> Iterator[SplitOutputs]:
    """Hook ``model`` (an unwrapped :class:`DomainAdaptationModel`) to collect every forward pass's outputs.

    ``gather`` is ``accelerator.gather_for_metrics``; ``keep_labels=False`` (the target) never reads the labels.
    """
    outputs = SplitOutputs()
    pending: list[torch.Tensor] = []
    classifier = model.backbone.get_submodule(model.classifier_name)

    def on_classifier_input(module: torch.nn.Module, args: tuple) -> None:
        if args:
            pending.append(pool_features(args[0]).detach())

    def on_forward(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        logits = output.logits.detach().float()
        features = pending.pop().float() if pending else None
        pending.clear()
        outputs.logits.append(gather(logits).cpu())
        if features is not None:
            outputs.features.append(gather(features).cpu())
        if keep_labels and kwargs.get("labels") is not None:
            outputs.labels.append(gather(kwargs["labels"].detach()).cpu())

    handles = [
        classifier.register_forward_pre_hook(on_classifier_input),
        model.register_forward_hook(on_forward, with_kwargs=True),
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class ValidatorEvaluation:
    """Runs a trainer's evaluation loop with the hooks on and adds the validator scores to the target split."""

    def __init__(self, validators: list[str]) -> None:
        from .validators import get_validator

        self.validators = [get_validator(name) for name in validators]
        self.needs_source = any(SOURCE_FIELDS & set(v.required) for v in self.validators)
        self.source: SplitOutputs | None = None
        self.target: SplitOutputs | None = None  # the last target evaluation's outputs (its labels never kept)

    def run(
        self, trainer: DomainAdaptationTrainer, loop: Callable[..., EvalLoopOutput], *args: Any,
        metric_key_prefix: str, **kwargs: Any,
    ) -> EvalLoopOutput:
        split = {"eval_source": "source", "eval_target": "target"}.get(metric_key_prefix)
        if split is None or (split == "source" and not self.needs_source):
            return loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        model = trainer.accelerator.unwrap_model(trainer.model)
        gather = trainer.accelerator.gather_for_metrics
        with capture_outputs(model, gather, keep_labels=split == "source") as outputs:
            result = loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        outputs.step = trainer.state.global_step
        if split == "source":
            self.source = outputs
            return result
        self.target = outputs
        scores = self.score(outputs, trainer.state.global_step)
        result.metrics.update({f"{metric_key_prefix}_{key}": value for key, value in scores.items()})
        return result

    def score(self, target: SplitOutputs, step: int) -> dict[str, float]:
        """``{"<name>": score, "top_class_share": share}`` for the target split's outputs."""
        from .validators import ValidationInputs, compute_validators

        logits = target.array("logits")
        if logits is None or not len(logits):
            return {}
        source = self.source if self.source is not None and self.source.step == step else None
        if self.needs_source and source is None:
            names = [v.name for v in self.validators if SOURCE_FIELDS & set(v.required)]
            raise ValueError(
                f"The validators {names} read the source's held-out split, which this evaluation did not have: pass "
                "eval_datasets={'source': ..., 'target': ...} (source.eval_split in a config), or drop them from "
                "validators."
            )
        inputs = ValidationInputs(
            target_logits=logits,
            target_features=target.array("features"),
            source_logits=source.array("logits") if source else None,
            source_features=source.array("features") if source else None,
            source_labels=source.array("labels") if source else None,
        )
        scores: dict[str, float] = {}
        for validator in self.validators:
            try:
                scores.update(
                    {key.removeprefix("target_"): value for key, value in compute_validators([validator], inputs).items()}
                )
            except ValueError as error:  # e.g. SND on a 1-row split: this score is missing, the evaluation goes on
                logger.warning("Validator %r could not score this evaluation (NaN logged): %s", validator.name, error)
                scores[validator.name] = math.nan
        counts = np.bincount(logits.argmax(-1), minlength=logits.shape[-1])
        scores[TOP_CLASS_SHARE] = float(counts.max() / counts.sum())
        return scores


def validator_evaluation(trainer: DomainAdaptationTrainer) -> ValidatorEvaluation:
    """The trainer's :class:`ValidatorEvaluation` for this evaluation, built on first use from ``args.validators``
    (``args.validators_during_training``, when set, at the evaluations inside ``train()``)."""
    evaluation = getattr(trainer, "_validator_evaluation", None)
    validators = list(getattr(trainer.args, "validators", None) or [])
    during_training = getattr(trainer.args, "validators_during_training", None)
    if during_training is not None and trainer.is_in_train:
        validators = [name for name in validators if name in during_training]
    if evaluation is None or [v.name for v in evaluation.validators] != validators:
        evaluation = ValidatorEvaluation(validators)
        trainer._validator_evaluation = evaluation
    return evaluation


def save_target_predictions(trainer: DomainAdaptationTrainer, output_dir: str | os.PathLike) -> Path | None:
    """Write the last target evaluation's class probabilities to ``output_dir/target_predictions.safetensors``
    (``probabilities``, ``(n, K)`` float32, in the split's order; atomically, by the main process): what
    :class:`~hf_transfer.validators.PredictionEnsembleValidator` (EnsV) compares across candidates."""
    evaluation = getattr(trainer, "_validator_evaluation", None)
    logits = evaluation.target.array("logits") if evaluation is not None and evaluation.target is not None else None
    if logits is None:
        logger.warning("save_target_predictions: no target evaluation ran (target.eval_split unset?); nothing written.")
        return None
    if not trainer.is_world_process_zero():
        return None
    return write_target_predictions(logits, output_dir)


def write_target_predictions(logits: np.ndarray, directory: str | os.PathLike) -> Path:
    """``directory/target_predictions.safetensors``: the class probabilities of ``logits`` (``probabilities``,
    float32), written atomically."""
    from safetensors.numpy import save_file

    from .validators.base import softmax

    probabilities = softmax(np.asarray(logits, dtype=np.float64))

    path = Path(directory) / TARGET_PREDICTIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    save_file({"probabilities": np.ascontiguousarray(probabilities, dtype=np.float32)}, str(scratch))
    os.replace(scratch, path)
    return path


def load_target_predictions(directory: str | os.PathLike) -> np.ndarray | None:
    """The probabilities :func:`save_target_predictions` wrote into ``directory`` (``None`` if it did not)."""
    path = Path(directory) / TARGET_PREDICTIONS
    if not path.is_file():
        return None
    from safetensors.numpy import load_file

    return load_file(str(path))["probabilities"]


def source_first(names: list[str]) -> list[str]:
    """Eval split names with ``target`` last, so the target's validators can read this evaluation's source split."""
    return sorted(names, key=lambda name: name == "target")
