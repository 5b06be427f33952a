"""Host synchronisations per training step: a DANN step vs a plain LoRA step, counted with ``torch.profiler``.

On a GPU, every read of a device value by the host (``.item()``, ``bool(tensor)``, ``.tolist()``, a boolean
mask that sizes its output through ``nonzero``) waits for the stream to drain. On CPU nothing waits, but the
same reads are visible, so this script counts them per optimizer step, on CPU:

* ``torch.profiler`` ops that read a device value on the host: ``aten::_local_scalar_dense`` (``item``,
  ``bool``, ``float``, ``int`` of a tensor), ``aten::nonzero`` (boolean indexing), ``aten::masked_select``,
  ``aten::unique*``, ``aten::equal``;
* Python-level reads that the profiler cannot see on CPU (``tolist``, ``numpy``, ``cpu``), through a
  ``TorchFunctionMode``.

It trains the same small ViT with LoRA twice: plainly (``transformers.Trainer`` + a peft model, source rows
only) and with :class:`~hf_transfer.DomainAdaptationTrainer` (DANN; pass ``--methods`` for others), with the
same rows per step and no logging or saving inside the measured steps. Data loading is left out (it runs on
the host either way), and so is ``optimizer.step``: PyTorch's AdamW reads its per-parameter step counters,
which live on the host unless ``capturable``/``fused``, so those reads cost no device wait; they are counted
apart.

    OMP_NUM_THREADS=1 python benchmarks/profile_sync.py            # plain LoRA vs DANN
    python benchmarks/profile_sync.py --methods dann,cdan,mcc,mmd  # the other methods too
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::unique", "aten::_unique2",
            "aten::unique_consecutive", "aten::unique_dim", "aten::equal")
PYTHON_READS = ("tolist", "numpy", "cpu")
DATA_REGION = "hf_transfer::data"
WARMUP, MEASURED, BATCH = 2, 4, 4


class _PythonReads(TorchFunctionMode):
    """Counts host reads made from Python, outside the excluded regions."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.excluded = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in PYTHON_READS and not self.excluded:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


class _Window(TrainerCallback):
    """Profiles optimizer steps WARMUP .. WARMUP + MEASURED - 1."""

    def __init__(self) -> None:
        self.profiler: torch.profiler.profile | None = None
        self.reads = _PythonReads()

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == WARMUP:
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()
            self.reads.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == WARMUP + MEASURED:  # global_step was incremented before this call
            self.reads.__exit__(None, None, None)
            self.profiler.__exit__(None, None, None)


def _region(event) -> str:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == DATA_REGION:
            return "data"
        if parent.name.startswith("Optimizer.step"):
            return "optimizer"
        parent = parent.cpu_parent
    return "step"


def _count(trainer, window: _Window) -> dict[str, Counter[str]]:
    fetch = trainer.get_batch_samples

    def get_batch_samples(*args, **kwargs):
        window.reads.excluded += 1
        try:
            with torch.profiler.record_function(DATA_REGION):
                return fetch(*args, **kwargs)
        finally:
            window.reads.excluded -= 1

    trainer.get_batch_samples = get_batch_samples

    def pre(optimizer, args, kwargs):
        window.reads.excluded += 1

    def post(optimizer, args, kwargs):
        window.reads.excluded -= 1

    handles = [register_optimizer_step_pre_hook(pre),
               register_optimizer_step_post_hook(post)]
    try:
        trainer.train()
    finally:
        for handle in handles:
            handle.remove()
    regions: dict[str, Counter[str]] = {"step": Counter(), "optimizer": Counter(), "data": Counter()}
    for event in window.profiler.events():
        if event.name in SYNC_OPS:
            regions[_region(event)][event.name] += 1
    regions["step"].update({f"py:{k}": v for k, v in window.reads.counts.items()})
    return regions


def _vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       image_size=32, patch_size=8, num_labels=3)
    return ViTForImageClassification(config)


def _examples(n: int, shift: float, labelled: bool = True) -> list[dict]:
    generator = torch.Generator().manual_seed(int(shift * 10) + n)
    return [{"pixel_values": torch.randn(3, 32, 32, generator=generator) + shift,
             "labels": i % 3 if labelled else -100} for i in range(n)]


def _common(output_dir: str, **overrides) -> dict:
    return dict(output_dir=output_dir, max_steps=WARMUP + MEASURED, learning_rate=1e-3, report_to="none",
                save_strategy="no", logging_steps=1000, disable_tqdm=True, use_cpu=True, seed=0,
                dataloader_num_workers=0, **overrides)


def plain_lora(output_dir: str, **overrides) -> dict[str, Counter[str]]:
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    from hf_transfer.lora_targets import discover_lora_targets

    backbone = _vit()
    targets = discover_lora_targets(backbone, "auto", rank=8, exclude=["classifier"])  # what DANN's model uses
    model = get_peft_model(backbone, LoraConfig(r=8, lora_alpha=16, target_modules=targets,
                                                modules_to_save=["classifier"]))
    window = _Window()
    args = TrainingArguments(per_device_train_batch_size=2 * BATCH, remove_unused_columns=False,
                             **_common(output_dir, **overrides))
    trainer = Trainer(model=model, args=args, train_dataset=_examples(64, 0.0), data_collator=default_data_collator,
                      callbacks=[window])
    return _count(trainer, window)


def domain_adaptation(output_dir: str, method: str = "dann", **overrides) -> dict[str, Counter[str]]:
    from hf_transfer import DomainAdaptationArguments, DomainAdaptationModel, DomainAdaptationTrainer
    from hf_transfer.alignment.objective import AlignmentObjective

    args = DomainAdaptationArguments(per_device_train_batch_size=BATCH, method=method,
                                     **_common(output_dir, **overrides))
    model = DomainAdaptationModel.from_backbone(_vit(), lora_r=8, lora_alpha=16,
                                                objective=AlignmentObjective.from_arguments(args), seed=0)
    window = _Window()
    trainer = DomainAdaptationTrainer(model=model, args=args, source_dataset=_examples(64, 0.0),
                                      target_dataset=_examples(64, 1.0, labelled=False), callbacks=[window])
    return _count(trainer, window)


def _row(name: str, regions: dict[str, Counter[str]]) -> str:
    step = regions["step"]
    per_step = {k: v / MEASURED for k, v in step.items()}
    total = sum(per_step.values())
    detail = ", ".join(f"{k} {v:g}" for k, v in sorted(per_step.items())) or "none"
    optimizer = sum(regions["optimizer"].values()) / MEASURED
    return f"| {name} | {total:g} | {detail} | {optimizer:g} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="dann", help="comma-separated alignment methods (default: dann)")
    ns = parser.parse_args(argv)
    torch.set_num_threads(1)
    import logging

    logging.getLogger("hf_transfer").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nan_filter in (True, False):
            label = "" if nan_filter else ", logging_nan_inf_filter=False"
            rows.append(_row(f"plain LoRA (Trainer + peft){label}",
                             plain_lora(f"{tmp}/plain", logging_nan_inf_filter=nan_filter)))
            for method in ns.methods.split(","):
                rows.append(_row(f"{method} (DomainAdaptationTrainer){label}",
                                 domain_adaptation(f"{tmp}/{method}", method, logging_nan_inf_filter=nan_filter)))
    print(f"Host reads of device values per optimizer step (CPU, torch {torch.__version__}, mean of {MEASURED} "
          f"steps after {WARMUP}; data loading excluded):\n")
    print("| run | reads per step (forward, backward, loss checks, clipping) | which | optimizer.step (host-side "
          "step counters) |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print("\nThe Trainer's own `logging_nan_inf_filter` (default True) reads each micro-step's loss "
          "(`torch.isnan(loss) or torch.isinf(loss)`): two `aten::_local_scalar_dense` per step in both runs.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
