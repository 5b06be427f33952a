"""One candidate of a sweep: what it is, how it is trained and recorded, and when it counts as collapsed.

Shared by both engines of :mod:`hf_transfer.sweep`: optuna (:func:`hf_transfer.sweep.run_sweep`, in this process)
and Ray Tune (:mod:`hf_transfer.sweep_ray`, in workers). Each candidate trains in its own folder
``OUTPUT/candidates/cNN`` through the same code as ``hf-transfer train``; its ``candidate.json``, written
atomically and last, marks it done, and a failure is recorded beside it so that a resumed sweep retries it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import parse_train_arguments

logger = logging.getLogger(__name__)

CANDIDATES_DIR = "candidates"


CANDIDATE_RECORD = "candidate.json"


FAILED_RECORD = "candidate.failed.json"


FINISHED, COLLAPSED, PRUNED, FAILED = "finished", "collapsed", "pruned", "failed"


DONE = (FINISHED, COLLAPSED, PRUNED)


@dataclass(frozen=True)
class Candidate:
    """One point of the grid: ``values`` maps ``section.field`` to the value tried."""

    index: int
    values: dict[str, Any]

    @property
    def name(self) -> str:
        return f"c{self.index:02d}"

    def overrides(self) -> list[str]:
        """The candidate's values as ``--section.field value`` overrides of the config."""
        argv: list[str] = []
        for key, value in self.values.items():
            argv += [f"--{key}", *(map(_argv_value, value) if isinstance(value, list) else [_argv_value(value)])]
        return argv

    def label(self) -> str:
        return ", ".join(f"{key.split('.', 1)[1]}={value}" for key, value in self.values.items())


def _argv_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class CandidateResult:
    """What one candidate gave: its status, final metrics, validator scores and the reason it was excluded."""

    name: str
    values: dict[str, Any]
    status: str
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    """validator name -> final score on the target eval split (``eval_target_<name>``)."""
    oracle: float | None = None
    """Accuracy on the labelled target eval split, when it has labels: shown, never used for the choice."""
    source_accuracy: float | None = None
    top_class_share: float | None = None
    intermediate: dict[str, float] = field(default_factory=dict)
    """step (as text) -> the pruning validator's score at that evaluation."""
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    """Wall-clock seconds this candidate's training took (pruned or not); ``None`` in records of older sweeps."""
    cpu_seconds: float | None = None
    """CPU seconds of this process for it: the cost measure that other jobs on the machine do not inflate."""

    @property
    def eligible(self) -> bool:
        return self.status == FINISHED

    @classmethod
    def read(cls, path: Path) -> CandidateResult:
        values = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in values.items() if k in {f for f in cls.__dataclass_fields__}})

    def write(self, directory: Path) -> None:
        from .utils.io import write_json_atomic

        write_json_atomic(directory / CANDIDATE_RECORD, asdict(self))


def collapse_reason(
    *, source_accuracy: float | None, top_class_share: float | None, num_labels: int, chance_margin: float = 0.05,
    max_top_class_share: float = 0.99,
) -> str | None:
    """Why a candidate counts as collapsed (``None`` if it does not).

    Collapsed: its held-out source accuracy is within ``chance_margin`` of chance (1/K), or one class takes at
    least ``max_top_class_share`` of its target predictions.
    """
    reasons = []
    chance = 1.0 / max(1, num_labels)
    if source_accuracy is not None and num_labels > 1 and source_accuracy <= chance + chance_margin:
        reasons.append(f"source accuracy {source_accuracy:.3f} is at chance (1/{num_labels} = {chance:.3f})")
    if top_class_share is not None and num_labels > 1 and top_class_share >= max_top_class_share:
        reasons.append(f"it predicts one class for {100 * top_class_share:.0f}% of the target")
    return "; ".join(reasons) or None


def _candidate_dir(output_dir: Path, candidate: Candidate) -> Path:
    return output_dir / CANDIDATES_DIR / candidate.name


def _candidate_argv(base: list[str], candidate: Candidate, output_dir: Path) -> list[str]:
    return [*base, *candidate.overrides(), "--training.output_dir", str(_candidate_dir(output_dir, candidate))]


def run_candidate(trial, candidate, config_path, base_overrides, output_dir, metric, collapse, *, position: str,
                  say: Callable[[str], None]) -> tuple[CandidateResult, bool]:
    """One candidate, for either backend: its record if an earlier sweep finished it (``resumed`` is then true),
    else trained now and recorded atomically in its folder (a failure beside it, so that a resumed sweep retries)."""
    directory = _candidate_dir(output_dir, candidate)
    record_path = directory / CANDIDATE_RECORD
    if record_path.is_file() and CandidateResult.read(record_path).status in DONE:
        result = CandidateResult.read(record_path)
        say(f"{position}: already {result.status}, skipped (resumed sweep).")
        return result, True
    say(f"{position}: training...")
    wall, cpu = time.perf_counter(), time.process_time()
    result = _train_candidate(trial, candidate, config_path, base_overrides, output_dir, metric, collapse)
    result.seconds = round(time.perf_counter() - wall, 2)
    result.cpu_seconds = round(time.process_time() - cpu, 2)
    if result.status == FAILED:
        _write_failed(directory, result)
    else:
        result.write(directory)
        (directory / FAILED_RECORD).unlink(missing_ok=True)
    say(f"{position}: {_describe(result, metric)}")
    return result, False


def _write_failed(directory: Path, result: CandidateResult) -> None:
    """A failed candidate is recorded beside its folder (not as candidate.json), so a resumed sweep retries it."""
    from .utils.io import write_json_atomic

    write_json_atomic(directory / FAILED_RECORD, asdict(result))


def _train_candidate(trial, candidate, config_path, base_overrides, output_dir, metric, collapse) -> CandidateResult:
    """Train one candidate, reporting ``metric`` at each evaluation to ``trial`` (an optuna trial, or anything with
    its ``report(value, step)`` and ``should_prune()``); pruned, failed or collapsed, the result says so."""
    import optuna

    from .artifacts import RunInfo
    from .pipeline import run_training

    directory = _candidate_dir(output_dir, candidate)
    argv = _candidate_argv(base_overrides, candidate, output_dir)
    checkpoint = _last_checkpoint(directory)
    if checkpoint is not None:
        argv += ["--training.resume_from_checkpoint", str(checkpoint)]
    result = CandidateResult(candidate.name, dict(candidate.values), status=FINISHED)
    model_args, source_args, target_args, training_args, pretraining_args = parse_train_arguments(config_path, argv)
    callback = _pruning_callback(trial, metric, result)
    try:
        metrics = run_training(model_args, source_args, target_args, training_args, pretraining_args,
                               callbacks=[callback])
    except optuna.TrialPruned as pruned:
        result.status, result.reason = PRUNED, str(pruned)
        return result
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # one candidate failing (NaN loss, out of memory) does not stop the sweep
        logger.exception("Candidate %s failed", candidate.name)
        result.status, result.reason = FAILED, f"{type(error).__name__}: {error}"
        return result
    result.metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    result.scores = {
        key.removeprefix("eval_target_"): float(value) for key, value in metrics.items()
        if key.startswith("eval_target_") and key.removeprefix("eval_target_") in training_args.validators
    }
    result.oracle = _float(metrics.get("eval_target_accuracy"))
    result.source_accuracy = _float(metrics.get("eval_source_accuracy"))
    result.top_class_share = _float(metrics.get("eval_target_top_class_share"))
    num_labels = len(RunInfo.read(directory).id2label)
    reason = collapse_reason(source_accuracy=result.source_accuracy, top_class_share=result.top_class_share,
                             num_labels=num_labels, **collapse)
    if reason is not None:
        result.status, result.reason = COLLAPSED, reason
    return result


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _last_checkpoint(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(directory))
    return Path(last) if last else None


def _pruning_callback(trial, metric: str, result: CandidateResult):
    """A TrainerCallback reporting ``metric`` at each evaluation to the trial, and pruning before the last step."""
    import optuna
    from transformers import TrainerCallback

    class ValidatorPruning(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not metrics or metric not in metrics:
                return
            step = int(state.global_step)
            if str(step) in result.intermediate:
                return  # the final evaluation at a step already evaluated
            value = float(metrics[metric])
            result.intermediate[str(step)] = value
            if step >= state.max_steps:
                # the last evaluation: stopping saves nothing now, and a Ray trial stopped at a report would end
                # before its record is written
                return
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}: {metric} {value:.4g} is worse than the other "
                                         "candidates' at that step")

    return ValidatorPruning()


def _describe(result: CandidateResult, metric: str) -> str:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in result.scores.items())
    oracle = f" | target accuracy {result.oracle:.3f} (oracle, not used)" if result.oracle is not None else ""
    if result.status == FINISHED:
        return f"finished: {scores}{oracle}"
    if result.status == COLLAPSED:
        return f"collapsed, excluded ({result.reason}): {scores}{oracle}"
    return f"{result.status}: {result.reason}"
