"""A classification backbone with LoRA adapters and a domain-adversarial head.

:class:`DomainAdaptationModel` wraps any ``AutoModelFor*Classification`` backbone:

* peft LoRA on modules discovered from the loaded model (:mod:`hf_transfer.lora_targets`),
  the classification head trained fully (``modules_to_save``);
* a forward pre-hook on the classifier captures the features that enter it, so the
  domain discriminator sees the same representation the task head does, for every
  backbone, without knowing its internals;
* one forward over the concatenated source + target batch returns the classification
  loss on labelled examples (``-100`` = unlabelled) and the domain loss on all of them.

The discriminator runs on every training batch and its loss is always in the graph
(weighted by zero for ``source_only``), so DDP never sees unused parameters.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .alignment import (
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    DomainDiscriminator,
    MinimumClassConfusionLoss,
    class_importance_weights,
)
from .backbones import TASK_BY_MODALITY, classification_head_modules, load_backbone
from .lora_targets import discover_lora_targets, is_lora_policy
from .utils.io import atomic_directory_update, write_json_atomic

logger = logging.getLogger(__name__)

DISCRIMINATOR_WEIGHTS_NAME = "domain_discriminator.safetensors"
DOMAIN_ADAPTATION_CONFIG_NAME = "domain_adaptation.json"
_CLASSIFIER_ATTRIBUTES = ("classifier", "score", "fc", "head", "cls_head")
_MODALITY_BY_INPUT = {"pixel_values": "image", "input_values": "audio", "input_features": "audio", "input_ids": "text"}


class MissingClassifierError(ValueError):
    """The backbone has no classification head to adapt."""


def find_classifier(model: nn.Module) -> str:
    """Name of the classification head inside ``model``.

    Looks at timm's ``get_classifier()`` (through ``TimmWrapperForImageClassification``), then at
    the attribute names transformers uses, then at the last ``nn.Linear`` producing
    ``config.num_labels`` outputs.
    """
    names = {id(module): name for name, module in model.named_modules()}
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None and hasattr(timm_model, "get_classifier"):
        head = timm_model.get_classifier()
        if isinstance(head, nn.Module) and id(head) in names and any(isinstance(m, nn.Linear) for m in head.modules()):
            return names[id(head)]
    for attribute in _CLASSIFIER_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if isinstance(module, nn.Module) and any(isinstance(m, nn.Linear) for m in module.modules()):
            return attribute
    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
    if linears:
        return linears[-1]
    raise MissingClassifierError(
        f"{type(model).__name__} has no classification head. Load the backbone with an "
        "AutoModelFor*Classification class (e.g. AutoModelForImageClassification.from_pretrained(id, num_labels=...)) "
        "or hf_transfer.backbones.load_backbone, which picks the right one."
    )


def infer_modality(model: nn.Module) -> str:
    """``image`` / ``audio`` / ``text`` from the backbone's main input name."""
    main_input = getattr(model, "main_input_name", None)
    if main_input not in _MODALITY_BY_INPUT:
        raise ValueError(f"Cannot tell the modality of {type(model).__name__} (main input {main_input!r}).")
    return _MODALITY_BY_INPUT[main_input]


def pool_features(features: torch.Tensor) -> torch.Tensor:
    """Turn what enters a classifier into one vector per example.

    (B, H) stays; (B, C, 1, 1) or (B, C, H, W) conv maps are averaged over space;
    (B, T, H) token sequences (RoBERTa-style heads) keep the first token.
    """
    if features.dim() == 2:
        return features
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    if features.dim() == 3:
        return features[:, 0]
    return features.flatten(1)


def _first_linear(module: nn.Module) -> nn.Linear:
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return sub
    raise MissingClassifierError(f"The classification head {type(module).__name__} has no nn.Linear layer.")


@dataclass
class DomainAdaptationOutput(ModelOutput):
    """Output of :class:`DomainAdaptationModel`; domain fields are set when ``domain_labels`` are given."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    classification_loss: torch.Tensor | None = None
    domain_loss: torch.Tensor | None = None
    domain_accuracy: torch.Tensor | None = None
    mcc_loss: torch.Tensor | None = None


class DomainAdaptationModel(nn.Module):
    """Backbone + LoRA (peft) + domain discriminator behind a gradient reversal layer.

    Build one with :meth:`from_backbone`; reload a saved one with :meth:`from_pretrained`.
    ``domain_loss_weight`` is the trade-off weight of the domain loss (0 = source-only) and
    ``self.domain_loss.grl.coeff`` is λ; the trainer sets both. ``discriminator`` is a
    :class:`DomainDiscriminator` (DANN) or a ready domain loss such as
    :class:`~hf_transfer.alignment.ConditionalDomainAdversarialLoss` (CDAN).
    """

    def __init__(
        self,
        peft_model: PeftModel,
        discriminator: DomainDiscriminator | DomainAdversarialLoss,
        classifier_name: str,
        *,
        metadata: dict[str, Any] | None = None,
        domain_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = peft_model
        self.domain_loss = (
            discriminator if isinstance(discriminator, DomainAdversarialLoss) else DomainAdversarialLoss(discriminator)
        )
        self.classifier_name = classifier_name
        self.domain_loss_weight = float(domain_loss_weight)
        self.class_weighted_alignment = False  # IWDAN: re-weight source classes to the target's estimated mix
        self.mcc_loss_weight = 0.0  # > 0 adds Minimum Class Confusion on the target rows
        self.mcc_loss = MinimumClassConfusionLoss()
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._features: list[torch.Tensor] = []
        classifier = self.backbone.get_submodule(classifier_name)
        classifier.register_forward_pre_hook(self._capture_features)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_backbone(
        cls,
        backbone: PreTrainedModel,
        *,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        lora_target_modules: str | list[str] | None = "auto",
        discriminator_hidden_size: int = 256,
        discriminator_num_layers: int = 2,
        discriminator_dropout: float = 0.1,
        base_model_name_or_path: str | None = None,
        domain_loss_weight: float = 1.0,
        conditional_alignment: bool = False,
        entropy_conditioning: bool = True,
        randomized_dim: int = 1024,
    ) -> "DomainAdaptationModel":
        """Wrap ``backbone`` with LoRA and a fresh domain discriminator.

        ``lora_target_modules`` is a policy (``auto``, ``attention``, ``conv``, ``pointwise``, ``all-linear``),
        a comma-separated string or a list of module names. ``conditional_alignment`` builds a CDAN
        discriminator (on features ⊗ predictions, with ``entropy_conditioning`` and a
        ``randomized_dim`` map for large heads) instead of DANN's.
        """
        classifier_name = find_classifier(backbone)
        feature_dim = _first_linear(backbone.get_submodule(classifier_name)).in_features
        # Everything from_pretrained initialises fresh (wav2vec2's projector, DistilBERT's pre_classifier)
        # is trained and saved, not left frozen at random values that differ on every reload.
        head = sorted(set(classification_head_modules(backbone)) | {classifier_name})
        targets = _resolve_targets(backbone, lora_target_modules, lora_r, head)
        base_name = base_model_name_or_path or getattr(backbone.config, "_name_or_path", None) or None
        lora_config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=targets,
            modules_to_save=head,
            base_model_name_or_path=base_name,
        )
        peft_model = get_peft_model(backbone, lora_config)
        if base_name:
            peft_model.peft_config["default"].base_model_name_or_path = base_name
        if conditional_alignment:
            domain_loss = ConditionalDomainAdversarialLoss.build(
                feature_dim,
                backbone.config.num_labels,
                hidden_size=discriminator_hidden_size,
                num_layers=discriminator_num_layers,
                dropout=discriminator_dropout,
                entropy_conditioning=entropy_conditioning,
                randomized_dim=randomized_dim,
            )
        else:
            domain_loss = DomainAdversarialLoss(
                DomainDiscriminator(
                    feature_dim,
                    hidden_size=discriminator_hidden_size,
                    num_layers=discriminator_num_layers,
                    dropout=discriminator_dropout,
                )
            )
        modality = infer_modality(backbone)
        metadata = {
            "base_model": base_name,
            "modality": modality,
            "task": TASK_BY_MODALITY[modality],
            "id2label": {str(k): v for k, v in backbone.config.id2label.items()},
            "label2id": {k: int(v) for k, v in backbone.config.label2id.items()},
            "classifier": classifier_name,
            "lora": {"r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout, "target_modules": targets},
            "discriminator": domain_loss.discriminator.config_dict(),
        }
        if conditional_alignment:
            metadata["conditioning"] = domain_loss.settings
        model = cls(peft_model, domain_loss, classifier_name, metadata=metadata, domain_loss_weight=domain_loss_weight)
        logger.info("hf_transfer: %s", model.trainable_parameters_summary())
        return model

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        base_model: PreTrainedModel | None = None,
        is_trainable: bool = False,
        trust_remote_code: bool = False,
        **hub_kwargs: Any,
    ) -> "DomainAdaptationModel":
        """Reload a model written by :meth:`save_pretrained` (a local folder).

        The base backbone is loaded from ``base_model`` (a model instance) or from the id/path
        recorded in ``domain_adaptation.json`` — safetensors only, remote code off unless asked.
        """
        path = Path(path)
        meta = json.loads((path / DOMAIN_ADAPTATION_CONFIG_NAME).read_text(encoding="utf-8"))
        if base_model is None:
            base_model = _load_base_model(meta, trust_remote_code=trust_remote_code, **hub_kwargs)
        peft_model = PeftModel.from_pretrained(base_model, str(path), is_trainable=is_trainable)
        disc_cfg = meta["discriminator"]
        if meta.get("conditioning"):
            domain_loss = ConditionalDomainAdversarialLoss.from_settings(meta["conditioning"], disc_cfg)
        else:
            domain_loss = DomainAdversarialLoss(
                DomainDiscriminator(disc_cfg["feature_dim"], disc_cfg["hidden_size"], disc_cfg["num_layers"], disc_cfg["dropout"])
            )
        weights = path / DISCRIMINATOR_WEIGHTS_NAME
        if weights.exists():
            domain_loss.discriminator.load_state_dict(load_file(str(weights)))
        else:
            logger.warning("No %s in %s: the domain discriminator starts fresh.", DISCRIMINATOR_WEIGHTS_NAME, path)
        domain_loss.discriminator.requires_grad_(is_trainable)
        model = cls(peft_model, domain_loss, meta["classifier"], metadata=meta)
        return model.train(is_trainable) if is_trainable else model.eval()

    def train(self, mode: bool = True) -> "DomainAdaptationModel":
        """Train mode, except frozen BatchNorm layers: their running statistics are base weights too.

        They are not part of the saved adapter, so letting them drift would make a reloaded model
        differ from the trained one (ResNets, timm CNNs).
        """
        super().train(mode)
        if mode:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters(recurse=False)
                ):
                    module.eval()
        return self

    # -- forward --------------------------------------------------------------------------------

    @property
    def backbone(self) -> PreTrainedModel:
        """The transformers model inside peft (LoRA layers injected)."""
        return self.model.base_model.model

    @property
    def config(self):
        return self.backbone.config

    @property
    def main_input_name(self) -> str:
        return self.backbone.main_input_name

    @property
    def is_conditional(self) -> bool:
        """True when the discriminator is conditioned on the predictions (CDAN)."""
        return isinstance(self.domain_loss, ConditionalDomainAdversarialLoss)

    def _capture_features(self, module: nn.Module, args: tuple) -> None:
        if args:
            self._features.append(args[0])

    def forward(
        self,
        labels: torch.Tensor | None = None,
        domain_labels: torch.Tensor | None = None,
        **inputs: Any,
    ) -> DomainAdaptationOutput:
        """One forward pass over a (possibly concatenated source + target) batch.

        ``labels`` use ``-100`` for unlabelled examples; ``domain_labels`` are 0 (source) / 1 (target).
        ``loss = classification_loss + domain_loss_weight · domain_loss`` (λ acts in the GRL)
        ``+ mcc_loss_weight · mcc_loss`` (target rows) when MCC is on.
        """
        self._features.clear()
        logits = self.model(**inputs).logits
        features = pool_features(self._features.pop()) if self._features else None
        self._features.clear()

        output = DomainAdaptationOutput(logits=logits)
        loss = None
        if labels is not None:
            labelled = labels != -100
            if labelled.any():
                output.classification_loss = F.cross_entropy(logits[labelled], labels[labelled])
            else:  # keep the graph (and DDP) intact with an exact zero
                output.classification_loss = logits.sum() * 0.0
            loss = output.classification_loss
        if domain_labels is not None:
            if features is None:
                raise RuntimeError("The classifier hook captured no features; is the classifier bypassed?")
            weights = self._alignment_weights(logits, labels, domain_labels) if self.class_weighted_alignment else None
            domain = self.domain_loss(features.float(), domain_labels, weights, logits=logits)
            output.domain_loss, output.domain_accuracy = domain.loss, domain.accuracy
            weighted = self.domain_loss_weight * domain.loss
            loss = weighted if loss is None else loss + weighted
            if self.mcc_loss_weight > 0:
                output.mcc_loss = self.mcc_loss(logits[domain_labels == 1])
                loss = loss + self.mcc_loss_weight * output.mcc_loss
        output.loss = loss
        return output

    @torch.no_grad()
    def _alignment_weights(
        self, logits: torch.Tensor, labels: torch.Tensor | None, domain_labels: torch.Tensor
    ) -> torch.Tensor | None:
        """Per-example domain-loss weights: ``w_y`` for labelled source examples, 1 for the rest."""
        is_target = domain_labels == 1
        if labels is None or not is_target.any():
            return None
        labelled_source = (domain_labels == 0) & (labels != -100)
        if not labelled_source.any():
            return None
        class_weights = class_importance_weights(labels[labelled_source], logits[is_target].float().softmax(-1))
        weights = torch.ones(len(domain_labels), device=logits.device)
        weights[labelled_source] = class_weights[labels[labelled_source]].float()
        return weights

    @torch.no_grad()
    def extract_features(self, **inputs: Any) -> torch.Tensor:
        """The pooled features that enter the classifier (what the discriminator sees)."""
        self._features.clear()
        self.model(**inputs)
        features = pool_features(self._features.pop())
        self._features.clear()
        return features

    # -- parameters -----------------------------------------------------------------------------

    def trainable_parameters_summary(self) -> str:
        """``print_trainable_parameters``-style line, with the discriminator counted."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        disc = sum(p.numel() for p in self.domain_loss.parameters())
        return (
            f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"
            f" (LoRA + classifier + discriminator {disc:,}; base weights frozen)"
        )

    # -- saving / loading -----------------------------------------------------------------------

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        state_dict: dict[str, torch.Tensor] | None = None,
        is_main_process: bool = True,
        **_: Any,
    ) -> None:
        """Write the peft adapter, the discriminator and ``domain_adaptation.json``, atomically per file."""
        if not is_main_process:
            return
        state_dict = state_dict if state_dict is not None else self.state_dict()
        peft_state = {k[len("model."):]: v for k, v in state_dict.items() if k.startswith("model.")}
        prefix = "domain_loss.discriminator."
        disc_state = {k[len(prefix):]: v.detach().contiguous().cpu() for k, v in state_dict.items() if k.startswith(prefix)}
        with atomic_directory_update(save_directory) as scratch:
            self.model.save_pretrained(str(scratch), state_dict=peft_state)
            save_file(disc_state, str(scratch / DISCRIMINATOR_WEIGHTS_NAME), metadata={"format": "pt"})
            write_json_atomic(scratch / DOMAIN_ADAPTATION_CONFIG_NAME, self.metadata)

    def load_adapter_weights(self, directory: str | os.PathLike) -> None:
        """Load adapter + classifier + discriminator weights from a saved folder into this model."""
        directory = Path(directory)
        adapter = load_file(str(directory / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(self.model, adapter)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise RuntimeError(f"Checkpoint {directory} has adapter weights this model lacks: {unexpected[:5]}")
        self.domain_loss.discriminator.load_state_dict(load_file(str(directory / DISCRIMINATOR_WEIGHTS_NAME)))


def _load_base_model(meta: dict[str, Any], *, trust_remote_code: bool = False, **hub_kwargs: Any) -> PreTrainedModel:
    """The base checkpoint named in ``domain_adaptation.json``, with the adapted label set."""
    if not meta.get("base_model"):
        raise ValueError(
            "This adapter does not record its base model; pass base_model= (the backbone it was trained on)."
        )
    id2label = {int(k): v for k, v in meta["id2label"].items()}
    backbone = load_backbone(
        meta["base_model"],
        label_names=[id2label[i] for i in sorted(id2label)],
        modality=meta.get("modality"),
        trust_remote_code=trust_remote_code,
        load_processor=False,
        **hub_kwargs,
    )
    return backbone.model


def _resolve_targets(backbone: nn.Module, spec: str | list[str] | None, rank: int, head: list[str]) -> list[str]:
    if spec is None or (isinstance(spec, str) and is_lora_policy(spec)):
        return discover_lora_targets(backbone, spec or "auto", rank=rank, exclude=head)
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    return [n for n in names if n]
