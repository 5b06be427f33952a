"""Run the embedded demo for several seeds and print mean ± std of source/target accuracy.

    python benchmarks/demo_seeds.py --seeds 0 1 2 --output-dir outputs/demo_seeds

Writes ``demo_seeds.json`` in the output folder. This is the measurement the README quotes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from hf_transfer.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", default="outputs/demo_seeds")
    args = parser.parse_args()
    out = Path(args.output_dir)
    runs = [run_demo(output_dir=out / f"seed{seed}", seed=seed) for seed in args.seeds]
    summary = {}
    for method in ("source_only", "dann"):
        for key in ("source_accuracy", "target_accuracy", "target_f1"):
            values = [r[method][key] for r in runs]
            summary[f"{method}_{key}"] = (statistics.mean(values), statistics.pstdev(values))
    gains = [r["target_gain"] for r in runs]
    summary["target_gain"] = (statistics.mean(gains), statistics.pstdev(gains))
    print("\n| metric | mean | std |\n|---|---:|---:|")
    for key, (mean, std) in summary.items():
        print(f"| {key} | {mean:.3f} | {std:.3f} |")
    print("per-seed target gain:", [round(g, 3) for g in gains])
    (out / "demo_seeds.json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
