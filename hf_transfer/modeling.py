"""A classification backbone with LoRA adapters and a domain-adversarial head.

:class:`DomainAdaptationModel` wraps any ``AutoModelFor*Classification`` backbone:

* peft LoRA on modules discovered from the loaded model (:mod:`hf_transfer.lora_targets`),
  the classification head trained fully (``modules_to_save``);
* a forward pre-hook on the classifier captures the features that enter it, so the
  domain discriminator sees the same representation the task head does, for every
  backbone, without knowing its internals;
* one forward over the concatenated source + target batch returns the classification
  loss on labelled examples (``-100`` = unlabelled) plus the alignment objective
  (:class:`~hf_transfer.alignment.objective.AlignmentObjective`), which the caller passes in
  with the gradient-reversal coefficient: ``model(**batch, objective=objective, grl_lambda=λ)``.

The model owns the *domain head* (the discriminator of the registered method, or DANN's as a
zero-weight probe) because its weights are trained and saved with the adapter; every other
setting of the objective is a value of the call.
"""

from __future__ import annotations

import dataclasses
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

from . import __version__
from .alignment.objective import AlignmentObjective
from .alignment.registry import AlignmentBatch, domain_head_spec
from .auxiliary import (
    TaskSpec,
    build_task_heads,
    check_tasks_fit,
    masked_cross_entropy,
    pop_task_labels,
    rotation_batch,
    source_only_labels,
)
from .artifacts import (
    ADAPTER_WEIGHTS_NAME,
    DISCRIMINATOR_WEIGHTS_NAME,
    MODEL_CARD_NAME,
    TASK_HEADS_WEIGHTS_NAME,
    RunInfo,
    base_model_reference,
    installed_versions,
    is_relative_reference,
    resolve_base_model,
)
from .backbones import classification_head_modules, load_backbone
from .lora_targets import discover_lora_targets, is_lora_policy
from .modalities import infer_modality, task_of
from .utils.io import atomic_directory_update
from .utils.peft_compat import peft_wrapping

logger = logging.getLogger(__name__)
_CLASSIFIER_ATTRIBUTES = ("classifier", "score", "fc", "head", "cls_head")


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
    """Output of :class:`DomainAdaptationModel`; alignment fields are set when ``domain_labels`` are given."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    classification_loss: torch.Tensor | None = None
    alignment_loss: torch.Tensor | None = None
    """Σ w_k · L_k of the objective (weighted)."""
    domain_loss: torch.Tensor | None = None
    """The domain head's loss (unweighted; the probe's for methods without a discriminator)."""
    domain_accuracy: torch.Tensor | None = None
    alignment_logs: dict[str, torch.Tensor] | None = None
    """Every term's detached values by name (``domain_loss``, ``domain_accuracy``, ``mcc_loss``, ...)."""
    task_logs: dict[str, torch.Tensor] | None = None
    """Each weighted auxiliary task's detached loss (``<task>_loss``) and accuracy (``<task>_accuracy``)."""
    features: torch.Tensor | None = None
    """The pooled features that entered the classifier, in the graph; only with ``output_features=True``."""


class DomainAdaptationModel(nn.Module):
    """Backbone + LoRA (peft) + the domain head of an alignment method.

    Build one with :meth:`from_backbone`; reload a saved one with :meth:`from_pretrained`.
    ``domain_loss`` is the domain head (a :class:`~hf_transfer.alignment.DomainAdversarialLoss` or
    :class:`~hf_transfer.alignment.ConditionalDomainAdversarialLoss`); ``run_info`` is what
    :meth:`save_pretrained` writes to ``domain_adaptation.json``; ``objective`` is the objective the
    model was built for, used when a call passes none.
    """

    def __init__(
        self,
        peft_model: PeftModel,
        domain_head: nn.Module,
        classifier_name: str,
        *,
        run_info: RunInfo,
        objective: AlignmentObjective | None = None,
        task_heads: nn.ModuleDict | None = None,
    ) -> None:
        super().__init__()
        self.model = peft_model
        self.domain_loss = domain_head
        self.task_heads = task_heads if task_heads is not None else nn.ModuleDict()
        self.task_specs = {name: TaskSpec.from_dict(spec) for name, spec in (run_info.tasks or {}).items()}
        if set(self.task_specs) != set(self.task_heads):
            raise ValueError(f"The run info's tasks {sorted(self.task_specs)} do not match the heads {sorted(self.task_heads)}.")
        self.classifier_name = classifier_name
        self.run_info = run_info
        self.objective = objective or (
            AlignmentObjective.from_dict(run_info.objective) if run_info.objective else AlignmentObjective.for_method("dann")
        )
        if self.objective.domain_head_kind not in (None, self.domain_head_kind):
            raise ValueError(
                f"The objective {self.objective} needs a {self.objective.domain_head_kind!r} domain head but the model has "
                f"a {self.domain_head_kind!r} one."
            )
        self._features: list[torch.Tensor] = []
        self._capturing = False  # the hook keeps features only during this model's own forward passes
        classifier = self.backbone.get_submodule(classifier_name)
        classifier.register_forward_pre_hook(self._capture_features)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_backbone(
        cls,
        backbone: PreTrainedModel,
        *,
        objective: AlignmentObjective | str = "dann",
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        lora_target_modules: str | list[str] | None = "auto",
        discriminator_hidden_size: int = 256,
        discriminator_num_layers: int = 2,
        discriminator_dropout: float = 0.1,
        base_model_name_or_path: str | None = None,
        seed: int | None = None,
        num_domains: int = 2,
        tasks: dict[str, TaskSpec] | None = None,
    ) -> DomainAdaptationModel:
        """Wrap ``backbone`` with LoRA and a fresh domain head for ``objective``.

        ``objective`` is an :class:`~hf_transfer.alignment.AlignmentObjective` (e.g.
        ``AlignmentObjective.from_arguments(args)``) or a registered method name with default settings
        (``"dann"``, ``"cdan"``, ...): it decides which domain head is built (CDAN's conditional one, or
        DANN's). ``lora_target_modules`` is a policy (``auto``, ``attention``, ``conv``, ``pointwise``, ``all-linear``),
        a comma-separated string or a list of module names. ``seed`` (e.g. ``args.seed``) seeds every
        random number generator before LoRA's A matrices and the discriminator are drawn, so two runs with the
        same seed start from the same weights (the Trainer seeds only later, when it is built).
        ``num_domains`` (number of sources + 1) above 2 gives DANN's discriminator one output per domain
        (multi-source adaptation). ``tasks`` adds an auxiliary head per task (:mod:`hf_transfer.auxiliary`:
        another label column, or rotation prediction for images); their loss weights are values of each call
        (``task_weights=``).
        """
        if seed is not None:
            from transformers import set_seed

            set_seed(seed)
        if isinstance(objective, str):
            objective = AlignmentObjective.for_method(objective)
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
        with peft_wrapping():
            peft_model = get_peft_model(backbone, lora_config)
        if base_name:
            peft_model.peft_config["default"].base_model_name_or_path = base_name
        head_term = objective.domain_head_term
        spec = domain_head_spec(objective.domain_head_kind or "domain")
        several = {}
        if num_domains > 2:
            if spec.kind == "conditional":
                raise ValueError(
                    f"method {objective.method!r} conditions a binary discriminator and does not take several sources; "
                    "use method 'dann' (a discriminator over every domain), 'mmd' or 'mcc', or pool the sources "
                    "(training.pool_sources: true)."
                )
            if spec.kind == "domain":
                several = {"num_domains": num_domains}
        domain_head = spec.build(
            feature_dim,
            backbone.config.num_labels,
            hidden_size=discriminator_hidden_size,
            num_layers=discriminator_num_layers,
            dropout=discriminator_dropout,
            settings=head_term.settings if head_term is not None else None,
            **several,
        )
        modality = infer_modality(backbone)
        tasks = dict(tasks or {})
        check_tasks_fit(tasks, modality)
        task_heads = build_task_heads(tasks, feature_dim)
        run_info = RunInfo(
            base_model=base_name,
            modality=modality,
            task=task_of(modality),
            model_type=getattr(backbone.config, "model_type", None),
            id2label={str(k): v for k, v in backbone.config.id2label.items()},
            label2id={k: int(v) for k, v in backbone.config.label2id.items()},
            classifier=classifier_name,
            lora={"r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout, "target_modules": targets},
            method=objective.method,
            objective=objective.to_dict(),
            hf_transfer_version=__version__,
            framework_versions=installed_versions(),
            tasks={name: spec.to_dict() for name, spec in tasks.items()} or None,
            **domain_head.to_dict(),
        )
        model = cls(peft_model, domain_head, classifier_name, run_info=run_info, objective=objective, task_heads=task_heads)
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
    ) -> DomainAdaptationModel:
        """Reload a model written by :meth:`save_pretrained` (a local folder; :mod:`hf_transfer.hub` downloads one).

        The base backbone is loaded from ``base_model`` (a model instance) or from the id/path
        recorded in ``domain_adaptation.json`` — safetensors only, remote code off unless asked.
        Folders written by hf_transfer 0.1.0 load too (their objective is rebuilt from the old fields).
        """
        path = Path(path)
        run_info = RunInfo.read(path)
        recorded = run_info.base_model
        run_info.base_model = resolve_base_model(recorded, path)  # a local base is recorded relative to the folder
        if base_model is None:
            if is_relative_reference(recorded) and not os.path.isdir(run_info.base_model):
                raise FileNotFoundError(
                    f"The base model of {path} is a local checkpoint recorded as {recorded!r} (relative to that "
                    f"folder), and {run_info.base_model} does not exist on this machine: put the base model there, "
                    "or pass base_model=<the loaded backbone>."
                )
            base_model = _load_base_model(run_info, trust_remote_code=trust_remote_code, **hub_kwargs)
        with peft_wrapping():
            peft_model = PeftModel.from_pretrained(base_model, str(path), is_trainable=is_trainable)
        for config in peft_model.peft_config.values():  # saved again, it is recorded relative to the new folder
            if is_relative_reference(config.base_model_name_or_path):
                config.base_model_name_or_path = run_info.base_model
        domain_head = domain_head_spec(run_info.domain_head_kind).load(
            {"discriminator": run_info.discriminator, "conditioning": run_info.conditioning}
        )
        weights = path / DISCRIMINATOR_WEIGHTS_NAME
        if weights.exists():
            domain_head.discriminator.load_state_dict(load_file(str(weights)))
        else:
            logger.warning("No %s in %s: the domain discriminator starts fresh.", DISCRIMINATOR_WEIGHTS_NAME, path)
        domain_head.discriminator.requires_grad_(is_trainable)
        task_heads = _load_task_heads(path, run_info)
        task_heads.requires_grad_(is_trainable)
        model = cls(peft_model, domain_head, run_info.classifier or find_classifier(base_model), run_info=run_info,
                    task_heads=task_heads)
        return model.train(is_trainable) if is_trainable else model.eval()

    def train(self, mode: bool = True) -> DomainAdaptationModel:
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
    def domain_head_kind(self) -> str:
        """``domain`` (DANN's discriminator) or ``conditional`` (CDAN's)."""
        return self.domain_loss.kind

    def _capture_features(self, module: nn.Module, args: tuple) -> None:
        if self._capturing and args:
            self._features.append(args[0])

    def _run_backbone(self, inputs: dict[str, Any]) -> tuple[Any, torch.Tensor | None]:
        """The peft model's output and the features that entered its classifier during this call.

        Outside this call the hook keeps nothing, so the backbone used on its own (e.g. merged with
        ``merge_and_unload`` for inference) does not accumulate a tensor per forward pass.
        """
        self._features.clear()
        self._capturing = True
        try:
            output = self.model(**inputs)
        finally:
            self._capturing = False
        features = self._features.pop() if self._features else None
        self._features.clear()
        return output, features

    def forward(
        self,
        labels: torch.Tensor | None = None,
        domain_labels: torch.Tensor | None = None,
        domain_ids: torch.Tensor | None = None,
        *,
        objective: AlignmentObjective | None = None,
        grl_lambda: float = 1.0,
        task_weights: dict[str, float] | None = None,
        output_features: bool = False,
        label_smoothing: float = 0.0,
        **inputs: Any,
    ) -> DomainAdaptationOutput:
        """One forward pass over a (possibly concatenated source + target) batch.

        ``labels`` use ``-100`` for unlabelled examples; ``domain_labels`` are 0 (source) / 1 (target);
        ``domain_ids`` (several sources) are ``k`` for source ``k`` and ``K`` for the target.
        ``loss = classification_loss + objective(features, logits, ...; grl_lambda)`` when ``domain_labels``
        are given; ``objective`` defaults to the one the model was built for, ``grl_lambda`` (λ) scales the
        reversed gradient. ``task_weights`` (``{task: w}``) add ``Σ w_t L_t`` of the auxiliary tasks
        (:mod:`hf_transfer.auxiliary`); a label task reads the batch's ``labels__<task>``. ``label_smoothing`` (the Trainer's
        ``label_smoothing_factor``) softens the labelled rows' targets. ``output_features=True`` returns the pooled features too (the source-free trainer's
        losses read them).
        """
        task_labels = pop_task_labels(inputs)  # labels__<task> entries never reach the backbone
        backbone_output, captured = self._run_backbone(inputs)
        logits = backbone_output.logits
        features = pool_features(captured) if captured is not None else None

        output = DomainAdaptationOutput(logits=logits, features=features if output_features else None)
        loss = None
        if labels is not None:
            # The mean over labelled rows, without a host read (no `if labelled.any()`, no boolean indexing):
            # unlabelled rows (-100) add 0, and a batch without labels gives an exact 0 that keeps the graph (and DDP)
            # intact.
            summed = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum", label_smoothing=label_smoothing)
            output.classification_loss = summed / (labels != -100).sum().clamp(min=1)
            loss = output.classification_loss
        if domain_labels is not None:
            if features is None:
                raise RuntimeError("The classifier hook captured no features; is the classifier bypassed?")
            batch = AlignmentBatch(features=features.float(), logits=logits, labels=labels, domain_labels=domain_labels,
                                   domain_ids=domain_ids)
            alignment = (objective or self.objective)(batch, domain_head=self.domain_loss, grl_lambda=grl_lambda)
            output.alignment_loss = alignment.loss
            output.alignment_logs = alignment.logs
            output.domain_loss = alignment.logs.get("domain_loss")
            output.domain_accuracy = alignment.logs.get("domain_accuracy")
            loss = alignment.loss if loss is None else loss + alignment.loss
        if task_weights:
            task_loss, output.task_logs = self._task_losses(task_weights, features, task_labels, domain_labels, inputs)
            loss = task_loss if loss is None else loss + task_loss
        output.loss = loss
        return output

    def _task_losses(
        self, weights: dict[str, float], features: torch.Tensor | None, task_labels: dict[str, torch.Tensor],
        domain_labels: torch.Tensor | None, inputs: dict[str, Any],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Σ_t w_t L_t over the weighted auxiliary tasks, and each task's detached loss and accuracy."""
        unknown = sorted(set(weights) - set(self.task_heads))
        if unknown:
            raise ValueError(
                f"Task weights name {unknown}, which this model has no head for ({sorted(self.task_heads) or 'none'}): "
                "build it with DomainAdaptationModel.from_backbone(..., tasks={name: TaskSpec(...)})."
            )
        if features is None:
            raise RuntimeError("The classifier hook captured no features; is the classifier bypassed?")
        total, logs = None, {}
        for name, weight in weights.items():
            if not weight:
                continue
            head, spec = self.task_heads[name], self.task_specs[name]
            if spec.kind == "rotation":
                # Sun et al. 2019: every image of the batch (source and target) turned by k·90°, k predicted.
                rotated, targets = rotation_batch(inputs[self.main_input_name])
                _, captured = self._run_backbone({**inputs, self.main_input_name: rotated})
                task_logits = head(pool_features(captured).float())
            else:
                if name not in task_labels:
                    raise ValueError(f"Task {name!r} has a weight but the batch has no '{name}' labels (labels__{name}).")
                targets = source_only_labels(task_labels[name], domain_labels)
                task_logits = head(features.float())
            task_loss = masked_cross_entropy(task_logits, targets)
            with torch.no_grad():
                counted = targets != -100
                correct = (task_logits.argmax(-1) == targets) & counted
                logs[f"{name}_loss"] = task_loss.detach()
                logs[f"{name}_accuracy"] = correct.sum() / counted.sum().clamp(min=1)
            total = weight * task_loss if total is None else total + weight * task_loss
        if total is None:
            total = features.sum() * 0.0  # every weight 0: an exact 0 that keeps the graph
        return total, logs

    @torch.no_grad()
    def task_logits(self, task: str, **inputs: Any) -> torch.Tensor:
        """The head of ``task`` on the features of ``inputs`` (for a rotation task, pass the turned images)."""
        inputs = {k: v for k, v in inputs.items() if k not in ("labels", "domain_labels")}
        pop_task_labels(inputs)
        return self.task_heads[task](self.extract_features(**inputs).float())

    @torch.no_grad()
    def extract_features(self, **inputs: Any) -> torch.Tensor:
        """The pooled features that enter the classifier (what the discriminator sees)."""
        pop_task_labels(inputs)
        _, captured = self._run_backbone(inputs)
        if captured is None:
            raise RuntimeError("The classifier hook captured no features; is the classifier bypassed?")
        return pool_features(captured)

    # -- activation checkpointing ---------------------------------------------------------------

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict[str, Any] | None = None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        """Checkpoint the backbone's layers (``TrainingArguments(activation_checkpointing=True)`` calls this).

        Non-reentrant by default: gradients then reach the LoRA weights of every checkpointed layer although the
        frozen embeddings' outputs need no gradient, and DDP works with ``find_unused_parameters=False``. With
        ``use_reentrant=True`` the embeddings' outputs are made to require gradients, as peft does.
        """
        kwargs = {"use_reentrant": False, **(activation_checkpointing_kwargs or {})}
        self.backbone.activation_checkpointing_enable(kwargs, every_n_layers=every_n_layers, offload=offload)
        if kwargs["use_reentrant"]:
            self.backbone.enable_input_require_grads()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """The former name of :meth:`activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def activation_checkpointing_disable(self) -> None:
        self.backbone.activation_checkpointing_disable()

    @property
    def is_activation_checkpointing(self) -> bool:
        return bool(getattr(self.backbone, "is_activation_checkpointing", False))

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
        """Write the peft adapter, the discriminator, ``domain_adaptation.json`` and the model card, atomically.

        A local base model is recorded relative to ``save_directory`` in ``adapter_config.json`` and
        ``domain_adaptation.json`` (see :func:`~hf_transfer.artifacts.base_model_reference`); peft's generic
        ``README.md``, which names the base by its local path, is replaced by hf_transfer's card.
        """
        if not is_main_process:
            return
        state_dict = state_dict if state_dict is not None else self.state_dict()
        peft_state = {k[len("model."):]: v for k, v in state_dict.items() if k.startswith("model.")}
        prefix = "domain_loss.discriminator."
        disc_state = {k[len(prefix):]: v.detach().contiguous().cpu() for k, v in state_dict.items() if k.startswith(prefix)}
        configs = list(self.model.peft_config.values())
        recorded = [config.base_model_name_or_path for config in configs]
        with atomic_directory_update(save_directory) as scratch:
            try:
                for config, base in zip(configs, recorded):
                    config.base_model_name_or_path = base_model_reference(base, save_directory)
                # hf_transfer never resizes embeddings; "auto" would look the base up (on the Hub, too) to find out
                self.model.save_pretrained(str(scratch), state_dict=peft_state, save_embedding_layers=False)
            finally:
                for config, base in zip(configs, recorded):
                    config.base_model_name_or_path = base
            save_file(disc_state, str(scratch / DISCRIMINATOR_WEIGHTS_NAME), metadata={"format": "pt"})
            task_state = {k[len("task_heads."):]: v.detach().contiguous().cpu() for k, v in state_dict.items()
                          if k.startswith("task_heads.")}
            if task_state:
                save_file(task_state, str(scratch / TASK_HEADS_WEIGHTS_NAME), metadata={"format": "pt"})
            dataclasses.replace(
                self.run_info, base_model=base_model_reference(self.run_info.base_model, save_directory)
            ).write(scratch)
            _write_card(scratch, Path(save_directory).name)

    def load_adapter_weights(self, directory: str | os.PathLike) -> None:
        """Load adapter + classifier + discriminator weights from a saved folder into this model."""
        directory = Path(directory)
        adapter = load_file(str(directory / ADAPTER_WEIGHTS_NAME))
        result = set_peft_model_state_dict(self.model, adapter)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise RuntimeError(f"Checkpoint {directory} has adapter weights this model lacks: {unexpected[:5]}")
        self.domain_loss.discriminator.load_state_dict(load_file(str(directory / DISCRIMINATOR_WEIGHTS_NAME)))
        if len(self.task_heads):
            self.task_heads.load_state_dict(load_file(str(directory / TASK_HEADS_WEIGHTS_NAME)))


def _write_card(directory: Path, name: str) -> None:
    """hf_transfer's model card in place of peft's (the trainer renders it again with its Hub settings)."""
    from .cards import build_model_card

    try:
        card = build_model_card(directory, repo_id=f"your-username/{name}")
    except Exception as error:  # the adapter is saved; the card is documentation
        logger.warning("Could not render the model card in %s: %s", directory, error)
        (directory / MODEL_CARD_NAME).unlink(missing_ok=True)
        return
    (directory / MODEL_CARD_NAME).write_text(str(card), encoding="utf-8")


def _load_task_heads(path: Path, run_info: RunInfo) -> nn.ModuleDict:
    """The auxiliary heads the run info names, with their saved weights (their sizes read from the file)."""
    if not run_info.tasks:
        return nn.ModuleDict()
    weights = path / TASK_HEADS_WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{path} records auxiliary tasks {sorted(run_info.tasks)} but has no {TASK_HEADS_WEIGHTS_NAME}.")
    state = load_file(str(weights))
    specs = {name: TaskSpec.from_dict(spec) for name, spec in run_info.tasks.items()}
    feature_dim = state[f"{next(iter(specs))}.weight"].shape[1]
    heads = build_task_heads(specs, feature_dim)
    heads.load_state_dict(state)
    return heads


def _load_base_model(run_info: RunInfo, *, trust_remote_code: bool = False, **hub_kwargs: Any) -> PreTrainedModel:
    """The base checkpoint named in ``domain_adaptation.json``, with the adapted label set."""
    if not run_info.base_model:
        raise ValueError(
            "This adapter does not record its base model; pass base_model= (the backbone it was trained on)."
        )
    id2label = {int(k): v for k, v in run_info.id2label.items()}
    backbone = load_backbone(
        run_info.base_model,
        label_names=[id2label[i] for i in sorted(id2label)],
        modality=run_info.modality,
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
