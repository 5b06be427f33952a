"""Put the benchmark tables (``benchmarks/results/*.md``, written by ``run_recipe.py``) into README.md.

    python benchmarks/collect_results.py

Replaces everything between ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->`` in the
top-level README with the recipes' tables, in a fixed order, so the README always shows what the
result files say (each table names the commit it was produced at).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hf_transfer.utils.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
GROUPS = (
    ("#### On real pretrained backbones (EfficientNet-Lite0, Whisper tiny.en, all-MiniLM-L6-v2)",
     ("speech_pretrained", "digits_pretrained", "medical_pretrained", "finance", "finance_mmd")),
    ("#### Source-free: the source-only model adapted without the source data (`run_source_free.py`)",
     ("speech_pretrained_source_free", "digits_pretrained_source_free", "medical_pretrained_source_free",
      "finance_source_free")),
    ("#### A few target labels (`run_few_shot.py`)",
     ("medical_pretrained_few_shot", "speech_pretrained_few_shot", "digits_few_shot", "finance_few_shot",
      "finance_few_shot_10_seeds")),
    ("#### Several sources (`run_multi_source.py`)", ("speech_pretrained_multi_source", "finance_multi_source")),
    ("#### Fusing and routing adapters (`fusion_benchmark.py`)", ("fusion_speech_pretrained", "fusion_speech")),
    ("#### Label-free selection: what a sweep picks without target labels (`selection.py`)",
     ("digits_selection", "speech_pretrained_selection", "finance_selection", "medical_selection",
      "digits_selection_median", "digits_selection_halving")),
    ("#### The self-supervised rotation task beside the alignment (`run_recipe.py`, Sun et al. 2019)",
     ("digits_rotation", "medical_rotation")),
    ("#### On from-scratch backbones (tiny networks pretrained on the source here; `local.yaml`)",
     ("digits", "digits_mmd", "digits_before_after", "speech", "speech_mmd", "speech_extra", "medical", "medical_mmd",
      "medical_stainpre")),
)
"""The README's table groups, in order: real pretrained backbones first, then the from-scratch ones."""
ORDER = tuple(name for _, names in GROUPS for name in names)
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def render(results: Path) -> str:
    parts = []
    for heading, names in GROUPS:
        tables = [(results / f"{name}.md").read_text().strip() for name in names if (results / f"{name}.md").is_file()]
        if tables:
            parts += [heading, *tables]
    return "\n\n".join(parts) if parts else "_No benchmark results yet: run `python benchmarks/run_recipe.py`._"


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"README.md lacks the {START} / {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render(ROOT / 'benchmarks' / 'results')}\n{END}{tail}"
    write_text_atomic(readme, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
