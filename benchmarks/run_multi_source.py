"""Multi-source adaptation (data fusion) on real data: each source alone vs all pooled vs balanced multi-source.

    python benchmarks/run_multi_source.py speech --data-root ../shared/data --seeds 0 1 2
    python benchmarks/run_multi_source.py finance --data-root ../shared/data --seeds 0 1 2

Sources and target:

* **speech**: FSDD speakers as separate sources, {jackson}, {theo}, {lucas}, {yweweler} → {george, nicolas}
  (each speaker prepared with ``benchmarks/prepare_data.py``'s speech pair, test = recording index 0-4).
* **finance**: SST-2 (movies), CR (product reviews) and MPQA (opinion phrases from news) → Financial PhraseBank
  (positive/negative). CR and MPQA have no fixed split: each is split 80/20, stratified, with ``--split-seed``.

Per seed, every run uses the recipe's ``local.yaml`` settings (backbone, steps, batch size, learning rate; or
``pretrained.yaml``'s with ``--config pretrained --backbones DIR``, the real backbones converted offline) and
the same method (``--method``; default ``dann``, with ``--training.domain_loss_weight 0.1`` for finance, below
the binary-task collapse bound, see the README):

* ``single_<source>``: that source alone (the classic single-source run; "best single source" is the one with
  the highest mean target accuracy over the seeds: a choice made with target labels, as in the literature);
* ``pooled``: every source pooled into one (``training.pool_sources: true``: one binary discriminator);
* ``multi``: the ``sources:`` list: batches balanced across the sources, a discriminator over K sources + target.

A recipe with a source-pretraining stage (speech) pretrains once per seed and source set: each single source on
its own data, ``pooled`` on all sources, and ``multi`` reuses ``pooled``'s backbone (the same data).

The model reported is the last step's (no target labels for selection). Writes
``<out>/<recipe>[_<config>]_multi_source.json`` and ``.md``; any ``--section.field value`` argument is passed to
every run. Each finished run keeps its result in its output folder: the same command run again resumes.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("speech", "finance")
SPEECH_SOURCES = ("jackson", "theo", "lucas", "yweweler")
SPEECH_TARGET = ("george", "nicolas")
FINANCE_SOURCES = ("sst2", "cr", "mpqa")
DEFAULT_OVERRIDES = {"finance": ["--training.domain_loss_weight", "0.1"]}
DESCRIPTIONS = {
    "sst2": "SST-2 movie-review sentences", "cr": "CR customer reviews of products (Hu and Liu 2004)",
    "mpqa": "MPQA opinion phrases from news (Wiebe et al. 2005)",
}
LICENSES = {"sst2": "research corpus (SST-2)", "cr": "research use (CR, Hu and Liu 2004)",
            "mpqa": "research use (MPQA, Wiebe et al. 2005)"}
EXTRA_TEST_FRACTION = 0.2


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- data
def prepare_speech(data_root: Path, data: Path) -> dict[str, dict[str, str]]:
    """One prepared folder per source speaker; returns ``{source: {"train": dir, "test": dir}}`` and ``target``."""
    prepare = _load("prepare_data").prepare
    domains = {}
    for speaker in SPEECH_SOURCES:
        pair = prepare("speech", data_root, data / "multi_speech" / speaker, printer=None,
                       source_speakers=[speaker], target_speakers=list(SPEECH_TARGET))
        domains[speaker] = {"dataset": str(pair / "source"), "split": "train", "eval_split": "test",
                            "description": f"Spoken digits by FSDD speaker {speaker}, 8 kHz",
                            "license": "CC BY-SA 4.0 (FSDD)"}
        domains["target"] = {"dataset": str(pair / "target"), "split": "train", "eval_split": "test",
                             "description": f"Spoken digits by FSDD speakers {', '.join(SPEECH_TARGET)}, 8 kHz",
                             "license": "CC BY-SA 4.0 (FSDD)"}
    return domains


def write_sentence_splits(source: Path, dest: Path, name: str, seed: int) -> dict[str, Path]:
    """A ``label sentence`` file (CR, MPQA) as seeded, stratified ``<name>_{train,test}.csv`` (text,label)."""
    prep = _load("prepare_data")
    stats = prep.DecodeStats()
    rows = prep._read_sst2(source, stats, skip_empty=True)  # the same '<0|1> <sentence>' format as SST-2
    if note := stats.note(source.name):
        print(f"[multi-source] {note}", flush=True)
    train, test = prep.stratified_split([label for _, label in rows], EXTRA_TEST_FRACTION, seed)
    paths = {}
    for split, indices in (("train", train), ("test", test)):
        paths[split] = dest / f"{name}_{split}.csv"
        prep._write_csv(paths[split], [rows[i] for i in indices])
    return paths


def prepare_finance(data_root: Path, data: Path, seed: int) -> dict[str, dict[str, str]]:
    pair = _load("prepare_data").prepare("finance", data_root, data, printer=None)
    domains = {"sst2": {"dataset": str(pair / "sst2_train.csv"), "eval_split": str(pair / "sst2_test.csv")}}
    for name, relative in (("cr", "finance/cr/custrev.all"), ("mpqa", "finance/mpqa/mpqa.all")):
        paths = write_sentence_splits(Path(data_root) / relative, data / "multi_finance", name, seed)
        domains[name] = {"dataset": str(paths["train"]), "eval_split": str(paths["test"])}
    for name in FINANCE_SOURCES:
        domains[name].update(input_column="text", description=DESCRIPTIONS[name], license=LICENSES[name])
    domains["target"] = {"dataset": str(pair / "phrasebank_train.csv"), "eval_split": str(pair / "phrasebank_test.csv"),
                         "input_column": "text", "license": "CC BY-NC-SA 3.0 (Financial PhraseBank, non-commercial)",
                         "description": "Financial PhraseBank news sentences (all annotators agree), positive vs negative"}
    return domains


# --------------------------------------------------------------------------- configs
def recipe_config(recipe: str, config_name: str = "local") -> dict[str, Any]:
    """The recipe's ``<config_name>.yaml`` with its backbone path made absolute (the configs here live elsewhere)."""
    folder = ROOT / "recipes" / recipe
    config = yaml.safe_load((folder / f"{config_name}.yaml").read_text())
    model = config["model"]["model_name_or_path"]
    if isinstance(model, str) and (folder / model).exists():
        config["model"]["model_name_or_path"] = str((folder / model).resolve())
    return config


def run_configs(recipe: str, domains: dict[str, dict[str, str]], config_name: str = "local") -> dict[str, dict[str, Any]]:
    """``{run name: config}``: each source alone, the sources pooled, and the balanced multi-source run."""
    base = recipe_config(recipe, config_name)
    base.pop("source", None)
    base["target"] = {**base.get("target", {}), **domains["target"]}
    names = [n for n in domains if n != "target"]
    configs = {}
    for name in names:
        config = copy.deepcopy(base)
        config["source"] = dict(domains[name])
        configs[f"single_{name}"] = config
    for run, pooled in (("pooled", True), ("multi", False)):
        config = copy.deepcopy(base)
        config["sources"] = [dict(domains[n]) for n in names]
        config["training"] = {**config.get("training", {}), "pool_sources": pooled}
        configs[run] = config
    return configs


def pretraining_key(run: str) -> str:
    """Runs that pretrain on the same source data share one pretrained backbone per seed."""
    return "all" if run in ("pooled", "multi") else run


# --------------------------------------------------------------------------- runs
def run_one(config_path: Path, overrides: list[str], backbone: str | None) -> dict[str, Any]:
    from hf_transfer.config import parse_train_arguments

    overrides_of_run = [str(config_path), *overrides]  # the seed's shared backbone, found again on resume, aside
    if backbone is not None:
        overrides = [*overrides, "--model.model_name_or_path", backbone, "--model.random_init", "false",
                     "--pretraining.epochs", "0"]
    args = parse_train_arguments(str(config_path), overrides)
    runner = _load("run_recipe")
    return runner.cached_run(args[3].output_dir, lambda: runner.timed_training(args), overrides_of_run)


def method_label(method: str, overrides: list[str]) -> str:
    """The table title's method, with the domain-loss weight when an override sets it (the last one wins)."""
    flag = "--training.domain_loss_weight"
    weights = [overrides[i + 1] for i, arg in enumerate(overrides[:-1]) if arg == flag]
    return f"{method}, domain-loss weight {weights[-1]}" if weights else method


def best_single(table: dict[str, dict[str, Any]]) -> str | None:
    singles = [m for m in table if m.startswith("single_") and "target_accuracy" in table[m]]
    return max(singles, key=lambda m: table[m]["target_accuracy"][0]) if singles else None


def per_source_lines(runs: list[dict[str, Any]], run: str) -> list[str]:
    """Each source's own held-out accuracy in the multi-source run (mean over seeds)."""
    rows = [r for r in runs if r["method"] == run]
    keys = sorted({k for r in rows for k in r["metrics"] if k.startswith("eval_source_") and k.endswith("_accuracy")
                   and k[len("eval_source_"):-len("_accuracy")].isdigit()})
    if not keys:
        return []
    cells = [f"source {k[len('eval_source_'):-len('_accuracy')]} {100 * statistics.mean(r['metrics'][k] for r in rows):.1f}"
             for k in keys]
    return ["", f"{run}: held-out accuracy of each source (mean over seeds): {', '.join(cells)}."]


def markdown(recipe: str, table: dict, runs: list, commit: str, seeds: list[int], method: str, names: list[str],
             config_name: str = "local") -> str:
    where = f"recipes/{recipe}/{config_name}.yaml"
    text = _load("run_recipe").markdown(f"{recipe} multi-source ({method})", table, commit, seeds,
                                        config=where).rstrip("\n")
    lines = [text, "", "Sources in order: " + ", ".join(names) + "."]
    best = best_single(table)

    def gain(a: str, b: str) -> str | None:
        if a not in table or b not in table or "target_accuracy" not in table[a] or "target_accuracy" not in table[b]:
            return None
        parts = [f"{label} {100 * (table[a][key][0] - table[b][key][0]):+.1f}"
                 for key, label in (("target_accuracy", "accuracy"), ("target_f1", "macro-F1"))
                 if key in table[a] and key in table[b]]
        return f"{a} − {b} on the target (points): {', '.join(parts)}."

    for a, b in (("multi", best), ("multi", "pooled"), ("pooled", best)):
        line = gain(a, b) if b else None
        if line:
            lines += ["", line]
    if best:
        lines += ["", f"Best single source (by mean target accuracy, a choice that uses target labels): {best}."]
    lines += per_source_lines(runs, "multi")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=RECIPES)
    parser.add_argument("--data-root", required=True, help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--work-dir", default="outputs/benchmarks", help="Prepared data, configs and run outputs.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="Where the JSON/Markdown go.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--method", default="dann", help="The adaptation method of every run (default dann).")
    parser.add_argument("--runs", nargs="+", default=None,
                        help="Only these runs (single_<source>, pooled, multi); default: all.")
    parser.add_argument("--split-seed", type=int, default=0, help="Seed of the CR/MPQA train/test split (finance).")
    parser.add_argument("--config", default="local", help="recipes/<recipe>/<CONFIG>.yaml (local or pretrained).")
    parser.add_argument("--backbones", default=None, help="Converted offline backbones (for --config pretrained).")
    parser.epilog = "Any --section.field value argument is passed on to every run as a config override."
    runner = _load("run_recipe")
    runner.add_combine_arguments(parser, "run")
    ns, extra = parser.parse_known_args(argv)

    stem = f"{runner.results_stem(ns.recipe, ns.config)}_multi_source"
    if ns.combine:
        print(write_table(Path(ns.out), stem, runner.combined_tables(ns.combine, ns.recipe, ns.config, ns.note)))
        return 0
    runner.use_backbones(ns.recipe, ns.config, ns.backbones)  # an unknown --config or a missing backbone stops here
    commit = runner._commit()
    work = Path(ns.work_dir).resolve()
    data = work / "data"
    domains = (prepare_speech(Path(ns.data_root), data) if ns.recipe == "speech"
               else prepare_finance(Path(ns.data_root), data, ns.split_seed))
    runner.offline_environment()
    configs = run_configs(ns.recipe, domains, ns.config)
    selected = ns.runs or list(configs)
    unknown = sorted(set(selected) - set(configs))
    if unknown:
        raise SystemExit(f"Unknown run(s) {unknown}; choose from {', '.join(configs)}.")
    config_dir = work / stem / "configs"
    config_dir.mkdir(parents=True, exist_ok=True)
    overrides = [*DEFAULT_OVERRIDES.get(ns.recipe, []), "--training.method", ns.method, *extra]
    runs = []
    for seed in ns.seeds:
        backbones: dict[str, str] = {}
        for run in selected:
            path = config_dir / f"{run}.yaml"
            path.write_text(yaml.safe_dump(configs[run], sort_keys=False))
            output = work / stem / f"seed{seed}" / run
            key = pretraining_key(run)
            result = run_one(path, [*overrides, "--training.seed", str(seed), "--training.output_dir", str(output)],
                             backbones.get(key))
            if result["pretrained_backbone"]:
                backbones.setdefault(key, result["pretrained_backbone"])
            runs.append({"method": run, "seed": seed, **result})
            print(f"[{ns.recipe} multi-source] seed {seed} {run}: target acc "
                  f"{result['metrics'].get('eval_target_accuracy', float('nan')):.4f} ({result['seconds']} s)", flush=True)
    names = [n for n in domains if n != "target"]
    payload = {"recipe": ns.recipe, "config": ns.config, "commit": commit, "seeds": ns.seeds, "method": ns.method,
               "sources": names, "overrides": overrides,
               "selection": "last step (no target labels used for model selection)", "runs": runs}
    print(write_table(Path(ns.out), stem, payload))
    return 0


def write_table(out: Path, stem: str, payload: dict[str, Any]) -> str:
    """``<stem>.json`` (with its summary) and ``<stem>.md`` from the payload's runs (each source alone, in the
    sources' order, then pooled and multi), with its note under the table; returns the Markdown."""
    present = {r["method"] for r in payload["runs"]}
    order = [*(f"single_{n}" for n in payload["sources"]), "pooled", "multi"]
    table = _load("run_recipe").summarise(payload["runs"], [m for m in order if m in present])
    text = markdown(payload["recipe"], table, payload["runs"], payload["commit"], payload["seeds"],
                    method_label(payload["method"], payload["overrides"]), payload["sources"], payload["config"])
    if payload.get("note"):
        text += "\n" + payload["note"] + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({**payload, "summary": table}, indent=2) + "\n")
    (out / f"{stem}.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
