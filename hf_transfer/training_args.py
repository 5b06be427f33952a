"""Arguments of :class:`~hf_transfer.trainer.DomainAdaptationTrainer`.

A ``TrainingArguments`` subclass (like TRL's ``SFTConfig``): every Trainer option still
works (``report_to``, ``gradient_accumulation_steps``, DDP/FSDP/DeepSpeed through
Accelerate) and the domain-adaptation knobs sit beside them, parsed by ``HfArgumentParser``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from .alignment.objective import AlignmentObjective
from .alignment.registry import available_methods, get_method
from .alignment.schedules import GRL_SCHEDULES
from .cards import DOMAINS

#: Validators computed at every evaluation by default: cheap, and they read only the target's logits.
DEFAULT_VALIDATORS = ("entropy", "im", "bnm", "snd")
#: What :func:`hf_transfer.diagnostics.shift_report` does after training.
SHIFT_REPORTS = ("pictures", "metrics", "none")


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


@dataclass
class DomainAdaptationArguments(TrainingArguments):
    """Training arguments for LoRA + domain-adversarial adaptation."""

    method: str = field(
        default="dann",
        metadata={
            "help": "The alignment method, a name from the method registry: "
            + "; ".join(f"'{name}' ({get_method(name).summary})" for name in available_methods())
            + ". Checked against the registry when the arguments are built (so methods registered by your own "
            "code are accepted too).",
        },
    )
    method_settings: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Settings of the method that have no field of their own, as JSON or 'key=value,key=value' "
            "(e.g. MMD's 'kernel_num=3'); they override the method's defaults and its own fields."
        },
    )
    target_ratio: int = field(
        default=1,
        metadata={"help": "Target examples per source example in every training batch (1 = half and half)."},
    )
    num_target_labels: int = field(
        default=0,
        metadata={
            "help": "How many target examples may keep their labels (semi-supervised). 0 = unsupervised: "
            "target labels are dropped before training."
        },
    )
    target_labels_per_class: int = field(
        default=0,
        metadata={
            "help": "Few-shot target: keep the labels of K target examples per class (a stratified draw seeded by "
            "seed, recorded in the run info and the card); every batch holds one of them per source example and "
            "the rest of the target stays unlabelled. 0 = off. Pairs with method 'mme' or 'dann'."
        },
    )
    pool_sources: bool = field(
        default=False,
        metadata={
            "help": "With several sources (a 'sources:' list): pool them into one source (the simple data-fusion "
            "baseline, a binary discriminator) instead of balancing batches across them."
        },
    )
    domain_loss_weight: float = field(default=1.0, metadata={"help": "Trade-off weight of the domain loss."})
    domain_loss_class_weighting: bool = field(
        default=False,
        metadata={
            "help": "IWDAN (Combes et al. 2020): weight source examples in the domain loss by p_T(y)/p_S(y), with "
            "p_T estimated from the model's target predictions, so alignment survives a class-mix (label) shift."
        },
    )
    mcc_loss_weight: float | None = field(
        default=None,
        metadata={
            "help": "Weight of Minimum Class Confusion (Jin et al. 2020) on the target rows: a class-aware, "
            "discriminator-free loss. Default: 1.0 for method 'mcc', 0 (off) for 'dann'/'cdan' (set it for DANN + MCC)."
        },
    )
    mcc_temperature: float = field(default=2.5, metadata={"help": "Softmax temperature of the MCC loss."})
    cdan_entropy_conditioning: bool = field(
        default=True,
        metadata={"help": "CDAN+E: weight each example's domain loss by 1 + exp(-entropy of its prediction)."},
    )
    cdan_randomized_dim: int = field(
        default=1024,
        metadata={
            "help": "Output size of CDAN's randomized multilinear map, used when features × classes > 4096 "
            "(smaller heads use the exact map)."
        },
    )
    grl_schedule: str = field(
        default="dann",
        metadata={"help": "λ schedule: 'dann' (2/(1+exp(-γp))-1, p = step/max_steps) or 'constant'."},
    )
    grl_gamma: float = field(default=10.0, metadata={"help": "γ of the 'dann' λ schedule."})
    grl_max_lambda: float = field(default=1.0, metadata={"help": "Final (or constant) value of λ."})
    discriminator_hidden_size: int = field(default=256, metadata={"help": "Hidden width of the domain discriminator."})
    discriminator_num_layers: int = field(default=2, metadata={"help": "Hidden layers of the domain discriminator."})
    discriminator_dropout: float = field(default=0.1, metadata={"help": "Dropout inside the domain discriminator."})
    discriminator_lr_multiplier: float = field(
        default=1.0,
        metadata={
            "help": "Discriminator learning rate = learning_rate × this. A discriminator that learns faster than the "
            "features it judges gives the backbone a useful adversarial signal (Ganin et al. train it at 10×)."
        },
    )
    task_loss_weights: str | None = field(
        default=None,
        metadata={
            "help": "Auxiliary tasks on the shared adapted features, 'name=weight,...': 'rotation=0.1' adds rotation "
            "prediction (images only; Sun et al. 2019) on source and target images, no labels needed; any other name "
            "is a further label column of the labelled source with its own head (in the Python API, each example's "
            "'labels__<name>'). Each task is evaluated per domain (eval_<domain>_<name>_accuracy)."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(
        default="auto",
        metadata={
            "help": "Where LoRA goes: a policy discovered from the model ('auto', 'attention', 'conv', 'pointwise', "
            "'all-linear') or comma-separated module names."
        },
    )
    validators: list[str] = field(
        default_factory=lambda: list(DEFAULT_VALIDATORS),
        metadata={
            "help": "Label-free validators computed at each evaluation on the target eval split's logits and features "
            "(its labels are never read for them), logged as eval_target_<name>: any of 'source_accuracy', "
            "'entropy', 'im', 'bnm', 'snd', 'dev', 'class_ami' ('source_accuracy' and 'dev' also read the source "
            "eval split); 'none' for none. metric_for_best_model: eval_target_snd (with load_best_model_at_end) picks "
            "checkpoints without target labels."
        },
    )
    validators_during_training: list[str] | None = field(
        default=None,
        metadata={
            "help": "The validators computed at the evaluations during training (eval_strategy 'steps' or 'epoch'); "
            "the evaluation after training always computes all of validators. Default: all of them. A sweep's pruner "
            "sets it to the one validator it watches: DEV refits a domain classifier at every evaluation, and the "
            "source split is only evaluated for validators that read it."
        },
    )
    save_target_predictions: bool = field(
        default=False,
        metadata={
            "help": "After training, write the target eval split's predicted class probabilities to "
            "output_dir/target_predictions.safetensors (never its labels): what EnsV compares across a sweep's "
            "candidates (hf-transfer sweep turns it on)."
        },
    )
    shift_report: str = field(
        default="pictures",
        metadata={
            "help": "After training (hf-transfer train, the demo): 'pictures' measures the proxy A-distance between "
            "the domains' features before and after adaptation and draws a t-SNE, the training curves and "
            "confusion matrices into output_dir (needs matplotlib); 'metrics' only the A-distance; 'none' skips it."
        },
    )
    # Hub push (push_to_hub=True / trainer.push_to_hub() go through hf_transfer.hub.push_to_hub: one commit,
    # domain-aware card, Hub ids only):
    hub_base_model_repo_id: str | None = field(
        default=None,
        metadata={"help": "Hub id of the base model when training started from a local checkpoint."},
    )
    hub_card_domain: str = field(
        default="generic",
        metadata={"help": "Model card section: 'generic', 'medical', 'finance' or 'speech'."},
    )
    hub_include_discriminator: bool = field(
        default=True, metadata={"help": "Upload domain_discriminator.safetensors so others can continue adapting."}
    )
    hub_license: str | None = field(default=None, metadata={"help": "License written into the model card."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Let `hf-transfer train` write into an output_dir that already holds files (it refuses otherwise, "
            "unless resume_from_checkpoint is set); the old checkpoint-* folders are removed first, so they never "
            "mix with the new run's."
        },
    )
    # Trainer defaults that differ for domain adaptation:
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "Kept False: every trainable parameter (LoRA, classifier, discriminator) gets a gradient at every "
            "step (methods without a discriminator still run it as a zero-weight probe), so DDP needs no extra graph "
            "traversal to look for unused ones."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Kept False: inputs are built lazily by dataset transforms, not model-signature columns."},
    )

    def __post_init__(self) -> None:
        get_method(self.method)  # an unknown name lists the registered ones
        self.method_settings = _parse_settings(self.method_settings)
        if self.grl_schedule not in GRL_SCHEDULES:
            raise ValueError(f"grl_schedule must be one of {GRL_SCHEDULES}, got {self.grl_schedule!r}.")
        if self.target_ratio < 1:
            raise ValueError(f"target_ratio must be >= 1 (target examples per source example), got {self.target_ratio}.")
        if (self.mcc_loss_weight is not None and self.mcc_loss_weight < 0) or self.mcc_temperature <= 0:
            raise ValueError(
                f"mcc_loss_weight must be >= 0 and mcc_temperature > 0, got {self.mcc_loss_weight} and "
                f"{self.mcc_temperature}."
            )
        if self.cdan_randomized_dim < 1:
            raise ValueError(f"cdan_randomized_dim must be >= 1, got {self.cdan_randomized_dim}.")
        if self.discriminator_lr_multiplier <= 0:
            raise ValueError(f"discriminator_lr_multiplier must be > 0, got {self.discriminator_lr_multiplier}.")
        if self.num_target_labels < 0:
            raise ValueError(f"num_target_labels must be >= 0, got {self.num_target_labels}.")
        if self.target_labels_per_class < 0 or (self.target_labels_per_class and self.num_target_labels):
            raise ValueError(
                "target_labels_per_class must be >= 0 and cannot be combined with num_target_labels (a random draw); "
                f"got {self.target_labels_per_class} and {self.num_target_labels}: keep one of them."
            )
        if self.hub_card_domain not in DOMAINS:
            raise ValueError(f"hub_card_domain must be one of {DOMAINS}, got {self.hub_card_domain!r}.")
        if self.label_names is None:
            self.label_names = ["labels"]
        if self.shift_report not in SHIFT_REPORTS:
            raise ValueError(f"shift_report must be one of {SHIFT_REPORTS}, got {self.shift_report!r}.")
        self.validators = _check_validators(self.validators)
        self._validator_for_best_model()
        self._check_validators_during_training()
        if self.dataloader_pin_memory and not _has_accelerator():
            self.dataloader_pin_memory = False  # pinned memory only helps host-to-GPU copies
        weights = self.task_weights  # a malformed value fails here, before any model is built
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"task_loss_weights must be >= 0, got {weights}.")
        AlignmentObjective.from_arguments(self)  # every setting checked before any model is built
        super().__post_init__()

    @property
    def task_weights(self) -> dict[str, float]:
        """``task_loss_weights`` parsed: ``{"rotation": 0.1, ...}``."""
        from .auxiliary import parse_task_weights

        return parse_task_weights(self.task_loss_weights)

    def _validator_for_best_model(self) -> None:
        """``metric_for_best_model: eval_target_snd`` works as is: the validator is computed, its direction used."""
        from .validators import SINGLE_VALIDATORS, greater_is_better, validator_name

        metric = self.metric_for_best_model
        if metric is None or not metric.startswith(("eval_target_", "target_")):
            return
        name = validator_name(metric)
        if name in TARGET_SPLIT_METRICS:
            return  # a metric on the labelled target eval split: the user's (oracle) choice
        if name not in SINGLE_VALIDATORS:
            greater_is_better(name)  # an unknown name (or the ensemble) is an error listing the known validators
        if name not in self.validators:
            self.validators.append(name)
        if self.greater_is_better is None:
            self.greater_is_better = greater_is_better(name)


    def _check_validators_during_training(self) -> None:
        """A subset of ``validators``, which keeps the one ``metric_for_best_model`` names (checkpoints are compared
        during training)."""
        if self.validators_during_training is None:
            return
        names = _check_validators(self.validators_during_training)
        unknown = [name for name in names if name not in self.validators]
        if unknown:
            raise ValueError(
                f"validators_during_training lists {unknown}, which validators {self.validators} does not: it names "
                "the subset computed during training; add them to validators too."
            )
        metric = self.metric_for_best_model
        if metric is not None and metric.startswith(("eval_target_", "target_")):
            from .validators import validator_name

            name = validator_name(metric)
            if name in self.validators and name not in names:
                names.append(name)  # the best checkpoint is chosen by it at the evaluations during training
        self.validators_during_training = names


#: ``eval_target_*`` metrics that are not validators: the labelled target eval split's scores and its class mix.
TARGET_SPLIT_METRICS = frozenset({"accuracy", "f1", "balanced_accuracy", "loss", "top_class_share"})


def _check_validators(names: list[str] | str | None) -> list[str]:
    """The validator names, each known and computable per evaluation (an unknown one lists the known ones)."""
    from .validators import compares_candidates, get_validator

    if names is None or names == "none" or list(names) == ["none"]:
        return []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    checked: list[str] = []
    for name in names:
        if compares_candidates(get_validator(name)):
            raise ValueError(
                f"validators: {name!r} compares finished candidates with each other (hf-transfer sweep "
                f"--validator {name}); list single validators here."
            )
        if name not in checked:
            checked.append(name)
    return checked


def _parse_settings(value: dict[str, Any] | str | None) -> dict[str, Any]:
    """``method_settings`` from a dict, a JSON object or ``key=value,key=value`` (values read as YAML scalars)."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"method_settings is not valid JSON ({error}): {value!r}.") from None
        return dict(parsed)
    import yaml

    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"method_settings must be JSON or 'key=value,key=value', got {value!r}.")
        settings[key.strip()] = yaml.safe_load(raw)
    return settings
