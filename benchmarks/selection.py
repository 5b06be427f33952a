"""How honest is the label-free choice? Sweep a grid per recipe and seed, then compare the picks.

    python benchmarks/selection.py digits --data-root ../shared/data
    python benchmarks/selection.py medical --data-root ../shared/data --seeds 0 1 2 --pruner median
    python benchmarks/selection.py digits --summarise-only     # rewrite the table from the sweeps on disk

For each seed, ``hf-transfer sweep`` (:func:`hf_transfer.sweep.run_sweep`) trains every candidate of
the grid on the recipe's ``local.yaml`` (``--config pretrained``: ``pretrained.yaml``), every
candidate logging every label-free validator on the target's evaluation split. The default grid is
every alignment method trained with the source, x three domain-loss weights for the methods that
read one (x augmentation on/off where the recipe has one); ``--grid FILE`` gives another.
``--backbones-from WORK`` adapts, for each seed, the source-pretrained backbone that
``run_recipe.py --work-dir WORK`` made for that seed (a recipe with a source-pretraining stage
would otherwise pretrain again in every candidate).

From each sweep's ``selection.json`` this script then reads, per seed:

* **source-only**: the ``source_only`` candidate (the first one, if the grid repeats it);
* **each validator's pick**: the eligible candidate (not collapsed) with that validator's best score;
* **the ensemble's pick**: the sweep's own choice (mean rank across the validators, EnsV-style);
* **the oracle**: the candidate with the best score on the labelled target test split, in hindsight.

The target test labels are read only here, after every choice was made, to score the picks: the
*regret* (oracle - pick) and the *gain* over source-only. The headline metric is the recipe's:
balanced accuracy for medical, accuracy otherwise.

``--pruner median`` (or ``halving``) runs the sweep with early stopping on the validator instead of
the full grid and records its wall time: the cost goal is a 12-candidate sweep at most 5 single runs'
time with a pick as good as the full grid's.

Writes ``<out>/<recipe>[_<config>]_selection.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

HEADLINE = {"medical": "balanced_accuracy"}
"""The metric each recipe is judged on (default: accuracy)."""
WEIGHTS = (0.1, 0.3, 1.0)
AUGMENTATION = {"medical": ("model.image_augmentation", ["flip", "stain"]),
                "speech": ("model.audio_augmentation", ["none", "speed"])}


def default_grid(recipe: str, methods: Sequence[str] | None = None,
                 augmentation: bool = True) -> list[dict[str, dict[str, list[Any]]]]:
    """Every method trained with the source (x ``WEIGHTS`` for those weighted by ``domain_loss_weight``), x the
    recipe's augmentation off/on (unless ``augmentation`` is false): a list of grids, whose union the sweep trains
    (no candidate twice).

    Source-only, MCC and MME do not read ``domain_loss_weight``: each is one candidate per augmentation, not three
    identical ones. Source-free methods (SHOT, TENT, SAR) train without the source and are not candidates here.
    """
    from hf_transfer.alignment import available_methods, get_method

    names = list(methods or [m for m in available_methods() if get_method(m).needs_source])
    weighted = [m for m in names if get_method(m).weight_argument == "domain_loss_weight"]
    unweighted = [m for m in names if m not in weighted]
    grids: list[dict[str, dict[str, list[Any]]]] = []
    if unweighted:
        grids.append({"training": {"method": unweighted}})
    if weighted:
        grids.append({"training": {"method": weighted, "domain_loss_weight": list(WEIGHTS)}})
    if augmentation and recipe in AUGMENTATION:
        field, values = AUGMENTATION[recipe]
        section, name = field.split(".")
        for grid in grids:
            grid.setdefault(section, {})[name] = list(values)
    return grids


def seed_backbone(runs_work_dir: str | None, stem: str, seed: int) -> list[str]:
    """Overrides that adapt the seed's source-pretrained backbone of an earlier ``run_recipe.py`` run (none: ``[]``)."""
    if runs_work_dir is None:
        return []
    import run_recipe

    backbone = run_recipe._existing_backbone(Path(runs_work_dir).resolve() / stem, seed)
    if backbone is None:
        raise SystemExit(f"error: no source-pretrained backbone for seed {seed} under {runs_work_dir}/{stem}; run "
                         f"benchmarks/run_recipe.py with --work-dir {runs_work_dir} for that seed first.")
    return ["--model.model_name_or_path", backbone, "--model.random_init", "false", "--pretraining.epochs", "0"]


def headline_metric(recipe: str) -> str:
    return f"eval_target_{HEADLINE.get(recipe, 'accuracy')}"


def picks_of_one_sweep(payload: Mapping[str, Any], metric: str) -> dict[str, dict[str, Any]]:
    """Who each rule picks in one sweep's ``selection.json``, and that candidate's target ``metric``.

    Returns ``{rule: {"candidate": name, "score": metric value}}`` for ``source_only``, every validator in
    ``members``, ``ensemble`` and ``oracle``. Collapsed or failed candidates are never picked by a validator
    (the oracle, which is hindsight, considers every finished candidate, collapsed ones included).
    """
    from hf_transfer.validators import get_validator

    candidates = payload["candidates"]

    def value(candidate: Mapping[str, Any]) -> float | None:
        score = (candidate.get("metrics") or {}).get(metric)
        return None if score is None or (isinstance(score, float) and math.isnan(score)) else float(score)

    def pick(candidate: Mapping[str, Any]) -> dict[str, Any]:
        # "dann/0.3/stain": the candidate's grid values, short enough for a table cell
        values = candidate["values"]
        ordered = [values[k] for k in sorted(values, key=lambda k: k != "training.method")]  # the method first
        return {"candidate": candidate["name"], "label": "/".join(map(str, ordered)), "score": value(candidate)}

    by_name = {c["name"]: c for c in candidates}
    eligible = [c for c in candidates if c["status"] == "finished"]
    picks: dict[str, dict[str, Any]] = {}
    source_only = next((c for c in candidates if c["values"].get("training.method") == "source_only"
                        and value(c) is not None), None)
    if source_only is not None:
        picks["source_only"] = pick(source_only)
    for name in payload["members"]:
        validator = get_validator(name)
        scored = [c for c in eligible if c["scores"].get(name) is not None and not math.isnan(c["scores"][name])]
        if scored:
            best = (max if validator.higher_is_better else min)(scored, key=lambda c: c["scores"][name])
            picks[name] = pick(best)
    with_agreement = [c for c in eligible if c.get("ensv") is not None]
    if with_agreement and len(with_agreement) == len(eligible):
        picks["ensv"] = pick(max(with_agreement, key=lambda c: c["ensv"]))  # the first of equal agreements
    if payload.get("chosen") in by_name:
        picks["ensemble" if payload.get("validator") == "ensemble" else payload["validator"]] = pick(
            by_name[payload["chosen"]])
    scored = [c for c in candidates if value(c) is not None]
    if scored:
        best = max(scored, key=value)
        picks["oracle"] = pick(best)
    return picks


def with_ensv(payload: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``payload`` with each eligible candidate's EnsV agreement (``ensv``), from the target predictions in its
    folder, when the sweep's own table has none (older sweeps; see :func:`backfill_predictions`)."""
    from hf_transfer.sweep import prediction_ensemble

    eligible = [row["name"] for row in payload["candidates"] if row["status"] == "finished"]
    if eligible and all(row.get("ensv") is not None for row in payload["candidates"] if row["name"] in eligible):
        return payload
    agreement = prediction_ensemble(eligible, folder)
    scores = agreement.scores if agreement is not None else {}
    return {**payload, "candidates": [{**row, "ensv": scores.get(row["name"])} for row in payload["candidates"]]}


def backfill_predictions(folder: Path, config: Path, overrides: list[str], seed: int) -> list[str]:
    """Give the eligible candidates of an older sweep (before they saved them) their target predictions: each saved
    adapter re-run on the target eval split, loaded as the training run loaded it. A candidate's predictions are
    kept only if their accuracy reproduces its recorded ``eval_target_accuracy`` (the same examples, in the same
    order, through the same preprocessing); the names that did not are returned."""
    import numpy as np

    from hf_transfer.config import parse_train_arguments
    from hf_transfer.data import load_domain
    from hf_transfer.evaluation import predict_saved_model
    from hf_transfer.evaluation_features import TARGET_PREDICTIONS, write_target_predictions
    from hf_transfer.sweep_candidates import CANDIDATES_DIR

    payload = json.loads((folder / "selection.json").read_text())
    target = parse_train_arguments(str(config), overrides)[2]
    data = load_domain(target, split=target.eval_split, seed=seed)
    refused = []
    for row in payload["candidates"]:
        directory = folder / CANDIDATES_DIR / row["name"]
        if row["status"] != "finished" or (directory / TARGET_PREDICTIONS).is_file():
            continue
        logits, labels = predict_saved_model(str(directory), data, center_crop=target.center_crop)
        known = labels != -100
        accuracy = float(np.mean(logits[known].argmax(1) == labels[known]))
        recorded = row["metrics"].get("eval_target_accuracy")
        if recorded is None or abs(accuracy - recorded) > 1e-6:
            print(f"[{folder.name}] {row['name']}: re-run accuracy {accuracy:.6f} != recorded {recorded}; no "
                  "predictions kept", flush=True)
            refused.append(row["name"])
            continue
        write_target_predictions(logits, directory)
    return refused


def sweep_cost(payload: Mapping[str, Any]) -> float | None:
    """A sweep's CPU time in single runs: its candidates' CPU seconds summed, over the median of those trained to
    the end (not pruned; their cheap evaluation steps included). CPU seconds, not wall time: other jobs on the
    machine do not inflate them. ``None`` when a record has no times (sweeps from before they were recorded)."""
    rows = payload["candidates"]
    if not rows or any(row.get("cpu_seconds") is None for row in rows):
        return None
    full = [row["cpu_seconds"] for row in rows if row["status"] != "pruned"]
    if not full:
        return None
    return sum(row["cpu_seconds"] for row in rows) / statistics.median(full)


def summarise(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean ± std over seeds of each rule's score, its regret (oracle − pick) and gain (pick − source-only)."""
    rules = list(dict.fromkeys(rule for picks in per_seed.values() for rule in picks))
    table: dict[str, dict[str, Any]] = {}
    for rule in rules:
        scores, regrets, gains = [], [], []
        for picks in per_seed.values():
            if rule not in picks or picks[rule]["score"] is None:
                continue
            score = picks[rule]["score"]
            scores.append(score)
            if "oracle" in picks:
                regrets.append(picks["oracle"]["score"] - score)
            if "source_only" in picks:
                gains.append(score - picks["source_only"]["score"])
        if scores:
            table[rule] = {
                "score": (statistics.mean(scores), statistics.pstdev(scores)),
                "regret": (statistics.mean(regrets), statistics.pstdev(regrets)) if regrets else None,
                "gain": (statistics.mean(gains), statistics.pstdev(gains)) if gains else None,
                "picks": [picks[rule].get("label", picks[rule]["candidate"]) for picks in per_seed.values()
                          if rule in picks],
                "seeds": len(scores),
            }
    return table


def markdown(title: str, metric: str, table: Mapping[str, Mapping[str, Any]], candidates: int,
             timing: Mapping[str, Any] | None = None) -> str:
    def cell(pair):
        return "–" if pair is None else f"{100 * pair[0]:.1f} ± {100 * pair[1]:.1f}"

    def signed(pair):
        return "–" if pair is None else f"{100 * pair[0]:+.1f} ± {100 * pair[1]:.1f}"

    label = metric.removeprefix("eval_target_").replace("_", " ")
    lines = [
        f"**{title}**: {candidates} candidates per seed; target {label} of the candidate each rule picks "
        "(mean ± std over seeds, points). Regret = oracle − pick; gain = pick − source-only. Only the oracle row "
        "reads target labels (in hindsight); every other pick is label-free.",
        "",
        "| rule | target score | regret | gain over source-only | picks |",
        "|---|---:|---:|---:|---|",
    ]
    last = ("ensemble", "ensv", "oracle")
    order = ["source_only", *[r for r in table if r not in ("source_only", *last)], *last]
    for rule in order:
        if rule not in table:
            continue
        entry = table[rule]
        name = {"source_only": "source-only", "ensemble": "**ensemble** (the sweep's choice)",
                "ensv": "EnsV (agreement with all candidates' predictions)",
                "oracle": "oracle (target labels, hindsight)"}.get(rule, rule)
        lines.append(f"| {name} | {cell(entry['score'])} | {signed(entry['regret'])} | {signed(entry['gain'])} | "
                     f"{', '.join(entry['picks'])} |")
    if timing:
        lines += ["", f"Cost: {timing['text']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=("digits", "speech", "finance", "medical"))
    parser.add_argument("--data-root", help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--config", default="local", help="recipes/<recipe>/<CONFIG>.yaml (local or pretrained).")
    parser.add_argument("--backbones", default=None, help="Converted offline backbones (for --config pretrained).")
    parser.add_argument("--work-dir", default="outputs/benchmarks", help="Prepared data and the sweeps go here.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="Where the JSON/Markdown go.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--grid", default=None, help="A grid YAML (default: every method x 3 weights [x augmentation]).")
    parser.add_argument("--methods", nargs="+", default=None, help="The default grid's methods (default: all).")
    parser.add_argument("--no-augmentation", action="store_true",
                        help="Leave the recipe's augmentation at its config value instead of sweeping it off/on.")
    parser.add_argument("--validators", nargs="+", default=None,
                        help="What every candidate logs and the ensemble ranks (default: every single validator).")
    parser.add_argument("--pruner", default="none", choices=("none", "median", "halving"))
    parser.add_argument("--summarise-only", action="store_true", help="Rewrite the table from the sweeps on disk.")
    parser.add_argument("--backfill-predictions", action="store_true",
                        help="Sweep nothing: give the finished candidates of older sweeps (made before candidates "
                        "kept them) their target predictions for EnsV, then rewrite the table.")
    parser.add_argument("--backbones-from", default=None, metavar="WORK",
                        help="A run_recipe.py --work-dir: each seed's candidates adapt the source-pretrained backbone "
                        "that run made for that seed (no pretraining in every candidate).")
    ns, extra = parser.parse_known_args(argv)

    import run_recipe

    stem_of_runs = run_recipe.results_stem(ns.recipe, ns.config)
    stem = f"{stem_of_runs}_selection" + ("" if ns.pruner == "none" else f"_{ns.pruner}")
    work = Path(ns.work_dir).resolve() / stem
    out = Path(ns.out)
    metric = headline_metric(ns.recipe)
    if not ns.summarise_only:
        if not ns.data_root:
            parser.error("--data-root is required (except with --summarise-only)")
        run_recipe.use_backbones(ns.recipe, ns.config, ns.backbones)
        backbones = {seed: seed_backbone(ns.backbones_from, stem_of_runs, seed) for seed in ns.seeds}  # all, first
        data = Path(ns.work_dir).resolve() / "data"
        run_recipe.prepare_environment(ns.recipe, ns.data_root, data)
        from hf_transfer.sweep import run_sweep

        from hf_transfer.validators import SINGLE_VALIDATORS

        validators = ns.validators or list(SINGLE_VALIDATORS)
        grid = ns.grid or default_grid(ns.recipe, ns.methods, augmentation=not ns.no_augmentation)
        timings = {}
        for seed in ns.seeds:
            if ns.backfill_predictions:
                if (work / f"seed{seed}" / "selection.json").is_file():
                    refused = backfill_predictions(work / f"seed{seed}", run_recipe.config_path(ns.recipe, ns.config),
                                                   [*extra, "--training.seed", str(seed), *backbones[seed]], seed)
                    print(f"[{stem}] seed {seed}: target predictions kept" + (
                        f"; not reproduced: {', '.join(refused)}" if refused else " for every finished candidate"))
                continue
            start = time.perf_counter()
            overrides = [*extra, "--training.seed", str(seed), *backbones[seed], "--training.validators", *validators]
            run_sweep(str(run_recipe.config_path(ns.recipe, ns.config)), grid, output_dir=work / f"seed{seed}",
                      overrides=overrides, pruner=ns.pruner, seed=seed)
            timings[seed] = round(time.perf_counter() - start, 1)
            (work / f"seed{seed}" / "wall_seconds.txt").write_text(f"{timings[seed]}\n")
    per_seed, sizes, walls, costs = {}, set(), [], []
    for folder in sorted(work.glob("seed*")):
        if not (folder / "selection.json").is_file():  # a seed still sweeping in another process
            print(f"[{stem}] {folder.name}: no selection.json yet, left out of the table", flush=True)
            continue
        payload = with_ensv(json.loads((folder / "selection.json").read_text()), folder)
        per_seed[int(folder.name.removeprefix("seed"))] = picks_of_one_sweep(payload, metric)
        sizes.add(len(payload["candidates"]))
        if (cost := sweep_cost(payload)) is not None:
            costs.append(round(cost, 2))
        if (folder / "wall_seconds.txt").is_file():
            walls.append(float((folder / "wall_seconds.txt").read_text()))
    table = summarise(per_seed)
    timing = {"text": f"mean wall time of a sweep {statistics.mean(walls) / 60:.1f} min (pruner: {ns.pruner})"} if walls else None
    if timing and costs:
        timing["text"] = (f"CPU time of a sweep = {statistics.mean(costs):.1f} single runs (mean over {len(costs)} "
                          "seeds; a single run = the median candidate trained to the end); "
                          f"{timing['text']}, which depends on what else the machine ran")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({"recipe": ns.recipe, "config": ns.config, "metric": metric,
                                                  "pruner": ns.pruner, "per_seed": per_seed, "summary": table,
                                                  "wall_seconds": walls, "cost_in_single_runs": costs},
                                                 indent=2) + "\n")
    text = markdown(f"{ns.recipe} ({ns.config}), label-free selection", metric, table, max(sizes, default=0), timing)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
