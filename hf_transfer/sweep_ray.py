"""Ray Tune as the sweep's engine (``hf-transfer sweep --backend ray``), for sweeps that spread over cores or machines.

The grid is a ``tune.grid_search`` over the candidate names; each trial trains one candidate through
:func:`hf_transfer.sweep_candidates.run_candidate`, the same code as the optuna backend, so the candidate folders, their
atomic records, resuming and the choice are identical. Pruning is Ray's: ``median`` is its
``MedianStoppingRule``, ``halving`` its ``ASHAScheduler`` (asynchronous successive halving), both on the validator
score each evaluation reports at its training step (``time_attr="step"``). A trial Ray stops early has no record
of its own; once the sweep is over, this process records it as pruned, with the step and score it stopped at.

Each trial reserves ``resources`` (default one CPU) and Ray runs as many at once as it has room for, on this
machine or, with ``RAY_ADDRESS`` set, on a cluster whose machines share the sweep's output folder. Ray sets each
worker's thread count (``OMP_NUM_THREADS``) to its CPUs, and its GPU visibility to its GPUs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .sweep_candidates import (
    CANDIDATE_RECORD,
    DONE,
    FAILED,
    FAILED_RECORD,
    PRUNED,
    Candidate,
    CandidateResult,
    _candidate_dir,
    run_candidate,
)

RAY_DIR = "ray"
"""Ray Tune's own experiment folder, inside the sweep's output folder."""


class RayReporter:
    """What :func:`hf_transfer.sweep_candidates._train_candidate` reports to: the trial's validator score at each evaluation,
    as a Ray Tune result. Ray decides on stopping itself (it ends the trial), so ``should_prune`` is never true."""

    def __init__(self, metric: str):
        self.metric = metric

    def report(self, value: float, step: int) -> None:
        from ray import tune

        tune.report({self.metric: value, "step": step})

    def should_prune(self) -> bool:
        return False


def ray_scheduler(pruner: str, *, n_startup_trials: int, max_steps: int):
    """Ray's counterpart of the optuna pruner of the same name (``none``: first in, first out, nothing stopped).

    The metric and its direction are not given here: the ``TuneConfig`` passes them on, and Ray refuses a scheduler
    that already has its own."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    if pruner == "median":
        return MedianStoppingRule(time_attr="step", grace_period=0, min_samples_required=max(n_startup_trials, 1))
    if pruner == "halving":
        return ASHAScheduler(time_attr="step", max_t=max_steps if max_steps > 0 else 10**9, grace_period=1,
                             reduction_factor=3)
    return FIFOScheduler()


def _trial(space: Mapping[str, Any], *, candidates: Mapping[str, Candidate], config_path: str,
           base_overrides: Sequence[str], output_dir: str, metric: str, collapse: Mapping[str, float], total: int,
           verbose: bool, cwd: str) -> None:
    """One Ray Tune trial: train (or replay) one candidate, then report its final score."""
    from ray import tune

    if Path(cwd).is_dir():
        os.chdir(cwd)  # Ray starts a trial in its own folder; the config's relative paths are the user's
    candidate = candidates[space["candidate"]]
    position = f"[sweep {candidate.index + 1}/{total}] {candidate.name} ({candidate.label()})"
    result, resumed = run_candidate(
        RayReporter(metric), candidate, config_path, list(base_overrides), Path(output_dir), metric, dict(collapse),
        position=position, say=print if verbose else (lambda line: None),
    )
    if resumed:  # the scheduler sees a resumed candidate's curve as it saw it the first time
        for step, value in sorted(result.intermediate.items(), key=lambda item: int(item[0])):
            tune.report({metric: value, "step": int(step)})
    score = result.scores.get(metric.removeprefix("eval_target_"))
    final_step = max((int(step) for step in result.intermediate), default=0)
    tune.report({metric: math.nan if score is None else score, "step": final_step, "status": result.status})


def optimize_with_ray(
    candidates: Sequence[Candidate], config_path: str, base_overrides: Sequence[str], output_dir: Path, *,
    prune_on: str, pruner: str, n_startup_trials: int, max_steps: int, verbose: bool,
    collapse: Mapping[str, float], resources: Mapping[str, float],
) -> dict[str, CandidateResult]:
    """Train ``candidates`` as Ray Tune trials and return every candidate's result, read from its folder."""
    import ray
    from ray import tune

    from .validators import get_validator

    metric = f"eval_target_{prune_on}"
    mode = "max" if get_validator(prune_on).higher_is_better else "min"
    output_dir = Path(output_dir).resolve()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, log_to_driver=True)
    trainable = tune.with_resources(
        partial(_trial, candidates={c.name: c for c in candidates}, config_path=str(Path(config_path).resolve()),
                base_overrides=list(base_overrides), output_dir=str(output_dir), metric=metric,
                collapse=dict(collapse), total=len(candidates), verbose=verbose, cwd=os.getcwd()),
        dict(resources),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"candidate": tune.grid_search([c.name for c in candidates])},
        tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=ray_scheduler(
            pruner, n_startup_trials=n_startup_trials, max_steps=max_steps)),
        run_config=tune.RunConfig(name="sweep", storage_path=str(output_dir / RAY_DIR), verbose=0),
    )
    stopped = {}
    for trial in tuner.fit():
        name = (trial.config or {}).get("candidate")
        if name is not None:
            stopped[name] = trial
    return {c.name: _result_of(c, output_dir, stopped.get(c.name), metric) for c in candidates}


def _result_of(candidate: Candidate, output_dir: Path, trial: Any, metric: str) -> CandidateResult:
    """The candidate's record; without one, a trial Ray stopped early is recorded as pruned (else as failed)."""
    directory = _candidate_dir(output_dir, candidate)
    record = directory / CANDIDATE_RECORD
    if record.is_file() and CandidateResult.read(record).status in DONE:
        return CandidateResult.read(record)
    if (directory / FAILED_RECORD).is_file():
        return CandidateResult.read(directory / FAILED_RECORD)
    result = CandidateResult(candidate.name, dict(candidate.values), status=FAILED, reason="Ray Tune lost the trial")
    if trial is not None and getattr(trial, "error", None) is not None:
        result.reason = f"{type(trial.error).__name__}: {trial.error}"
        return result
    last = dict(getattr(trial, "metrics", None) or {})
    if metric in last and "step" in last:
        history = getattr(trial, "metrics_dataframe", None)
        if history is not None and metric in history and "step" in history:
            result.intermediate = {str(int(s)): float(v) for s, v in zip(history["step"], history[metric])}
        result.status = PRUNED
        result.reason = (f"stopped by Ray Tune at step {int(last['step'])}: {metric} {float(last[metric]):.4g} is "
                         "worse than the other candidates' at that step")
        result.write(directory)  # a resumed sweep keeps it pruned, as the optuna backend does
    return result
