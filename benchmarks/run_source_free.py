"""Source-free benchmark: adapt each recipe's source-only model to the target with SHOT, TENT and SAR, no source data.

    python benchmarks/run_source_free.py digits --data-root ../shared/data
    python benchmarks/run_source_free.py medical --data-root ../shared/data --seeds 0 1 2 --methods shot
    python benchmarks/run_source_free.py speech --config pretrained --backbones outputs/offline-backbones \
        --data-root ../shared/data

For each seed it starts from the recipe's ``source_only`` run folder of ``benchmarks/run_recipe.py`` (same
``--work-dir`` and ``--config``: ``<work-dir>/<stem>/seed<N>/source_only``, where ``<stem>`` is ``<recipe>`` for
``local.yaml`` and ``<recipe>_<config>`` otherwise; trained first if it is missing), **as a user would get
it from the Hub**: the files a download brings (safetensors, JSON, text; no pickles, no ``training_args.bin``) are
copied into a fresh folder whose adapter names its base by an absolute path (as a pushed one names a Hub id), and
that folder is loaded by :func:`hf_transfer.source_free.load_source_model`. Then:

* ``source_only``: that reloaded model evaluated on the target test split as it is (it must reproduce the recipe's
  own source-only numbers; a difference is printed);
* ``shot``, ``tent``, ``sar``: :func:`hf_transfer.source_free.run_source_free` with the recipe's model and target
  sections (the source section is never read) on the target's **unlabelled** train split, evaluated on the same
  target test split. The model reported is the last step's; no target label picks anything.

Training settings are the recipe's (steps, batch size, learning rate, LoRA), with :data:`METHOD_OVERRIDES` on top
(TENT and SAR update only normalisation layers and use a lower learning rate); any ``--section.field value``
argument overrides every run. Rows of the recipe's own results (``<out>/<stem>.json``, or the ``--with-source``
files) for methods trained *with* the source (``dann``, ``mcc``, ...) are copied into the table for comparison,
marked as such.

Writes ``<out>/<stem>_source_free.json`` and ``<out>/<stem>_source_free.md`` (mean ± std over seeds, and each
method's gain over the reloaded source-only model).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("shot", "tent", "sar")
WITH_SOURCE = ("dann", "mcc", "dann_mcc", "cdan", "mmd")
"""Rows copied from the recipe's own results, for comparison (methods that train with the source data)."""
METHOD_OVERRIDES = {
    "shot": [],
    "tent": ["--training.learning_rate", "0.001"],
    "sar": ["--training.learning_rate", "0.001"],
}


def _recipe_module():
    spec = importlib.util.spec_from_file_location("run_recipe", Path(__file__).with_name("run_recipe.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def share_folder(saved: Path, shared: Path) -> Path:
    """``saved`` as a Hub download of it would look: safetensors/JSON/text files only, the base named absolutely."""
    from hf_transfer.artifacts import ADAPTER_CONFIG_NAME, RUN_INFO_NAME, resolve_base_model
    from hf_transfer.hub.load import DOWNLOAD_PATTERNS

    if shared.exists():
        shutil.rmtree(shared)
    shared.mkdir(parents=True)
    for path in saved.iterdir():
        if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in DOWNLOAD_PATTERNS):
            shutil.copy2(path, shared / path.name)
    for name, key in ((ADAPTER_CONFIG_NAME, "base_model_name_or_path"), (RUN_INFO_NAME, "base_model")):
        values = json.loads((shared / name).read_text())
        values[key] = resolve_base_model(values.get(key), saved)  # a pushed folder names its base by Hub id
        (shared / name).write_text(json.dumps(values, indent=2))
    return shared


def _arguments(config: Path, shared: Path, method: str, seed: int, output_dir: Path, extra: list[str]):
    from hf_transfer.config import parse_train_arguments

    overrides = [
        "--model.model_name_or_path", str(shared), "--model.random_init", "false", "--pretraining.epochs", "0",
        "--training.method", method, "--training.mcc_loss_weight", "0", "--training.seed", str(seed),
        "--training.output_dir", str(output_dir), *METHOD_OVERRIDES.get(method, []),
    ]
    model_args, _, target_args, training_args, _ = parse_train_arguments(str(config), overrides + extra)
    return model_args, target_args, training_args


def evaluate_start(config: Path, shared: Path, seed: int, work: Path, extra: list[str]) -> dict[str, Any]:
    """The reloaded source-only model on the target test split, unchanged (the starting point of every method)."""
    from hf_transfer.source_free import SourceFreeTrainer, load_source_model, load_target_splits, wrap_for_method

    model_args, target_args, training_args = _arguments(config, shared, "shot", seed, work / "source_only_eval", extra)
    start = time.perf_counter()
    source = load_source_model(str(shared))
    ready = load_target_splits(model_args, target_args, source, seed=seed)
    model = wrap_for_method(source, "shot", seed=seed)  # starts from the given adapter's weights: the same function
    trainer = SourceFreeTrainer(model, training_args, ready["target"], eval_datasets={"target": ready["eval_target"]},
                                processing_class=source.processor)
    metrics = trainer.evaluate()
    return {"metrics": _numbers(metrics), "seconds": round(time.perf_counter() - start, 1)}


def run_method(config: Path, shared: Path, method: str, seed: int, work: Path, extra: list[str]) -> dict[str, Any]:
    """One source-free run on the target's unlabelled train split, evaluated on its test split."""
    from hf_transfer.source_free import run_source_free

    model_args, target_args, training_args = _arguments(config, shared, method, seed, work / f"sf_{method}", extra)
    if not target_args.eval_split:
        raise ValueError(f"{config}: the target section has no eval_split to score the adapted model on.")
    start = time.perf_counter()
    metrics = run_source_free(model_args, target_args, training_args)
    return {"metrics": _numbers(metrics), "seconds": round(time.perf_counter() - start, 1)}


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def main(argv: list[str] | None = None) -> int:
    runner = _recipe_module()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=runner.RECIPES)
    parser.add_argument("--data-root", required=True, help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--work-dir", default="outputs/benchmarks", help="run_recipe.py's work dir (its source_only runs).")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="Where the JSON/Markdown go.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--append", action="store_true", help="Add these runs to the existing source-free JSON.")
    parser.add_argument("--config", default="local",
                        help="recipes/<recipe>/<CONFIG>.yaml, as for run_recipe.py (local or pretrained).")
    parser.add_argument("--backbones", default=os.environ.get("HF_TRANSFER_BACKBONES"),
                        help="The folder of converted offline backbones, as for run_recipe.py.")
    parser.add_argument("--with-source", nargs="+", default=None, metavar="JSON",
                        help="run_recipe.py results whose dann/mcc/cdan/mmd rows are shown for comparison "
                        "(default: <out>/<stem>.json).")
    parser.epilog = "Any --section.field value argument is passed on to every run as a config override."
    parser.add_argument("--summarise-only", action="store_true", help="Rewrite the Markdown table from its JSON.")
    ns, extra = parser.parse_known_args(argv)

    stem = runner.results_stem(ns.recipe, ns.config)
    config = runner.config_path(ns.recipe, ns.config)  # an unknown --config stops here
    if ns.summarise_only:  # the with-source rows are read again: the files (or WITH_SOURCE) may have grown
        payload = json.loads((Path(ns.out) / f"{stem}_source_free.json").read_text())
        payload["with_source"] = with_source_rows(ns.with_source or [Path(ns.out) / f"{stem}.json"], payload["seeds"])
        print(write_table(runner, Path(ns.out), stem, payload))
        return 0
    runner.use_backbones(ns.recipe, ns.config, ns.backbones)
    commit = runner._commit()
    work = Path(ns.work_dir).resolve() / stem
    data = Path(ns.work_dir).resolve() / "data"
    runner.prepare_environment(ns.recipe, ns.data_root, data)
    import transformers

    transformers.logging.set_verbosity_warning()

    out = Path(ns.out)
    with_source = [r for path in map(Path, ns.with_source or [out / f"{stem}.json"]) if path.is_file()
                   for r in json.loads(path.read_text())["runs"]]
    target_file = out / f"{stem}_source_free.json"
    earlier = json.loads(target_file.read_text()) if ns.append and target_file.is_file() else {"runs": []}
    previous = earlier["runs"]
    commit = runner.merged_commits(earlier.get("commit"), commit)
    runs: list[dict[str, Any]] = []
    for seed in ns.seeds:
        saved = work / f"seed{seed}" / "source_only"
        if not (saved / "adapter_config.json").is_file():
            print(f"[{ns.recipe}] seed {seed}: no source_only run in {saved}; training it first.", flush=True)
            runner.run_one(ns.recipe, "source_only", seed, work, extra, runner._existing_backbone(work, seed),
                           config_name=ns.config)
        shared = share_folder(saved, work / f"seed{seed}" / "source_only_shared")
        start = evaluate_start(config, shared, seed, work / f"seed{seed}", extra)
        runs.append({"method": "source_only", "seed": seed, **start})
        recorded = next((r for r in with_source if r["method"] == "source_only" and r["seed"] == seed), None)
        mine = start["metrics"].get("eval_target_accuracy")
        if recorded is not None and abs(recorded["metrics"].get("eval_target_accuracy", mine) - mine) > 1e-6:
            print(f"[{ns.recipe}] seed {seed}: the reloaded source-only model scores {mine:.4f} on the target, the "
                  f"recipe's run recorded {recorded['metrics']['eval_target_accuracy']:.4f}.", flush=True)
        for method in ns.methods:
            result = run_method(config, shared, method, seed, work / f"seed{seed}", extra)
            runs.append({"method": method, "seed": seed, **result})
            accuracy = result["metrics"].get("eval_target_accuracy", float("nan"))
            print(f"[{ns.recipe}] seed {seed} {method}: target acc {accuracy:.4f} ({result['seconds']} s)", flush=True)

    if ns.append:
        replaced = {(r["method"], r["seed"]) for r in runs}
        runs = [r for r in previous if (r["method"], r["seed"]) not in replaced] + runs
    seeds = sorted({r["seed"] for r in runs})  # with --append, the kept runs' seeds too
    compared = with_source_rows(ns.with_source or [out / f"{stem}.json"], seeds)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"recipe": ns.recipe, "config": ns.config, "commit": commit, "seeds": seeds, "overrides": extra,
               "method_overrides": method_overrides_of(runs),
               "start": "the recipe's source_only run folder, copied as a Hub download and reloaded",
               "selection": "last step (no target labels used for model selection)", "runs": runs,
               "with_source": compared}
    print(write_table(runner, out, stem, payload))
    return 0


def method_overrides_of(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The overrides of every source-free method with runs in the file: with ``--append``, the kept runs' methods
    too, not only this invocation's."""
    return {m: METHOD_OVERRIDES[m] for m in dict.fromkeys(r["method"] for r in runs) if m in METHOD_OVERRIDES}


def with_source_rows(files, seeds: list[int]) -> list[dict[str, Any]]:
    """The :data:`WITH_SOURCE` runs of run_recipe.py results ``files`` for ``seeds``, named "<method> (with source)"
    (a method in two files: the first file's runs)."""
    rows: list[dict[str, Any]] = []
    for path in map(Path, files):
        if not path.is_file():
            continue
        done = {r["method"] for r in rows}
        rows += [{**r, "method": f"{r['method']} (with source)"} for r in json.loads(path.read_text())["runs"]
                 if r["method"] in WITH_SOURCE and r["seed"] in seeds and f"{r['method']} (with source)" not in done]
    return rows


def write_table(runner, out: Path, stem: str, payload: dict[str, Any]) -> str:
    """``<stem>_source_free.json`` (with its summary) and ``.md`` from the payload's runs; returns the Markdown."""
    rows = payload["runs"] + payload["with_source"]
    order = ["source_only", *METHODS, *(r["method"] for r in rows)]  # source-only, SHOT, TENT, SAR, then the rest
    table = runner.summarise(rows, [m for m in dict.fromkeys(order) if any(r["method"] == m for r in rows)])
    payload = {**payload, "summary": table}
    (out / f"{stem}_source_free.json").write_text(json.dumps(payload, indent=2) + "\n")
    title, where = runner.title_of(stem, ", source-free (the source-only model adapted without the source data)")
    text = runner.markdown(title, table, payload["commit"], payload["seeds"], config=where)
    (out / f"{stem}_source_free.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
