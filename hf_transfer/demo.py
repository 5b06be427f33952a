"""The embedded default: a real source → target adaptation run, offline, in minutes on a CPU.

Source domain: scikit-learn's handwritten digits (bundled with the package, no download),
white strokes on black. Target domain: the *other* half of those digits, each re-printed
with a random ink colour on a random paper colour (:func:`shift_to_target`). Shapes and
labels are the same; colour, brightness and contrast are not, and differ from image to image.

Steps: pretrain a tiny ViT fully on the source (the "pretrain on source" stage), then train
LoRA ``source_only`` and LoRA ``dann`` with the same budget and seed, and compare source and
target accuracy on held-out splits. Target labels are used for evaluation only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

IMAGE_SIZE = 16
LABELS = [str(i) for i in range(10)]


@dataclass
class DigitDomains:
    """Tensor datasets of the demo shift (lists of ``{"pixel_values", "labels"}``)."""

    source_train: list[dict[str, Any]]
    source_test: list[dict[str, Any]]
    target_train: list[dict[str, Any]]
    target_test: list[dict[str, Any]]


def _to_images(digits: np.ndarray) -> np.ndarray:
    """8×8 digits in [0, 16] → 16×16 grey RGB in [0, 1]."""
    images = torch.from_numpy(digits.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0)
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return images.repeat(1, 3, 1, 1).clamp(0, 1).numpy()


def shift_to_target(
    images: np.ndarray,
    seed: int,
    paper: tuple[float, float] = (0.0, 0.6),
    ink: tuple[float, float] = (0.7, 1.0),
) -> np.ndarray:
    """Paper/ink shift: each digit is re-printed with a random ink colour on a random paper colour.

    Per image and per RGB channel, ``out = paper_c · (1 − x) + ink_c · x`` with ``paper_c`` and
    ``ink_c`` drawn uniformly from the two ranges: the kind of colour/contrast change a different
    scanner or stain gives. Ink stays brighter than paper, so shapes and labels are unchanged,
    but every image has its own tint, brightness and contrast, none of which the source (white
    on black) ever shows. A shared feature map *can* undo it (a LoRA update that removes the
    per-patch mean colour, followed by ViT's LayerNorm) — which is exactly what DANN's domain
    loss pushes the features towards and what source-only training has no reason to learn.
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    paper_colour = rng.uniform(*paper, size=(n, 3, 1, 1)).astype(np.float32)
    ink_colour = rng.uniform(*ink, size=(n, 3, 1, 1)).astype(np.float32)
    return paper_colour * (1 - images) + ink_colour * images


def _examples(images: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    pixels = (torch.from_numpy(images) - 0.5) / 0.5
    return [{"pixel_values": p, "labels": int(y)} for p, y in zip(pixels, labels)]


def make_digit_domains(seed: int = 0, target_fraction: float = 0.5, test_fraction: float = 0.25, **shift_kwargs) -> DigitDomains:
    """Split sklearn's 1,797 digits into disjoint source and target halves, each with a held-out test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    n_target = int(len(order) * target_fraction)
    source_idx, target_idx = order[n_target:], order[:n_target]
    source_images, target_images = _to_images(digits.data[source_idx]), _to_images(digits.data[target_idx])
    target_images = shift_to_target(target_images, seed + 1, **shift_kwargs)
    ys, yt = digits.target[source_idx], digits.target[target_idx]
    ns, nt = int(len(ys) * test_fraction), int(len(yt) * test_fraction)
    return DigitDomains(
        source_train=_examples(source_images[ns:], ys[ns:]),
        source_test=_examples(source_images[:ns], ys[:ns]),
        target_train=_examples(target_images[nt:], yt[nt:]),
        target_test=_examples(target_images[:nt], yt[:nt]),
    )


@dataclass
class DemoSettings:
    """Everything the demo's result depends on, in one place (the README quotes these)."""

    hidden_size: int = 64
    num_layers: int = 4
    pretrain_epochs: int = 40
    pretrain_learning_rate: float = 1e-3
    adapt_steps: int = 600
    adapt_learning_rate: float = 2e-3
    batch_size: int = 32
    lora_r: int = 8
    lora_target_modules: str = "attention+conv"
    discriminator_hidden_size: int = 64
    domain_loss_weight: float = 0.3
    grl_max_lambda: float = 1.0
    paper_max: float = 0.6
    ink_min: float = 0.7


def _vit_config(settings: DemoSettings):
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=4,
        intermediate_size=2 * settings.hidden_size,
        image_size=IMAGE_SIZE,
        patch_size=4,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        hidden_dropout_prob=0.1,
    )


def _image_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_rescale=True
    )


def pretrain_demo_backbone(domains: DigitDomains, settings: DemoSettings, output_dir: Path, seed: int) -> tuple[Path, float]:
    """Stage 1: fully fine-tune a randomly initialised tiny ViT on the source digits."""
    from transformers import TrainingArguments, ViTForImageClassification, set_seed

    from .pretraining import pretrain_on_source

    set_seed(seed)
    backbone_dir = output_dir / "source-pretrained-vit"
    args = TrainingArguments(
        output_dir=str(output_dir / "pretraining"),
        num_train_epochs=settings.pretrain_epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.pretrain_learning_rate,
        weight_decay=0.05,
        warmup_steps=0.1,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=False,  # the longest stage: its progress bar says how far it is
        seed=seed,
        dataloader_pin_memory=False,
    )
    metrics = pretrain_on_source(
        ViTForImageClassification(_vit_config(settings)),
        domains.source_train,
        args,
        eval_dataset=domains.source_test,
        processor=_image_processor(),
        save_directory=backbone_dir,
    )
    return backbone_dir, float(metrics["eval_accuracy"])


def adapt(
    method: str,
    domains: DigitDomains,
    backbone_dir: Path,
    settings: DemoSettings,
    output_dir: Path,
    seed: int,
    baseline: dict[str, float] | None = None,
) -> tuple[dict[str, float], Any]:
    """Stage 2: LoRA ``source_only`` or ``dann`` from the source-pretrained backbone, same budget and seed.

    ``baseline`` (the source-only run's metrics) is recorded in the saved run info, so the card compares with it.
    """
    from transformers import ViTForImageClassification, set_seed

    from .alignment.objective import AlignmentObjective
    from .modeling import DomainAdaptationModel
    from .progress import readable_progress
    from .trainer import DomainAdaptationTrainer
    from .training_args import DomainAdaptationArguments

    args = DomainAdaptationArguments(
        output_dir=str(output_dir / method),
        method=method,
        max_steps=settings.adapt_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.adapt_learning_rate,
        warmup_steps=0.05,
        domain_loss_weight=settings.domain_loss_weight,
        grl_max_lambda=settings.grl_max_lambda,
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        seed=seed,
    )
    set_seed(seed)  # before the backbone is loaded and LoRA and the discriminator are drawn
    model = DomainAdaptationModel.from_backbone(
        ViTForImageClassification.from_pretrained(backbone_dir),
        objective=AlignmentObjective.from_arguments(args),
        lora_r=settings.lora_r,
        lora_alpha=2 * settings.lora_r,
        lora_target_modules=settings.lora_target_modules,
        discriminator_hidden_size=settings.discriminator_hidden_size,
    )
    model.run_info.source_domain = {
        "dataset": None, "split": "train", "eval_split": "test",
        "description": "scikit-learn handwritten digits, white on black",
    }
    model.run_info.target_domain = {
        "dataset": None, "split": "train", "eval_split": "test",
        "description": "the other half of those digits, re-printed in a random ink colour on a random paper colour",
    }
    model.run_info.license = "bsd-3-clause"  # scikit-learn's digits (UCI optdigits copy shipped by scikit-learn)
    if baseline is not None:
        model.run_info.baseline = {"method": "source_only", "metrics": {f"eval_{k}": v for k, v in baseline.items()}}
    unlabelled_target = [{"pixel_values": e["pixel_values"], "labels": -100} for e in domains.target_train]
    trainer = DomainAdaptationTrainer(
        model=model,
        args=args,
        source_dataset=domains.source_train,
        target_dataset=unlabelled_target,
        eval_datasets={"source": domains.source_test, "target": domains.target_test},
        processing_class=_image_processor(),
    )
    readable_progress(trainer, method)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(output_dir / method))
    return metrics, trainer


def run_demo(output_dir: str | os.PathLike = "outputs/demo", seed: int = 0, settings: DemoSettings | None = None) -> dict[str, Any]:
    """Pretrain on source, adapt with LoRA source-only and LoRA+DANN, print and return the comparison."""
    import transformers

    settings = settings or DemoSettings()
    output_dir = Path(output_dir)
    start = time.time()
    transformers.logging.set_verbosity_warning()
    domains = make_digit_domains(
        seed, paper=(0.0, settings.paper_max), ink=(settings.ink_min, 1.0)
    )
    print(
        f"[1/3] Source: {len(domains.source_train)} digits (white on black); target: {len(domains.target_train)} "
        f"unlabelled digits in random ink/paper colours. Pretraining a tiny ViT on the source "
        f"({settings.pretrain_epochs} epochs; the longest stage)...",
        flush=True,
    )
    backbone_dir, pretrain_accuracy = pretrain_demo_backbone(domains, settings, output_dir, seed)
    print(f"      source accuracy of the pretrained ViT: {pretrain_accuracy:.3f}", flush=True)
    results: dict[str, Any] = {"seed": seed, "pretrain_source_accuracy": pretrain_accuracy}
    for step, method in ((2, "source_only"), (3, "dann")):
        print(f"[{step}/3] LoRA {method} ({settings.adapt_steps} steps, then evaluation on both test splits)...",
              flush=True)
        metrics, trainer = adapt(method, domains, backbone_dir, settings, output_dir, seed, baseline=results.get("source_only"))
        results[method] = {k: metrics[f"eval_{k}"] for k in ("source_accuracy", "source_f1", "target_accuracy", "target_f1")}
    results["target_gain"] = results["dann"]["target_accuracy"] - results["source_only"]["target_accuracy"]
    results["shift"] = _shift_report(trainer, output_dir / "dann")  # the DANN run's: A-distance before/after, pictures
    write_demo_card(output_dir / "dann")
    results["seconds"] = round(time.time() - start, 1)
    (output_dir / "demo_results.json").write_text(json.dumps(results, indent=2))
    print(format_results(results, output_dir))
    return results


def _shift_report(trainer: Any, adapter_dir: Path) -> dict[str, Any] | None:
    """A-distance before/after adaptation and the pictures, written next to the adapter and into its run info."""
    from .diagnostics.report import shift_report

    report = shift_report(trainer, output_dir=adapter_dir, max_examples=300)
    if report is None:
        return None
    trainer.accelerator.unwrap_model(trainer.model).run_info.write(adapter_dir)
    return {**report.to_run_info(), "pictures": [str(adapter_dir / name) for name in report.pictures.values()],
            "notice": report.notice}


def write_demo_card(adapter_dir: Path) -> Path:
    """Render the adapter's model card (README.md) for the demo's example repo id."""
    from .artifacts import MODEL_CARD_NAME
    from .cards import build_model_card
    from .utils.io import write_text_atomic

    card = build_model_card(adapter_dir, repo_id="your-username/hf-transfer-digits-demo", domain="generic")
    card_path = adapter_dir / MODEL_CARD_NAME
    write_text_atomic(card_path, str(card))
    return card_path


def format_results(results: dict[str, Any], output_dir: Path) -> str:
    rows = [
        "",
        "| method      | source acc | source F1 | target acc | target F1 |",
        "|-------------|-----------:|----------:|-----------:|----------:|",
    ]
    for method in ("source_only", "dann"):
        r = results[method]
        rows.append(
            f"| {method:<11} | {r['source_accuracy']:10.3f} | {r['source_f1']:9.3f} | "
            f"{r['target_accuracy']:10.3f} | {r['target_f1']:9.3f} |"
        )
    head = [
        "",
        f"Adapter + discriminator + domain_adaptation.json: {output_dir / 'dann'}",
        f"Model card: {output_dir / 'dann' / 'README.md'} (push with: hf-transfer push {output_dir / 'dann'} USER/REPO "
        "--base-model-repo-id USER/BASE --push-base-model)",
    ]
    shift = results.get("shift")
    if shift:
        rows.append(
            f"Proxy A-distance between source and target features (0 = indistinguishable, 2 = separable): "
            f"{shift['a_distance_before']:.3f} before adaptation, {shift['a_distance_after']:.3f} after DANN."
        )
        rows.append(f"Pictures: {', '.join(shift['pictures'])}" if shift["pictures"] else shift.get("notice") or "")
    return "\n".join(head + rows + ["", verdict(results)])


def verdict(results: dict[str, Any]) -> str:
    """The demo's last line: did DANN beat source-only on the target, by how much, for this seed and time."""
    gain = 100 * results["target_gain"]
    outcome = ("DANN beats source-only on the target" if gain > 0 else
               "DANN trails source-only on the target" if gain < 0 else "DANN and source-only tie on the target")
    return f"Verdict: {outcome} ({gain:+.1f} points: target accuracy {results['dann']['target_accuracy']:.3f} vs " \
           f"{results['source_only']['target_accuracy']:.3f}; seed {results['seed']}, {results['seconds']} s)."
