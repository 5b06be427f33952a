"""Few-shot targets on real data: MME and DANN + K labels vs fine-tuning on the K labels alone.

    python benchmarks/run_few_shot.py speech --data-root ../shared/data --shots 1 5 10 --seeds 0 1 2
    python benchmarks/run_few_shot.py finance --data-root ../shared/data --shots 5

For each seed and each K, the recipe's ``local.yaml`` (data prepared as by ``benchmarks/run_recipe.py``) runs:

* ``mme_k<K>``: MME (Saito et al. 2019) with ``training.target_labels_per_class: K`` (the stratified draw, seeded
  with the run's seed), the rest of the target unlabelled;
* ``dann_k<K>``: DANN with the same K labels per class;
* ``source_only_k<K>``: the source plus the same K labels, no alignment term (the "S+T" baseline of the MME paper);
* ``finetune_k<K>``: **fine-tuning on the K labels alone**, what a user would otherwise do: method
  ``source_only`` with the target's training split as the only labelled data, ``source.examples_per_class: K``
  (the same rows the other runs label, by construction of the draw), starting from the same backbone.

A recipe with a source-pretraining stage pretrains once per seed (in the seed's first run, which uses the real
source) and every run of that seed adapts that backbone, ``finetune_k`` included (so it fine-tunes the backbone
the others adapt, rather than a random one). The model reported is the last step's (no target labels for
selection); the labelled shots come from the target's *training* split, scores from its test split.

``--config pretrained`` runs ``recipes/<recipe>/pretrained.yaml`` (a real pretrained backbone converted offline,
``--backbones DIR``) instead, into ``<recipe>_pretrained_few_shot``.

Writes ``<out>/<recipe>[_<config>]_few_shot.json`` and ``.md`` (mean ± std over seeds, and each method −
``finetune_k`` at the same K); any ``--section.field value`` argument is passed to every run. Each finished run
keeps its result in its output folder, so the same command run again resumes where an interrupted one stopped
(and ``--shots 5`` now, ``--shots 1 5 10`` later, trains K = 5 once).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("digits", "speech", "finance", "medical")
METHODS = ("mme", "dann", "source_only", "finetune")
BASELINE = "finetune"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_name(method: str, shots: int) -> str:
    return f"{method}_k{shots}"


def few_shot_overrides(method: str, shots: int, target, source=None) -> list[str]:
    """CLI overrides that turn the recipe into ``method`` with ``shots`` labels per class of the target.

    ``finetune`` trains on the target's K-shot subset alone (the target-oracle overrides of ``run_recipe.py`` plus
    ``source.examples_per_class``); the others keep the recipe's source and label K target examples per class.
    """
    if method == BASELINE:
        oracle = _load("run_recipe").method_overrides("target_oracle", target, source)
        return [*oracle, "--source.examples_per_class", str(shots)]
    if method not in METHODS:
        raise ValueError(f"Unknown few-shot method {method!r}; choose from {', '.join(METHODS)}.")
    return ["--training.method", method, "--training.mcc_loss_weight", "0",
            "--training.target_labels_per_class", str(shots)]


def ordered(methods: list[str]) -> list[str]:
    """The fine-tune-on-K baseline last: a seed's source pretraining must run on the real source first."""
    return sorted(methods, key=lambda m: m == BASELINE)


def gain_lines(table: dict[str, dict[str, Any]], shots: list[int], methods: list[str]) -> list[str]:
    lines = []
    for k in shots:
        base = run_name(BASELINE, k)
        for method in methods:
            name = run_name(method, k)
            if method == BASELINE or name not in table or base not in table:
                continue
            parts = [f"{label} {100 * (table[name][key][0] - table[base][key][0]):+.1f}"
                     for key, label in (("target_accuracy", "accuracy"), ("target_f1", "macro-F1"),
                                        ("target_balanced_accuracy", "balanced accuracy"))
                     if key in table[name] and key in table[base]]
            lines += ["", f"K = {k}: {name} − {base} on the target (points): {', '.join(parts)}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=RECIPES)
    parser.add_argument("--data-root", required=True, help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--work-dir", default="outputs/benchmarks", help="Prepared data and run outputs go here.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="Where the JSON/Markdown go.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10], help="K labelled target examples per class.")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--config", default="local",
                        help="recipes/<recipe>/<CONFIG>.yaml, as for run_recipe.py (local or pretrained).")
    parser.add_argument("--backbones", default=os.environ.get("HF_TRANSFER_BACKBONES"),
                        help="The folder of converted offline backbones, as for run_recipe.py.")
    parser.add_argument("--summarise-only", action="store_true", help="Rewrite the Markdown table from its JSON.")
    parser.epilog = "Any --section.field value argument is passed on to every run as a config override."
    runner = _load("run_recipe")
    runner.add_combine_arguments(parser, "K")
    ns, extra = parser.parse_known_args(argv)

    stem = f"{runner.results_stem(ns.recipe, ns.config)}_few_shot"
    config = str(runner.config_path(ns.recipe, ns.config))  # an unknown --config stops here
    out = Path(ns.out)
    if ns.summarise_only or ns.combine:
        payload = (runner.combined_tables(ns.combine, ns.recipe, ns.config, ns.note) if ns.combine
                   else json.loads((out / f"{stem}.json").read_text()))
        payload["shots"] = sorted({r["shots"] for r in payload["runs"]})
        if ns.note:  # also a new note under a table rewritten with --summarise-only
            payload["note"] = ns.note
        print(write_table(runner, out, stem, payload, methods_of(payload)))
        return 0
    runner.use_backbones(ns.recipe, ns.config, ns.backbones)
    commit = runner._commit()
    work = Path(ns.work_dir).resolve()
    data = work / "data"
    runner.prepare_environment(ns.recipe, ns.data_root, data)

    from hf_transfer.config import parse_train_arguments

    base = parse_train_arguments(config, extra)
    methods = ordered(ns.methods)
    runs = []
    for seed in ns.seeds:
        backbone = runner._existing_backbone(work / stem, seed)
        for shots in ns.shots:
            for method in methods:
                name = run_name(method, shots)
                overrides = [*extra, *few_shot_overrides(method, shots, base[2], base[1]), "--training.seed", str(seed),
                             "--training.output_dir", str(work / stem / f"seed{seed}" / name)]
                settings = list(overrides)  # the seed's backbone, found again on disk when resuming, aside
                if backbone is not None:
                    overrides += ["--model.model_name_or_path", backbone, "--model.random_init", "false",
                                  "--pretraining.epochs", "0"]
                elif method == BASELINE and base[4].epochs > 0:
                    raise SystemExit(f"{name} needs the seed's source-pretrained backbone: run another method first.")
                args = parse_train_arguments(config, overrides)
                result = runner.cached_run(args[3].output_dir,
                                           lambda: {**runner.timed_training(args), "shots": shots}, settings)
                if args[4].epochs > 0:
                    backbone = str(Path(args[3].output_dir) / args[4].output_subdir)
                runs.append({"method": name, "seed": seed, "commit": commit, **result})
                print(f"[{ns.recipe} few-shot] seed {seed} {name}: target acc "
                      f"{result['metrics'].get('eval_target_accuracy', float('nan')):.4f} ({result['seconds']} s)",
                      flush=True)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"recipe": ns.recipe, "config": ns.config, "commit": commit, "seeds": ns.seeds, "shots": ns.shots,
               "overrides": extra, "selection": "last step (no target labels used for model selection)", "runs": runs}
    previous = out / f"{stem}.json"
    if previous.exists():
        payload = merged(json.loads(previous.read_text()), payload)
    print(write_table(runner, out, stem, payload, methods_of(payload)))
    return 0


def methods_of(payload: dict[str, Any]) -> list[str]:
    """The methods of the payload's runs, in the table's order (:data:`METHODS`' order, the baseline last)."""
    present = {r["method"].rsplit("_k", 1)[0] for r in payload["runs"]}
    return ordered([m for m in METHODS if m in present])


def merged(previous: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` plus the runs of ``previous`` (the same table's JSON) at the K this invocation did not run, so
    that ``--shots 5`` once and ``--shots 1 10`` later give one table. Each kept run keeps its commit. The two must
    share the seeds and the overrides: a table never mixes protocols."""
    for key in ("seeds", "overrides"):
        if previous.get(key) != payload[key]:
            raise SystemExit(f"{payload['recipe']} few-shot: the table on disk was measured with {key} "
                             f"{previous.get(key)}, this run with {payload[key]}; write to another --out or rerun "
                             "its K with the same settings.")
    kept = [{**r, "commit": r.get("commit", previous["commit"])} for r in previous["runs"]
            if r["shots"] not in payload["shots"]]
    shots = sorted({*payload["shots"], *(r["shots"] for r in kept)})
    return {**payload, "shots": shots, "runs": [*kept, *payload["runs"]]}


def commits_by_shots(payload: dict[str, Any]) -> str | dict[str, str]:
    """The payload's commit, or {"K = 1, 10": commit, ...} when its runs were measured at several commits."""
    by_commit: dict[str, list[int]] = {}
    for run in payload["runs"]:
        shots = by_commit.setdefault(run.get("commit", payload["commit"]), [])
        if run["shots"] not in shots:
            shots.append(run["shots"])
    if len(by_commit) <= 1:
        return payload["commit"] if not by_commit else next(iter(by_commit))
    return {"K = " + ", ".join(map(str, sorted(s))): c for c, s in sorted(by_commit.items(), key=lambda i: min(i[1]))}


def write_table(runner, out: Path, stem: str, payload: dict[str, Any], methods: list[str]) -> str:
    """``<stem>.json`` (with its summary) and ``<stem>.md`` from the payload's runs; returns the Markdown."""
    measured = {r["method"] for r in payload["runs"]}
    names = [name for k in payload["shots"] for m in methods if (name := run_name(m, k)) in measured]
    table = runner.summarise(payload["runs"], names)
    title, where = runner.title_of(stem.removesuffix("_few_shot"), ", a few target labels (K per class)")
    text = runner.markdown(title, table, commits_by_shots(payload), payload["seeds"], config=where).rstrip("\n")
    note = ["", payload["note"]] if payload.get("note") else []
    text = "\n".join([text, *gain_lines(table, payload["shots"], methods), *note]) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({**payload, "summary": table}, indent=2) + "\n")
    (out / f"{stem}.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
