"""Adapter fusion and routing vs each domain's own adapter: speech, one source, two target speakers.

    python benchmarks/fusion_benchmark.py --data-root ../shared/data
    python benchmarks/fusion_benchmark.py --data-root ../shared/data --targets george nicolas --seeds 0 1 2
    python benchmarks/fusion_benchmark.py --data-root ../shared/data --config pretrained --backbones DIR \
        --training.domain_loss_weight 0.1

For each seed, the speech recipe (``recipes/speech/local.yaml``, DANN) trains one adapter per target speaker
(the source speakers are the recipe's, jackson and theo), all on the *same* source-pretrained backbone (the first
target's run pretrains it, the others adapt it), so the adapters share their base and can be fused. Then, on each
target's test split (and the source's):

* ``own``: the target's own adapter (the reference; the goal is to stay within 1 point of it);
* ``fused_<combination>``: the adapters fused by :func:`hf_transfer.fusion.fuse_adapters` (``cat``: the exact
  weighted sum of the LoRA updates; ``linear``; ``ties`` at density 0.5), equal weights, heads averaged;
* ``routed_domain_classifier``: each input routed to its predicted speaker's adapter, by a domain classifier fitted
  on the base model's features of unlabelled train-split inputs of each target (never their labels);
* ``routed_discriminators``: routed by each adapter's own DANN discriminator (no fitting).

``--config pretrained`` runs ``recipes/speech/pretrained.yaml`` (Whisper tiny.en converted offline, ``--backbones
DIR``; no pretraining stage, so the adapters share the pretrained encoder) into ``fusion_speech_pretrained``.

Model selection uses no target labels (the last step of each run). Writes ``<out>/fusion_speech[_<config>].json`` and
``.md`` (mean ± std of accuracy over seeds, per domain, and the gap to ``own``). The trained
adapters keep their results in their folders: the same command run again resumes an interrupted benchmark.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMBINATIONS = (("cat", None), ("linear", None), ("ties", 0.5))
ROUTERS = ("domain_classifier", "discriminators")


def _runner():
    spec = importlib.util.spec_from_file_location("run_recipe", Path(__file__).with_name("run_recipe.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_seed(seed: int, targets: list[str], data: dict[str, Path], work: Path, extra: list[str],
             config: str = "local") -> dict[str, Any]:
    """Train one DANN adapter per target on a shared backbone; evaluate own / fused / routed on every domain."""
    from hf_transfer.fusion import evaluate_fusion, fuse_adapters

    runner = _runner()
    backbone = runner._existing_backbone(work, seed)
    adapters = []
    for target in targets:
        overrides = [*extra, "--source.dataset", str(data[target] / "source"), "--target.dataset", str(data[target] / "target")]
        result = runner.cached_run(  # a re-invoked benchmark reuses the adapters an interrupted one trained
            work / f"seed{seed}" / f"dann_{target}",
            lambda: runner.run_one("speech", "dann", seed, work, overrides, backbone, name=f"dann_{target}",
                                   config_name=config), overrides)
        backbone = backbone or result["pretrained_backbone"]
        adapters.append(work / f"seed{seed}" / f"dann_{target}")
    domains = {t: {"dataset": str(data[t] / "target"), "split": "test"} for t in targets}
    domains["source"] = {"dataset": str(data[targets[0]] / "source"), "split": "test"}
    fit_on = {t: {"dataset": str(data[t] / "target"), "split": "train"} for t in targets}
    rows: dict[str, dict[str, float]] = {d: {} for d in domains}
    for combination, density in COMBINATIONS:
        fused = fuse_adapters(adapters, work / f"seed{seed}" / f"fused_{combination}", names=targets,
                              combination_type=combination, density=density)
        first = combination == COMBINATIONS[0][0]
        results = evaluate_fusion(adapters, domains, names=targets, fused_dir=fused, route=first,
                                  router_scores="domain_classifier", router_domains=fit_on)
        for domain, row in results.items():
            rows[domain][f"fused_{combination}"] = row["fused"]["accuracy"]
            if first:
                rows[domain]["routed_domain_classifier"] = row["routed"]["accuracy"]
                if "own" in row:
                    rows[domain]["own"] = row["own"]["accuracy"]
                    rows[domain]["routing_accuracy_domain_classifier"] = row["routing_accuracy"]
    results = evaluate_fusion(adapters, domains, names=targets, route=True, router_scores="discriminators")
    for domain, row in results.items():
        rows[domain]["routed_discriminators"] = row["routed"]["accuracy"]
        if "routing_accuracy" in row:
            rows[domain]["routing_accuracy_discriminators"] = row["routing_accuracy"]
    return rows


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """domain → column → mean and population std over seeds, as in the other tables, and ``gap_to_own``: the mean
    over seeds of column − own."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for domain in runs[0]["rows"]:
        columns = list(dict.fromkeys(c for run in runs for c in run["rows"][domain]))
        table[domain] = {}
        for column in columns:
            values = [run["rows"][domain][column] for run in runs if column in run["rows"][domain]]
            entry = {"mean": statistics.mean(values), "std": statistics.pstdev(values)}
            owns = [run["rows"][domain].get("own") for run in runs]
            if column != "own" and all(o is not None for o in owns) and not column.startswith("routing_"):
                entry["gap_to_own"] = statistics.mean(run["rows"][domain][column] - run["rows"][domain]["own"] for run in runs)
            table[domain][column] = entry
    return table


def markdown(table: dict[str, dict[str, dict[str, float]]], seeds: list[int], targets: list[str], commit: str,
             config: str = "local") -> str:
    """One table, a row per way of serving the domains and a column per domain: accuracy (mean ± std over seeds)
    and, in brackets, the mean difference to that domain's own adapter (points)."""
    domains = list(table)
    rows = list(dict.fromkeys(c for columns in table.values() for c in columns))
    runner = _runner()
    title = "speech" if config == "local" else runner.title_of(runner.results_stem("speech", config))[0]
    lines = [f"**{title}, adapter fusion and routing: one DANN adapter per target speaker ({', '.join(targets)}) on "
             f"a shared backbone** (`recipes/speech/{config}.yaml`; seeds {', '.join(map(str, seeds))}; commit "
             f"`{commit}`; last-step adapters, no target-label selection)", "",
             "| | " + " | ".join(domains) + " |", "|---|" + "---:|" * len(domains)]
    for row in rows:
        cells = []
        for domain in domains:
            entry = table[domain].get(row)
            if entry is None:
                cells.append("–")
                continue
            gap = f" ({100 * entry['gap_to_own']:+.1f})" if "gap_to_own" in entry else ""
            cells.append(f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f}{gap}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Accuracy on each domain's test split; (Δ) = the row − the domain's own adapter, in points. "
              "`routing_accuracy_*`: how often the router sent an input to its own domain's adapter."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--work-dir", default="outputs/benchmarks", help="Prepared data and run outputs go here.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="Where the JSON/Markdown go.")
    parser.add_argument("--targets", nargs="+", default=["george", "nicolas"], help="Target speakers, one adapter each.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default="local", help="recipes/speech/<CONFIG>.yaml (local or pretrained).")
    parser.add_argument("--backbones", default=os.environ.get("HF_TRANSFER_BACKBONES"),
                        help="The folder of converted offline backbones (for --config pretrained).")
    parser.add_argument("--summarise-only", action="store_true", help="Rewrite the Markdown table from its JSON.")
    parser.epilog = "Any --section.field value argument is passed on to every training run as a config override."
    ns, extra = parser.parse_known_args(argv)
    if len(ns.targets) < 2:
        parser.error("--targets needs two or more speakers (one adapter each).")
    out = Path(ns.out)
    runner = _runner()
    stem = f"fusion_{runner.results_stem('speech', ns.config)}"
    runner.config_path("speech", ns.config)  # an unknown --config stops here
    if ns.summarise_only:
        payload = json.loads((out / f"{stem}.json").read_text())
        text = markdown(payload["summary"], payload["seeds"], payload["targets"], payload["commit"],
                        payload.get("config", "local"))
        (out / f"{stem}.md").write_text(text)
        print(text)
        return 0
    if not ns.data_root:
        parser.error("--data-root is required (except with --summarise-only)")
    runner.use_backbones("speech", ns.config, ns.backbones)
    commit = runner._commit()
    prepare = runner._prepare_module().prepare
    work = Path(ns.work_dir).resolve() / stem
    data = {}
    for target in ns.targets:
        prepare("speech", ns.data_root, work / "data" / target, target_speakers=[target], printer=None)
        data[target] = work / "data" / target / "speech"
    os.environ["HF_TRANSFER_DATA"] = str(work / "data" / ns.targets[0])  # the recipe's paths; each run overrides them
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runs = [{"seed": seed, "rows": run_seed(seed, ns.targets, data, work, extra, ns.config)} for seed in ns.seeds]
    table = summarise(runs)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": stem, "config": ns.config, "commit": commit, "seeds": ns.seeds, "targets": ns.targets,
               "overrides": extra, "selection": "last step (no target labels used for model selection)",
               "summary": table, "runs": runs}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = markdown(table, ns.seeds, ns.targets, commit, ns.config)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
