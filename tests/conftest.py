"""Shared fixtures: tiny offline backbones and synthetic two-domain data.

Everything here is built from configs in memory: no network, no ../shared/data.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

LABELS = ["a", "b", "c"]


def _checkpointing_argument() -> str:
    """The TrainingArguments field that turns activation checkpointing on: ``activation_checkpointing`` from
    transformers 5.23, ``gradient_checkpointing`` before (the model answers both: see ``DomainAdaptationModel``)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


CHECKPOINTING = _checkpointing_argument()


def tiny_vit_config(num_labels: int = 3, **overrides):
    from transformers import ViTConfig

    labels = LABELS[:num_labels] if num_labels <= len(LABELS) else [str(i) for i in range(num_labels)]
    kwargs = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
        num_labels=num_labels,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    kwargs.update(overrides)
    return ViTConfig(**kwargs)


@pytest.fixture
def tiny_vit():
    from transformers import ViTForImageClassification

    torch.manual_seed(0)
    return ViTForImageClassification(tiny_vit_config())


def make_domain(n: int, *, shift: float = 0.0, seed: int = 0, labelled: bool = True) -> list[dict]:
    """``n`` 3×16×16 examples whose class is written in the mean of one channel; ``shift`` offsets all pixels."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(n):
        label = i % len(LABELS)
        pixels = torch.randn(3, 16, 16, generator=generator) * 0.5
        pixels[label] += 1.5
        examples.append({"pixel_values": pixels + shift, "labels": label if labelled else -100})
    return examples


@pytest.fixture
def two_domains():
    return make_domain(24, seed=1), make_domain(16, shift=2.0, seed=2, labelled=False)


def build_model(backbone=None, **kwargs):
    from hf_transfer.modeling import DomainAdaptationModel
    from transformers import ViTForImageClassification

    if backbone is None:
        torch.manual_seed(0)
        backbone = ViTForImageClassification(tiny_vit_config())
    defaults = dict(lora_r=4, lora_alpha=8, discriminator_hidden_size=16, discriminator_dropout=0.0)
    defaults.update(kwargs)
    return DomainAdaptationModel.from_backbone(backbone, **defaults)


def train_args(tmp_path, **kwargs):
    from hf_transfer.training_args import DomainAdaptationArguments

    defaults = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        use_cpu=True,
    )
    defaults.update(kwargs)
    return DomainAdaptationArguments(**defaults)


def _image_tree(root, classes, n, colour_shift):
    rng = np.random.default_rng(len(str(root)))
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 60, size=(16, 16, 3))
            pixels[:, :, label] += 150
            pixels = np.clip(pixels + colour_shift, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{i}.png")


@pytest.fixture
def tiny_setup(tmp_path):
    from transformers import ViTForImageClassification, ViTImageProcessor

    classes = ["a", "b", "c"]
    _image_tree(tmp_path / "source", classes, 4, 0)
    _image_tree(tmp_path / "target", classes, 4, 60)
    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config()).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "vit")
    config = {
        "model": {"model_name_or_path": str(tmp_path / "vit")},
        "source": {"dataset": str(tmp_path / "source"), "description": "plain squares"},
        "target": {"dataset": str(tmp_path / "target"), "eval_split": None, "description": "brighter squares"},
        "training": {
            "output_dir": str(tmp_path / "out"),
            "max_steps": 2,
            "per_device_train_batch_size": 4,
            "lora_r": 4,
            "discriminator_hidden_size": 8,
            "report_to": "none",
            "save_strategy": "no",
            "disable_tqdm": True,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return tmp_path, path
