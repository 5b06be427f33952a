"""``hf-transfer sweep``: train a grid of candidates and choose one without target labels.

::

    hf-transfer sweep recipes/digits/config.yaml --grid grid.yaml [--validator ensemble] [--training.max_steps 300]

``grid.yaml`` has the config's sections; each field lists the values to try (a scalar is one value)::

    training:
      method: [source_only, dann, mcc]
      domain_loss_weight: [0.1, 0.3, 1.0]
      learning_rate: [0.001, 0.003]
    model:
      image_augmentation: [none, flip]   # augmentation off / on

A YAML *list* of such grids is their union (as scikit-learn's ``ParameterGrid`` takes a list of dicts), so a
setting is only varied for the methods that read it, and no candidate is trained twice::

    - training: {method: [source_only, mcc]}
    - training: {method: [dann, cdan, mmd], domain_loss_weight: [0.1, 0.3, 1.0]}

Every combination is a candidate (a combination two grids share is trained once), trained one after another
through the same code as ``hf-transfer train`` (:func:`hf_transfer.config.parse_train_arguments` with the
candidate's values as ``--section.field value`` overrides, then :func:`hf_transfer.pipeline.run_training`),
each in its own folder ``OUTPUT/candidates/cNN`` whose ``candidate.json`` (written atomically, last) marks it done.
The engine is optuna: a :class:`~optuna.samplers.GridSampler` walks the grid and a median (or
successive-halving) pruner stops a candidate early when its validator score at an evaluation step
(``training.eval_strategy: steps``) is worse than the others' at that step — no scheduler of our own.

Each finished candidate is scored by the label-free validators its evaluation logged
(``eval_target_<name>``, :mod:`hf_transfer.validators`) on the target's evaluation split
(``target.eval_split``; its labels, if any, are never read for the choice). A candidate whose source
accuracy fell to chance, or that predicts one class for (nearly) every target example, is marked
*collapsed* and excluded, with the reason. The pick is the chosen validator's best, by default the
``ensemble`` (mean rank across the validators). Every candidate also keeps its target class probabilities
(``training.save_target_predictions``), so ``ensv`` (Hu et al. 2024: agreement with the eligible candidates'
averaged predictions) is a column of the table and can be the choice (``validator="ensv"``). The pick's folder
is copied to ``OUTPUT/chosen`` with ``RunInfo.selection`` saying how it was chosen, and its card re-rendered;
``OUTPUT/selection.md`` and ``selection.json`` hold every candidate's scores — with, when the target
evaluation split is labelled, its accuracy in a column marked *oracle, not used for the choice*.

Bad input fails before any training: an unknown validator (the known ones are listed), a grid field
no section has (the closest name is suggested), an empty grid, a value a field refuses. An
interrupted sweep resumes when run again with the same output folder: finished candidates are kept
and skipped (their scores replayed to the pruner), an unfinished one restarts from its last checkpoint.
``backend="ray"`` (``--backend ray``, when Ray Tune is installed: ``pip install "ray[tune]"``) runs the same
candidates as Ray Tune trials instead: a ``grid_search`` over the candidate names, Ray's ``MedianStoppingRule`` or
``ASHAScheduler`` in place of optuna's pruners, each trial in its own worker with ``resources_per_candidate``
(default one CPU), as many at once as the Ray cluster has room for. On one machine that is its cores or GPUs;
with ``RAY_ADDRESS`` pointing at a cluster (``ray start --head`` here, ``ray start --address ...`` on the others)
the candidates spread over its machines, which then need ``OUTPUT`` on a shared filesystem. The candidate
folders, records, resuming and the choice are the same for both backends.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import SECTIONS, load_config, parse_train_arguments, section_classes
from .sweep_candidates import (
    CANDIDATE_RECORD,
    CANDIDATES_DIR,
    FAILED,
    PRUNED,
    Candidate,
    CandidateResult,
    _candidate_argv,
    _candidate_dir,
    run_candidate,
)

logger = logging.getLogger(__name__)

CHOSEN_DIR = "chosen"
TABLE_MARKDOWN = "selection.md"
TABLE_JSON = "selection.json"
ORACLE_COLUMN = "target accuracy (oracle, not used for the choice)"
#: Fields the sweep sets itself for every candidate.
RESERVED_FIELDS = ("training.output_dir", "training.resume_from_checkpoint")
PRUNERS = ("median", "halving", "none")
BACKENDS = ("optuna", "ray")


class SweepError(RuntimeError):
    """The sweep ran but could not choose (every candidate collapsed, failed or was pruned)."""


# ----------------------------------------------------------------------------- the grid


Grid = str | os.PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""A grid file, one grid, or a list of grids (their union)."""


def _read_grid_file(grid: str | os.PathLike) -> Any:
    path = Path(grid)
    if not path.is_file():
        raise FileNotFoundError(f"Grid file {path} does not exist.")
    import yaml

    text = path.read_text(encoding="utf-8")
    loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if loaded is not None and not isinstance(loaded, (Mapping, list)):
        raise ValueError(f"The grid {path} must map sections to fields, e.g. 'training: {{method: [dann, mcc]}}', "
                         "or be a list of such grids.")
    return {} if loaded is None else loaded


def load_grids(grid: Grid) -> list[dict[str, list[Any]]]:
    """One space per grid: ``grid`` is one grid (see :func:`load_grid`) or a list of grids, whose union is swept."""
    if isinstance(grid, (str, os.PathLike)):
        grid = _read_grid_file(grid)
    if isinstance(grid, Mapping):
        return [load_grid(grid)]
    if not grid:
        raise ValueError("The grid list is empty: give at least one grid, e.g. "
                         "'- training: {method: [source_only, dann]}'.")
    spaces = []
    for position, one in enumerate(grid):
        if not isinstance(one, Mapping):
            raise ValueError(f"Grid {position} of the list must map sections to fields, got {one!r}.")
        try:
            spaces.append(load_grid(one))
        except ValueError as error:
            raise ValueError(f"Grid {position} of the list: {error}") from None
    return spaces


def load_grid(grid: str | os.PathLike | Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{"section.field": [values]}`` from a YAML/JSON file or a mapping, checked against the config's fields.

    An unknown section or field is an error naming it and the closest known name; so is an empty grid, a field
    with no values, or a field the sweep sets itself (``training.output_dir``).
    """
    if not isinstance(grid, Mapping):
        grid = _read_grid_file(grid)
        if not isinstance(grid, Mapping):
            raise ValueError("This grid file is a list of grids: read it with load_grids.")
    fields_of = {name: _field_names(cls) for name, cls in section_classes().items()}
    space: dict[str, list[Any]] = {}
    for section, entries in grid.items():
        if section not in SECTIONS:
            raise ValueError(f"The grid names an unknown section {section!r}{_close(section, SECTIONS)}; the sections "
                             f"are {list(SECTIONS)}.")
        if not isinstance(entries, Mapping):
            raise ValueError(f"Grid section {section!r} must map fields to lists of values, got {entries!r}.")
        for name, values in entries.items():
            key = f"{section}.{name}"
            if name not in fields_of[section]:
                raise ValueError(f"The grid names an unknown field {key!r}: section {section!r} has no field {name!r}"
                                 f"{_close(name, fields_of[section], prefix=section + '.')}.")
            if key in RESERVED_FIELDS:
                raise ValueError(f"The grid cannot set {key!r}: the sweep gives every candidate its own folder.")
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            if not values:
                raise ValueError(f"Grid field {key!r} lists no values.")
            odd = [v for v in values if v is not None and not isinstance(v, (str, int, float, bool))]
            if odd:
                raise ValueError(f"Grid field {key!r}: each value must be one number, string or boolean, got {odd[0]!r} "
                                 "(write a list-valued setting as one comma-separated string).")
            space[key] = values
    if not space:
        raise ValueError("The grid is empty: list at least one field with values to try, e.g. "
                         "'training: {method: [source_only, dann]}'.")
    return space


def _field_names(cls: type) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(cls) if f.init]


def _close(name: str, known: Sequence[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {prefix + match[0]!r}?)" if match else ""


def grid_candidates(space: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]]) -> list[Candidate]:
    """Every combination of the grid's values, in the grid's order (the last field varies fastest).

    A list of grids gives the union of their combinations, grid after grid; a combination already given by an
    earlier grid is not repeated.
    """
    spaces = [space] if isinstance(space, Mapping) else list(space)
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for one in spaces:
        keys = list(one)
        for combo in itertools.product(*(one[k] for k in keys)):
            values = dict(zip(keys, combo))
            key = _key(values)
            if key not in seen:
                seen.add(key)
                candidates.append(Candidate(len(candidates), values))
    return candidates


# ----------------------------------------------------------------------------- results


@dataclass
class SweepResult:
    """The whole sweep: every candidate, the pick and where things were written."""

    output_dir: Path
    validator: str
    members: list[str]
    candidates: list[CandidateResult]
    chosen: str | None
    chosen_dir: Path | None
    ranking: dict[str, float]
    """candidate -> the chosen validator's score (the ensemble: mean rank), eligible candidates only."""
    table_markdown: str

    @property
    def chosen_result(self) -> CandidateResult | None:
        return next((c for c in self.candidates if c.name == self.chosen), None)


# ----------------------------------------------------------------------------- the sweep
def run_sweep(
    config: str | os.PathLike | Mapping[str, Any],
    grid: Grid,
    *,
    output_dir: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    validator: str = "ensemble",
    validators: Sequence[str] | None = None,
    prune_on: str | None = None,
    pruner: str = "median",
    n_startup_trials: int = 2,
    chance_margin: float = 0.05,
    max_top_class_share: float = 0.99,
    seed: int = 0,
    progress: Callable[[str], None] | None = print,
    backend: str = "optuna",
    resources_per_candidate: Mapping[str, float] | None = None,
) -> SweepResult:
    """Train every candidate of ``grid`` on ``config``, score them without target labels and keep the pick.

    Args:
        config: a train config (YAML/JSON path, or its sections as a mapping; a mapping is saved as
            ``OUTPUT/sweep_config.yaml`` and read from there).
        grid: the grid (path, mapping, or a list of mappings whose union is swept), see the module docstring.
        output_dir: where ``candidates/``, ``chosen/`` and the tables go; default the config's ``training.output_dir``.
        overrides: ``--section.field value`` overrides applied to every candidate (as for ``hf-transfer train``).
        validator: what picks: ``ensemble`` (mean rank across ``validators``) or one validator's name.
        validators: the validators every candidate logs (``training.validators``); default the config's.
        prune_on: the single validator the pruner watches at evaluation steps; default the chosen validator, or
            for the ensemble ``snd`` when it is a member (else the first member).
        pruner: ``median`` (optuna's MedianPruner), ``halving`` (SuccessiveHalvingPruner) or ``none``.
        n_startup_trials: candidates the median pruner lets finish before it prunes.
        chance_margin, max_top_class_share: the collapse rules (:func:`collapse_reason`).
        progress: called with one line per event (default ``print``); ``None`` for silence.
        backend: ``optuna`` (one candidate after another in this process) or ``ray`` (Ray Tune trials, as many at
            once as the Ray cluster has room for; see the module docstring).
        resources_per_candidate: with ``backend="ray"``, what each trial reserves (default ``{"cpu": 1}``; e.g.
            ``{"cpu": 4, "gpu": 1}``).
    """
    from .validators import EnsembleValidator, compares_candidates, get_validator

    say = progress or (lambda line: None)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise SweepError("The sweep runs on optuna: pip install optuna (or 'hf-transfer-learning[selection]').") from None
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {PRUNERS}, got {pruner!r}.")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend == "ray":
        try:
            from ray import tune  # noqa: F401
        except ImportError:
            raise SweepError('backend="ray" runs on Ray Tune: pip install "ray[tune]" (or use the optuna backend).'
                             ) from None
    chooser = get_validator(validator)  # an unknown name lists the known ones
    members = list(validators) if validators is not None else None
    for name in members or []:
        if compares_candidates(get_validator(name)):
            raise ValueError(f"validators lists the single validators the ensemble ranks; {name!r} is not one.")
    spaces = load_grids(grid)
    if any("training.validators" in space for space in spaces):
        raise ValueError("The grid cannot vary training.validators: every candidate must be scored the same way.")

    config_path, output_dir = _config_and_output(config, output_dir, overrides)
    base_overrides = list(overrides)
    parsed = parse_train_arguments(config_path, base_overrides)
    training = parsed[3]
    members = members if members is not None else list(training.validators)
    if not compares_candidates(chooser) and chooser.name not in members:
        members.append(chooser.name)
    if not members:
        raise ValueError("No validator to score the candidates with: pass validators= (or training.validators).")
    prune_on = prune_on or (chooser.name if not compares_candidates(chooser)
                            else ("snd" if "snd" in members else members[0]))
    if compares_candidates(get_validator(prune_on)):
        raise ValueError(f"prune_on must be a single validator ({prune_on!r} only exists once every candidate "
                         "finished).")
    if prune_on not in members:
        members.append(prune_on)
    if parsed[2].eval_split is None:
        raise ValueError(
            "The sweep scores candidates on the target's evaluation split: set target.eval_split (an unlabelled split "
            "is fine, even the training split itself; its labels are never read for the choice)."
        )
    # every candidate keeps its target predictions, so EnsV can compare them (a column of the table, or the choice)
    base_overrides += ["--training.validators", *members, "--training.save_target_predictions", "true"]
    if not _sets_shift_report(config_path, overrides):
        # A t-SNE, two probes and three pictures per candidate cost more than a short candidate's training; the
        # choice reads none of them. Setting training.shift_report (config or override) keeps them.
        base_overrides += ["--training.shift_report", "none"]
    if pruner != "none" and training.validators_during_training is None:
        # the pruner reads one validator at each evaluation step: the others (DEV refits a domain classifier) wait
        # for the evaluation after training
        base_overrides += ["--training.validators_during_training", prune_on]
    candidates = grid_candidates(spaces)
    # Every candidate's arguments are parsed (and checked) before anything trains.
    for candidate in candidates:
        try:
            parse_train_arguments(config_path, _candidate_argv(base_overrides, candidate, output_dir))
        except ValueError as error:
            raise ValueError(f"Candidate {candidate.name} ({candidate.label()}): {error}") from None
    _check_resumable(candidates, output_dir)

    say(f"[sweep] {len(candidates)} candidates in {output_dir}; choosing by {validator}"
        f"{' over ' + ', '.join(members) if isinstance(chooser, EnsembleValidator) else ''}; "
        f"pruner: {pruner}{'' if pruner == 'none' else ' on eval_target_' + prune_on}; backend: {backend}.")
    collapse = dict(chance_margin=chance_margin, max_top_class_share=max_top_class_share)
    if backend == "ray":
        from .sweep_ray import optimize_with_ray

        results = optimize_with_ray(
            candidates, config_path, base_overrides, output_dir, prune_on=prune_on, pruner=pruner,
            n_startup_trials=n_startup_trials, max_steps=training.max_steps, verbose=progress is not None,
            collapse=collapse, resources=dict(resources_per_candidate or {"cpu": 1}),
        )
    else:
        results = _optimize(
            candidates, config_path, base_overrides, output_dir, prune_on=prune_on, pruner=pruner,
            n_startup_trials=n_startup_trials, seed=seed, say=say, collapse=collapse,
        )
    return _choose(results, candidates, output_dir, validator=validator, members=members, prune_on=prune_on,
                   pruner=pruner, say=say)


def _sets_shift_report(config_path: str, overrides: Sequence[str]) -> bool:
    """Whether the user chose ``training.shift_report`` (in the config or an override) rather than the default."""
    flag = "--training.shift_report"
    return ("shift_report" in (load_config(config_path).get("training") or {})
            or any(arg == flag or arg.startswith(flag + "=") for arg in overrides))


def _config_and_output(config, output_dir, overrides) -> tuple[str, Path]:
    if isinstance(config, Mapping):
        sections = {k: dict(v or {}) for k, v in config.items()}
        if output_dir is None:
            output_dir = (sections.get("training") or {}).get("output_dir")
        if output_dir is None:
            raise ValueError("Pass output_dir= (or training.output_dir in the config) for the sweep's folder.")
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        import yaml

        from .utils.io import write_text_atomic

        config_path = output_dir / "sweep_config.yaml"
        write_text_atomic(config_path, yaml.safe_dump(sections, sort_keys=False))
        return str(config_path), output_dir
    config_path = str(config)
    if output_dir is None:
        training = parse_train_arguments(config_path, list(overrides))[3]
        output_dir = training.output_dir
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    load_config(config_path)  # a missing or malformed config fails here
    return config_path, output_dir


def _check_resumable(candidates: list[Candidate], output_dir: Path) -> None:
    """A folder left by an earlier sweep must hold the same grid (else its candidates would be mixed up)."""
    for candidate in candidates:
        record = _candidate_dir(output_dir, candidate) / CANDIDATE_RECORD
        if record.is_file():
            stored = CandidateResult.read(record).values
            if json.loads(json.dumps(stored)) != json.loads(json.dumps(candidate.values)):
                raise ValueError(
                    f"{output_dir} holds an earlier sweep whose candidate {candidate.name} had {stored}, not "
                    f"{candidate.values}: the grid changed. Use a new output folder (or delete {CANDIDATES_DIR}/)."
                )


def _make_pruner(pruner: str, n_startup_trials: int):
    import optuna

    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0)
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def _optimize(candidates, config_path, base_overrides, output_dir, *, prune_on, pruner, n_startup_trials,
              seed, say, collapse) -> dict[str, CandidateResult]:
    import optuna

    from .validators import get_validator

    # optuna's grid is the list of candidate names: a union of grids is no product space, and names keep it one
    by_name = {c.name: c for c in candidates}
    results: dict[str, CandidateResult] = {}
    direction = "maximize" if get_validator(prune_on).higher_is_better else "minimize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.GridSampler({"candidate": list(by_name)}, seed=seed),
        pruner=_make_pruner(pruner, n_startup_trials),
    )
    metric = f"eval_target_{prune_on}"
    done_count = [0]

    def objective(trial: optuna.Trial) -> float:
        candidate = by_name[trial.suggest_categorical("candidate", list(by_name))]
        done_count[0] += 1
        position = f"[sweep {done_count[0]}/{len(candidates)}] {candidate.name} ({candidate.label()})"
        result, resumed = run_candidate(trial, candidate, config_path, base_overrides, output_dir, metric, collapse,
                                        position=position, say=say)
        results[candidate.name] = result
        if resumed:
            return _replay(trial, result, metric)
        if result.status == PRUNED:
            raise optuna.TrialPruned(result.reason)
        if result.status == FAILED:
            raise _CandidateFailed(result.reason)
        return result.scores.get(prune_on, math.nan)

    study.optimize(objective, n_trials=len(candidates), catch=(_CandidateFailed,))
    return results


class _CandidateFailed(RuntimeError):
    pass


def _key(values: Mapping[str, Any]) -> str:
    return json.dumps({k: values[k] for k in sorted(values)}, sort_keys=True, default=str)


def _replay(trial, result: CandidateResult, metric: str) -> float:
    """Report a finished candidate's recorded scores to the pruner again (a resumed sweep prunes as before)."""
    import optuna

    for step, value in sorted(result.intermediate.items(), key=lambda item: int(item[0])):
        trial.report(value, int(step))
    if result.status == PRUNED:
        raise optuna.TrialPruned(result.reason)
    return result.scores.get(metric.removeprefix("eval_target_"), math.nan)


# ----------------------------------------------------------------------------- the choice
def _choose(results, candidates, output_dir, *, validator, members, prune_on, pruner, say) -> SweepResult:
    from .evaluation_features import TARGET_PREDICTIONS
    from .validators import EnsembleValidator, PredictionEnsembleValidator, get_validator

    ordered = [results[c.name] for c in candidates if c.name in results]
    eligible = {r.name: r for r in ordered if r.eligible}
    chooser = get_validator(validator)
    ranking: dict[str, float] = {}
    pick = None
    agreement = prediction_ensemble(list(eligible), output_dir)
    ensv = agreement.scores if agreement is not None else {}
    if eligible:
        if isinstance(chooser, PredictionEnsembleValidator):
            if agreement is None:
                raise SweepError(
                    f"EnsV compares the candidates' saved target predictions ({TARGET_PREDICTIONS}), which some of "
                    f"{sorted(eligible)} lack (trained by an older hf_transfer): sweep into a new output folder, or "
                    "choose by another validator."
                )
            ranking, pick = agreement.scores, agreement.pick
        elif isinstance(chooser, EnsembleValidator):
            ensemble = EnsembleValidator(members).select({name: r.scores for name, r in eligible.items()})
            ranking, pick = ensemble.scores, ensemble.pick
        else:
            ranking = {name: r.scores.get(chooser.name, math.nan) for name, r in eligible.items()}
            finite = {name: value for name, value in ranking.items() if not math.isnan(value)}
            if finite:
                pick = (max if chooser.higher_is_better else min)(finite, key=finite.get)
    description = _validator_description(validator, members)
    markdown = selection_table(ordered, members, ranking, pick, validator, ensv)
    payload = {
        "validator": validator, "validator_description": description, "members": members,
        "pruner": pruner, "prune_on": prune_on, "chosen": pick,
        "candidates": [{**asdict(r), "rank_score": ranking.get(r.name), "ensv": ensv.get(r.name)} for r in ordered],
    }
    from .utils.io import write_json_atomic, write_text_atomic

    write_text_atomic(output_dir / TABLE_MARKDOWN, markdown + "\n")
    write_json_atomic(output_dir / TABLE_JSON, payload)
    say(markdown)
    if pick is None:
        reasons = "; ".join(f"{r.name}: {r.status}{' (' + r.reason + ')' if r.reason else ''}" for r in ordered)
        raise SweepError(f"No candidate can be chosen ({reasons}). The table is in {output_dir / TABLE_MARKDOWN}.")
    chosen = results[pick]
    candidate = next(c for c in candidates if c.name == pick)
    selection = {
        "validator": validator, "validator_description": description, "members": members, "candidate": pick,
        "values": chosen.values, "score": ranking[pick], "num_candidates": len(candidates),
        "pruner": pruner if pruner == "none" else f"{pruner} on eval_target_{prune_on}",
        "excluded": {r.name: f"{r.status}: {r.reason}" if r.reason else r.status for r in ordered if not r.eligible},
        "table": selection_table(ordered, members, ranking, pick, validator, ensv),
    }
    chosen_dir = _keep_chosen(_candidate_dir(output_dir, candidate), output_dir / CHOSEN_DIR, selection)
    say(f"[sweep] chose {pick} ({candidate.label()}) by {validator}; its adapter and card: {chosen_dir}")
    return SweepResult(output_dir, validator, members, ordered, pick, chosen_dir, ranking, markdown)


def prediction_ensemble(eligible: list[str], output_dir: Path):
    """EnsV over the ``eligible`` candidates of the sweep in ``output_dir`` (a
    :class:`~hf_transfer.validators.PredictionEnsembleResult`); ``None`` when one has no saved target predictions
    (a candidate of an older sweep) or they do not line up."""
    from .evaluation_features import load_target_predictions
    from .validators import PredictionEnsembleValidator

    predictions = {name: load_target_predictions(output_dir / CANDIDATES_DIR / name) for name in eligible}
    if not predictions or any(p is None for p in predictions.values()):
        return None
    try:
        return PredictionEnsembleValidator().select(predictions)
    except ValueError as error:
        logger.warning("EnsV left out: %s", error)
        return None


def _validator_description(validator: str, members: list[str]) -> str:
    from .validators import EnsembleValidator, PredictionEnsembleValidator, get_validator

    chooser = get_validator(validator)
    if isinstance(chooser, EnsembleValidator):
        return f"mean rank across {', '.join(members)}; lower is better"
    if isinstance(chooser, PredictionEnsembleValidator):
        return "agreement with the eligible candidates' averaged target predictions (EnsV); higher is better"
    return f"{'higher' if chooser.higher_is_better else 'lower'} is better"


def selection_table(
    results: Sequence[CandidateResult], members: Sequence[str], ranking: Mapping[str, float], pick: str | None,
    validator: str, ensv: Mapping[str, float] | None = None,
) -> str:
    """Every candidate's scores as a Markdown table (the oracle column only when the target eval split had labels;
    an ``ensv`` column when the candidates' EnsV agreements are known and EnsV is not the choice itself)."""
    with_oracle = any(r.oracle is not None for r in results)
    with_ensv = bool(ensv) and validator != "ensv"
    rank_column = "ensemble mean rank" if validator == "ensemble" else f"{validator} (choice)"
    header = ["candidate", "settings", "status", *members, *(["ensv"] if with_ensv else []), rank_column,
              *([ORACLE_COLUMN] if with_oracle else []), "note"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        mark = " **← chosen**" if r.name == pick else ""
        cells = [
            f"{r.name}{mark}", r.values and ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in r.values.items()),
            r.status, *(_cell(r.scores.get(m)) for m in members), *([_cell(ensv.get(r.name))] if with_ensv else []),
            _cell(ranking.get(r.name)),
            *([_cell(r.oracle)] if with_oracle else []), (r.reason or "").replace("|", "/"),
        ]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def _cell(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _keep_chosen(source: Path, destination: Path, selection: dict[str, Any]) -> Path:
    """Copy the pick's folder (no checkpoints) to ``destination`` atomically, with its selection and a new card."""
    from .artifacts import MODEL_CARD_NAME, RunInfo
    from .cards import build_model_card
    from .evaluation_features import TARGET_PREDICTIONS
    from .utils.io import write_text_atomic

    scratch = destination.with_name(f".{destination.name}.tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("checkpoint-*", CANDIDATE_RECORD, "runs",
                                                                   TARGET_PREDICTIONS))
    info = RunInfo.read(scratch)
    info.selection = selection
    info.write(scratch)
    args = _saved_training_args(scratch)
    repo_id = getattr(args, "hub_model_id", None) or f"your-username/{destination.parent.name}"
    try:
        card = build_model_card(scratch, repo_id=repo_id, domain=getattr(args, "hub_card_domain", "generic"),
                                license=getattr(args, "hub_license", None))
        write_text_atomic(scratch / MODEL_CARD_NAME, str(card))
    except Exception as error:  # the adapter is kept; the card is documentation
        logger.warning("Could not render the chosen adapter's card: %s", error)
    old = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        os.replace(destination, old)
    os.replace(scratch, destination)
    shutil.rmtree(old, ignore_errors=True)
    return destination


def _saved_training_args(directory: Path) -> Any:
    from .artifacts import TRAINING_ARGS_NAME

    path = directory / TRAINING_ARGS_NAME
    if not path.is_file():
        return None
    import torch

    try:
        return torch.load(path, weights_only=False)
    except Exception:  # an unreadable args file only costs the card its repo id and domain
        return None


# ----------------------------------------------------------------------------- CLI
def add_sweep_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``hf-transfer sweep`` on the CLI's sub-parsers (no ML library is imported here)."""
    parser = subparsers.add_parser(
        "sweep",
        help="Train a grid of candidates (methods, weights, learning rates, augmentation) and choose one without "
        "target labels.",
        description="Train every candidate of --grid on CONFIG, one after another (optuna's GridSampler, a median or "
        "successive-halving pruner on the validator score), score them with the label-free validators on the "
        "target eval split, exclude collapsed ones and keep the pick in OUTPUT/chosen. Override any config field "
        "for every candidate with --section.field VALUE.",
    )
    parser.add_argument("config", help="YAML or JSON train config (as for hf-transfer train).")
    parser.add_argument("--grid", required=True,
                        help="YAML/JSON grid: section -> field -> list of values, or a list of such grids "
                        "(their union).")
    parser.add_argument("--output-dir", default=None, help="Sweep folder (default: the config's training.output_dir).")
    parser.add_argument("--validator", default="ensemble",
                        help="What picks: 'ensemble' (default, the mean rank across the validators), 'ensv' "
                        "(agreement with the candidates' averaged target predictions) or one validator.")
    parser.add_argument("--validators", nargs="+", default=None,
                        help="Validators every candidate logs and the ensemble ranks (default: training.validators).")
    parser.add_argument("--prune-on", default=None, help="The single validator the pruner watches.")
    parser.add_argument("--pruner", choices=PRUNERS, default="median")
    parser.add_argument("--n-startup-trials", type=int, default=2, help="Candidates run in full before pruning.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the grid sampler's order.")
    parser.add_argument("--backend", choices=BACKENDS, default="optuna",
                        help="optuna: one candidate after another here; ray: Ray Tune trials, as many at once as the "
                        "Ray cluster (RAY_ADDRESS, else this machine) has room for.")
    parser.add_argument("--resources-per-candidate", default=None, metavar="JSON",
                        help='With --backend ray, what each trial reserves, e.g. \'{"cpu": 4, "gpu": 1}\' '
                        '(default one CPU).')
    parser.set_defaults(func=sweep_command)
    return parser


def sweep_command(ns: argparse.Namespace, rest: list[str]) -> int:
    """Handler of ``hf-transfer sweep``: 0 with a pick, 1 when no candidate could be chosen."""
    resources = None
    if ns.resources_per_candidate is not None:
        try:
            resources = json.loads(ns.resources_per_candidate)
            if not isinstance(resources, dict):
                raise ValueError
        except ValueError:
            print(f"hf-transfer sweep: --resources-per-candidate takes a JSON object such as '{{\"cpu\": 1}}', got "
                  f"{ns.resources_per_candidate!r}.", file=sys.stderr)
            return 2
    try:
        result = run_sweep(
            ns.config, ns.grid, output_dir=ns.output_dir, overrides=rest, validator=ns.validator,
            validators=ns.validators, prune_on=ns.prune_on, pruner=ns.pruner, n_startup_trials=ns.n_startup_trials,
            seed=ns.seed, backend=ns.backend, resources_per_candidate=resources,
        )
    except SweepError as error:
        print(f"hf-transfer sweep: {error}", file=sys.stderr)
        return 1
    print(f"Chosen: {result.chosen} -> {result.chosen_dir}")
    print(f"Table: {result.output_dir / TABLE_MARKDOWN} (and {TABLE_JSON})")
    return 0
