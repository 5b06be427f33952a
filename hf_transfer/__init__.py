"""hf_transfer: cross-domain transfer learning for Hugging Face backbones.

LoRA adapters (peft) + a domain-adversarial head (DANN), trained by a ``transformers.Trainer``
subclass on labelled source and unlabelled target data. Distribution name on PyPI:
``hf-transfer-learning`` (not to be confused with Hugging Face's ``hf-transfer`` download helper).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "DomainAdaptationModel": "hf_transfer.modeling",
    "DomainAdaptationOutput": "hf_transfer.modeling",
    "DomainAdaptationTrainer": "hf_transfer.trainer",
    "DomainAdaptationArguments": "hf_transfer.training_args",
    "grl_lambda": "hf_transfer.alignment.schedules",
    "discover_lora_targets": "hf_transfer.lora_targets",
    "load_backbone": "hf_transfer.backbones",
    "push_to_hub": "hf_transfer.hub",
    "load_adapted_model": "hf_transfer.hub",
    "download_adapted_model": "hf_transfer.hub",
    "fuse_adapters": "hf_transfer.fusion",
    "AdapterRouter": "hf_transfer.fusion",
    "evaluate_fusion": "hf_transfer.fusion",
    "TaskSpec": "hf_transfer.auxiliary",
    "tasks_for": "hf_transfer.auxiliary",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .alignment.schedules import grl_lambda
    from .auxiliary import TaskSpec, tasks_for
    from .backbones import load_backbone
    from .fusion import AdapterRouter, evaluate_fusion, fuse_adapters
    from .hub import download_adapted_model, load_adapted_model, push_to_hub
    from .lora_targets import discover_lora_targets
    from .modeling import DomainAdaptationModel, DomainAdaptationOutput
    from .trainer import DomainAdaptationTrainer
    from .training_args import DomainAdaptationArguments


def __getattr__(name: str) -> Any:
    # Lazy, like transformers: `import hf_transfer` stays cheap (the CLI's --help, the Hub helpers).
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hf_transfer' has no attribute {name!r}")
