"""``DomainAdaptationTrainer``: a ``transformers.Trainer`` that sees both domains at once.

Every training batch holds labelled source and unlabelled target examples (in
``args.target_ratio``) and goes through **one** concatenated forward pass of a
:class:`~hf_transfer.modeling.DomainAdaptationModel`:

.. math::

    \\mathcal{L} = \\mathcal{L}_{cls}(\\text{labelled}) + w · \\mathcal{L}_{dom}(\\text{all}),
    \\qquad \\text{backbone gradient of } \\mathcal{L}_{dom} \\text{ scaled by } -λ(p)

with λ(p) from :func:`~hf_transfer.alignment.schedules.grl_lambda` and ``p = global_step / max_steps``.
The objective is built once from the arguments (:meth:`AlignmentObjective.from_arguments`) and passed
to the model with λ at every step: ``model(**batch, objective=self.objective, grl_lambda=λ)``.
``source_only`` runs the same code with no alignment term. Everything else is the Trainer's own:
progress bar, logging and ``report_to``, Accelerate (DDP/FSDP/DeepSpeed), checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import torch
from transformers import EvalPrediction, Trainer, TrainerCallback

from .alignment.objective import AlignmentObjective
from .alignment.registry import get_method
from .alignment.schedules import grl_lambda
from .artifacts import (
    DISCRIMINATOR_WEIGHTS_NAME,
    MODEL_CARD_NAME,
    TRAINING_ARGS_NAME,
    portable_training_args,
    save_processor,
)
from .data.collator import DomainBatchCollator
from .data.labels import label_names
from .data.few_shot import dataset_labels, stratified_indices
from .data.pairing import MultiSource, SourceTargetDataset, has_labels
from .distributed import check_launch
from .metrics import ClassificationMetrics
from .modeling import DomainAdaptationModel
from .training_args import DomainAdaptationArguments

if TYPE_CHECKING:  # pragma: no cover
    import datasets

    from .modalities import Processor

logger = logging.getLogger(__name__)

DomainDataset = Union["datasets.Dataset", Sequence[Mapping[str, Any]]]
"""A domain's examples: a ``datasets.Dataset`` (with its transform) or any sequence of dicts of model inputs."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; no checkpoint is written after it (earlier ones are left as they were).

    The loss is checked on the device at every step and read on the host only at logging steps, before every
    checkpoint save and at the end of training, so the check costs no host synchronisation per step.
    """


COLLAPSE_SOURCE_LOSS = 0.35
"""A typical converged source classification loss, used to estimate the collapse bound below."""


def collapse_bound(num_labels: int, source_loss: float = COLLAPSE_SOURCE_LOSS) -> float:
    """The adversarial strength ``domain_loss_weight × λ`` above which collapsing the features pays.

    Mapping every input to one feature costs the task ``log K − L_cls`` and wins the adversary
    ``log 2`` (a discriminator at chance), so the backbone prefers collapse once
    ``w·λ > (log K − L_cls) / log 2``: about 0.5 for two classes, 2.8 for ten.
    """
    return (math.log(num_labels) - source_loss) / math.log(2)


def adversarial_weight(objective: AlignmentObjective) -> float:
    """The summed weight of the objective's terms that train a domain discriminator behind the gradient reversal.

    MME's prototype head sits behind a reversal too, but plays the target entropy, not the domain: no collapse bound.
    """
    return sum(term.weight for term in objective.terms if is_domain_adversarial(get_method(term.method)))


def is_domain_adversarial(method: Any) -> bool:
    return method.domain_head is not None and method.domain_head.kind in ("domain", "conditional")


def _warn_if_collapse_pays(num_labels: int, objective: AlignmentObjective, args: DomainAdaptationArguments) -> None:
    strength = adversarial_weight(objective) * args.grl_max_lambda
    bound = collapse_bound(num_labels)
    if strength > 0 and strength >= bound:
        logger.warning(
            "domain_loss_weight × grl_max_lambda = %.2g is at or above the collapse bound %.2g for %d classes: the "
            "backbone can satisfy the adversary by mapping every input to one class (source accuracy falls to chance). "
            "Use a domain_loss_weight below %.2g (e.g. 0.1-0.3), or method 'mcc'.",
            strength, bound, num_labels, bound,
        )


def _check_domain_count(model: DomainAdaptationModel, pairs: Any, objective: AlignmentObjective) -> None:
    """A multi-class discriminator needs batches of that many domains, and DANN over K sources needs one."""
    if not isinstance(pairs, SourceTargetDataset):
        return
    heads = getattr(model.domain_loss.discriminator, "num_domains", 2) if model.domain_head_kind == "domain" else 2
    domains = pairs.num_sources + 1
    if heads > 2 and heads != domains:
        raise ValueError(
            f"The model's discriminator tells {heads} domains apart but the training data has {domains} "
            f"({pairs.num_sources} source(s) + the target); build the model with num_domains={domains}."
        )
    if domains > 2 and objective.domain_head_kind == "domain" and heads != domains:
        raise ValueError(
            f"{pairs.num_sources} sources + the target need a discriminator over {domains} domains; build the model "
            f"with DomainAdaptationModel.from_backbone(..., num_domains={domains}), or pool the sources into one."
        )


class _TargetCycleCallback(TrainerCallback):
    """Moves the target cycle of :class:`SourceTargetDataset` on at each epoch (resume-safe)."""

    def __init__(self, dataset: SourceTargetDataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch or 0))


class DomainAdaptationTrainer(Trainer):
    """Trainer for LoRA + domain-adversarial adaptation.

    Args:
        model: a :class:`DomainAdaptationModel`.
        args: :class:`DomainAdaptationArguments`.
        source_dataset: labelled source examples (dicts of model inputs + ``labels``).
        target_dataset: target examples; labels, if any, are dropped unless
            ``args.num_target_labels`` allows some.
        eval_datasets: optional ``{"source": ds, "target": ds}`` (labelled), evaluated separately
            and reported as ``eval_source_accuracy``, ``eval_target_f1``, ...
        processing_class: the backbone's processor/tokenizer (saved with the model; a tokenizer
            also turns on dynamic padding).
        Other keyword arguments go to ``transformers.Trainer``.
    """

    # compute_loss returns per-batch means: the Trainer divides them by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: DomainAdaptationModel,
        args: DomainAdaptationArguments,
        source_dataset: DomainDataset | None = None,
        target_dataset: DomainDataset | None = None,
        eval_datasets: dict[str, DomainDataset] | None = None,
        processing_class: Processor | None = None,
        data_collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] | None = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, DomainAdaptationModel):
            raise TypeError(
                f"DomainAdaptationTrainer needs a DomainAdaptationModel, got {type(model).__name__}; "
                "build one with DomainAdaptationModel.from_backbone(backbone)."
            )
        if not isinstance(args, DomainAdaptationArguments):
            raise TypeError("args must be DomainAdaptationArguments (a TrainingArguments subclass).")
        check_launch(args)
        if not get_method(args.method).needs_source:
            raise ValueError(
                f"method {args.method!r} is source-free: it adapts a trained model with target data only. Run it with "
                "`hf-transfer adapt MODEL --target DATA --method "
                f"{args.method}` or hf_transfer.source_free.adapt (DomainAdaptationTrainer trains on source batches)."
            )
        train_dataset = None
        if source_dataset is not None or target_dataset is not None:
            train_dataset = self._pair_domains(model, args, source_dataset, target_dataset)
        for name, dataset in (eval_datasets or {}).items():
            if dataset is not None and len(dataset) == 0:
                raise ValueError(f"The {name!r} evaluation set is empty; drop it or pass examples.")
        self.objective = AlignmentObjective.from_arguments(args)
        if self.objective.domain_head_kind not in (None, model.domain_head_kind):
            raise ValueError(
                f"method {args.method!r} trains a {self.objective.domain_head_kind!r} domain head but the model has a "
                f"{model.domain_head_kind!r} one; build the model for these arguments with "
                "DomainAdaptationModel.from_backbone(backbone, objective=AlignmentObjective.from_arguments(args))."
            )
        _check_domain_count(model, train_dataset, self.objective)
        _warn_if_collapse_pays(model.config.num_labels, self.objective, args)
        self.task_weights = {name: w for name, w in args.task_weights.items() if w}
        missing = sorted(set(self.task_weights) - set(model.task_heads))
        if missing:
            raise ValueError(
                f"task_loss_weights names {missing} but the model has no head for them ({sorted(model.task_heads) or 'none'}): "
                "build it with DomainAdaptationModel.from_backbone(..., tasks=hf_transfer.auxiliary.tasks_for(...))."
            )
        callbacks = list(callbacks or [])
        if isinstance(train_dataset, SourceTargetDataset):
            callbacks.append(_TargetCycleCallback(train_dataset))
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_datasets or None,
            processing_class=processing_class,
            data_collator=data_collator or DomainBatchCollator.for_processor(processing_class),
            compute_metrics=compute_metrics or ClassificationMetrics(),
            callbacks=callbacks,
            **kwargs,
        )
        self.model_accepts_loss_kwargs = False
        self._discriminator_groups_split = False
        # Running sums of the logged alignment values, kept on the device and read only at logging steps.
        self._alignment_sums: dict[str, torch.Tensor] = {}
        self._alignment_steps = 0
        self._lambda_sum = 0.0
        # The first step whose loss was not finite (0 = none), kept on the device: read only when checked.
        self._first_nonfinite_step: torch.Tensor | None = None
        self._checkpoint_before: str | None = None  # the last checkpoint this run saved or resumed from
        self._record_run_info(model)

    # -- inputs ---------------------------------------------------------------------------------

    @staticmethod
    def _pair_domains(model, args, source, target) -> SourceTargetDataset:
        if source is None or len(source) == 0 or (isinstance(source, MultiSource) and any(len(s) == 0 for s in source)):
            raise ValueError("The source dataset is empty (or missing): pass labelled source examples.")
        if target is None or len(target) == 0:
            raise ValueError("The target dataset is empty (or missing): pass at least one target example.")
        sources = list(source) if isinstance(source, MultiSource) else [source]
        if isinstance(source, MultiSource) and len(sources) < 2:
            raise ValueError("MultiSource needs at least two sources; pass one source dataset as it is.")
        for other in sources[1:]:
            if label_names(other) != label_names(sources[0]):
                raise ValueError(
                    f"Label sets differ between sources: {label_names(sources[0])} vs {label_names(other)}. Align them "
                    "by name first (hf_transfer.data.align_labels)."
                )
        source_names, target_names = label_names(sources[0]), label_names(target)
        if source_names and target_names and source_names != target_names:
            raise ValueError(
                f"Label sets differ between domains: source {source_names} vs target {target_names}. "
                "Align them by name first (hf_transfer.data.align_labels, with label_mapping= for renamed classes)."
            )
        model_labels = [model.config.id2label[i] for i in sorted(model.config.id2label)]
        if source_names and len(source_names) != len(model_labels):
            raise ValueError(
                f"The source has {len(source_names)} classes {source_names} but the model's head has "
                f"{len(model_labels)}; load the backbone with label_names=<the source classes>."
            )
        shots = None
        if args.target_labels_per_class:
            shots = stratified_indices(dataset_labels(target), args.target_labels_per_class, seed=args.seed,
                                       name="The target (train split)")
        elif has_labels(target) and args.num_target_labels == 0:
            logger.warning(
                "The target dataset has labels but method=%s is unsupervised: they are dropped and never trained on "
                "(set target_labels_per_class to use K per class).",
                args.method,
            )
        return SourceTargetDataset(
            source, target, target_ratio=args.target_ratio, num_target_labels=args.num_target_labels, seed=args.seed,
            labelled_target_indices=shots,
        )

    def _record_run_info(self, model: DomainAdaptationModel) -> None:
        """What this run trains with goes into the model's run info (written by ``save_model``)."""
        args, info = self.args, model.run_info
        info.method = self.objective.method
        info.objective = self.objective.to_dict()
        info.grl = {"schedule": args.grl_schedule, "gamma": args.grl_gamma, "max_lambda": args.grl_max_lambda}
        info.training = {
                "max_steps": args.max_steps,
                "num_train_epochs": args.num_train_epochs,
                "learning_rate": args.learning_rate,
                "per_device_train_batch_size": args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "target_ratio": args.target_ratio,
                "num_target_labels": args.num_target_labels,
                "seed": args.seed,
                **({"task_loss_weights": self.task_weights} if self.task_weights else {}),
        }
        pairs = self.train_dataset
        if isinstance(pairs, SourceTargetDataset) and pairs.few_shot:
            info.training["target_labels_per_class"] = args.target_labels_per_class
            info.training["labelled_target_indices"] = sorted(pairs.few_shot)
        if isinstance(pairs, SourceTargetDataset) and pairs.multi_source:
            info.training["num_sources"] = pairs.num_sources

    # -- optimisation ---------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the discriminator in its own groups at ``lr × discriminator_lr_multiplier``."""
        optimizer = super().create_optimizer(model)
        multiplier = self.args.discriminator_lr_multiplier
        if multiplier == 1.0 or self._discriminator_groups_split:
            return optimizer
        discriminator = {id(p) for p in self.accelerator.unwrap_model(self.model).domain_loss.parameters()}
        new_groups = []
        for group in optimizer.param_groups:
            moved = [p for p in group["params"] if id(p) in discriminator]
            if moved:
                group["params"] = [p for p in group["params"] if id(p) not in discriminator]
                new_groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": moved,
                                   "lr": group["lr"] * multiplier})
        optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
        for group in new_groups:
            optimizer.add_param_group(group)
        self._discriminator_groups_split = True
        return optimizer

    # -- loss -----------------------------------------------------------------------------------

    def current_lambda(self) -> float:
        """λ for the current optimizer step, from the real run length."""
        max_steps = self.state.max_steps or 1
        return grl_lambda(
            self.state.global_step,
            max_steps,
            schedule=self.args.grl_schedule,
            gamma=self.args.grl_gamma,
            max_lambda=self.args.grl_max_lambda,
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        grl_lambda = self.current_lambda() if model.training else 1.0
        task_weights = self.task_weights if model.training else None  # auxiliary tasks train; evaluation scores them
        smoothing = self.args.label_smoothing_factor if model.training else 0.0  # evaluation reports the plain loss
        outputs = model(**inputs, objective=self.objective, grl_lambda=grl_lambda, task_weights=task_weights,
                        label_smoothing=smoothing)
        loss = outputs.loss
        if loss is None:
            raise ValueError("The batch has no labels: training and evaluation need a 'labels' column.")
        if model.training and outputs.alignment_logs is not None:
            values = {"classification_loss": outputs.classification_loss.detach(), **outputs.alignment_logs,
                      **(outputs.task_logs or {})}
            for key, value in values.items():
                value = value.float()
                self._alignment_sums[key] = self._alignment_sums[key] + value if key in self._alignment_sums else value
            self._alignment_steps += 1
            self._lambda_sum += grl_lambda
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # No host read here: a device flag remembers the first non-finite step, checked at logging/saving steps.
        bad = ~torch.isfinite(loss.detach()).all()
        if self._first_nonfinite_step is None:
            self._first_nonfinite_step = torch.zeros((), dtype=torch.long, device=loss.device)
        first = self._first_nonfinite_step
        self._first_nonfinite_step = torch.where(bad & (first == 0), self.state.global_step + 1, first)
        return loss

    def _raise_if_loss_was_non_finite(self) -> None:
        """One host read (all ranks together): raise :class:`NonFiniteLossError` if any step's loss was NaN/inf."""
        if self._first_nonfinite_step is None:
            return
        steps = self.accelerator.gather(self._first_nonfinite_step.reshape(1)).tolist()
        bad = [step for step in steps if step > 0]
        if not bad:
            return
        first = min(bad)
        ranks = [rank for rank, step in enumerate(steps) if step > 0]
        where = f" on rank(s) {ranks}" if len(steps) > 1 else ""
        if self._checkpoint_before is not None:
            saved = (
                f"The last checkpoint, {self._checkpoint_before}, is from before step {first} and intact (resume from "
                "it with resume_from_checkpoint)."
            )
        else:
            saved = "No checkpoint of this run exists yet: none was saved before it."
        raise NonFiniteLossError(
            f"Non-finite loss (NaN/inf) at step {first}{where}, found at step {self.state.global_step} (the loss is "
            f"read at logging steps, before checkpoints and at the end). Training stopped. {saved} Lower the learning "
            "rate or domain_loss_weight, or check the inputs for NaNs."
        )

    def _save_checkpoint(self, model, trial) -> None:
        self._raise_if_loss_was_non_finite()  # never write a checkpoint from after a non-finite step
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        self._checkpoint_before = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")

    def train(self, resume_from_checkpoint=None, *args: Any, **kwargs: Any):
        self._first_nonfinite_step = None  # a new run starts with a clean flag
        if resume_from_checkpoint:
            from transformers.trainer_utils import get_last_checkpoint

            self._checkpoint_before = (
                resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else get_last_checkpoint(self.args.output_dir)
            )
        output = super().train(resume_from_checkpoint, *args, **kwargs)
        self._raise_if_loss_was_non_finite()
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a logging step of training: the Trainer reads its own loss here too
            self._raise_if_loss_was_non_finite()
        if self._alignment_steps and "loss" in logs:
            keys = list(self._alignment_sums)
            sums = self.accelerator.gather(torch.stack([self._alignment_sums[k] for k in keys]).unsqueeze(0))
            means = (sums.float().mean(0) / self._alignment_steps).tolist()  # the one host read, at logging steps
            for key, mean in zip(keys, means):
                logs[key] = round(mean, 6)
            logs["grl_lambda"] = round(self._lambda_sum / self._alignment_steps, 6)
            self._alignment_sums.clear()
            self._alignment_steps, self._lambda_sum = 0, 0.0
        super().log(logs, start_time)

    # -- saving / loading -----------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        model.save_pretrained(output_dir, state_dict=state_dict)
        save_processor(self.processing_class, model, output_dir)
        torch.save(portable_training_args(self.args, output_dir), os.path.join(output_dir, TRAINING_ARGS_NAME))
        self.create_model_card(output_dir=output_dir)

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        *,
        output_dir: str | None = None,
    ) -> None:
        """The Trainer's public card hook, writing hf_transfer's card (``README.md``) into ``output_dir``.

        It replaces peft's generic card, which records the local base-model path, so the folder can be uploaded by
        any means without leaking a path; ``push_to_hub`` re-renders it for the real repo id. ``tags`` are added to
        the card's own; ``license`` and ``finetuned_from`` (a Hub id) override the run's. A card that cannot be
        rendered is logged, never a failed save.
        """
        from .cards import build_model_card
        from .utils.io import write_text_atomic

        args = self.args
        output_dir = output_dir or args.output_dir
        repo_id = args.hub_model_id or model_name or f"your-username/{Path(output_dir).absolute().name}"
        try:
            card = build_model_card(
                output_dir, repo_id=repo_id, domain=args.hub_card_domain,
                base_model=finetuned_from or args.hub_base_model_repo_id, license=license or args.hub_license,
                extra_tags=[tags] if isinstance(tags, str) else tags,
            )
        except Exception as error:  # the adapter is saved; the card is documentation
            logger.warning("Could not render the model card in %s: %s", output_dir, error)
            return
        write_text_atomic(Path(output_dir) / MODEL_CARD_NAME, str(card))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        if not os.path.isfile(os.path.join(resume_from_checkpoint, DISCRIMINATOR_WEIGHTS_NAME)):
            raise ValueError(f"{resume_from_checkpoint} is not an hf_transfer checkpoint (no {DISCRIMINATOR_WEIGHTS_NAME}).")
        model.load_adapter_weights(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        logger.info("Loading best model from %s (score: %s).", self.state.best_model_checkpoint, self.state.best_metric)
        self.accelerator.unwrap_model(self.model).load_adapter_weights(self.state.best_model_checkpoint)

    # -- Hub ----------------------------------------------------------------------------------------
    # push_to_hub=True keeps the Trainer's workflow (push on save_model / every checkpoint save unless
    # hub_strategy="end") but every upload is hf_transfer.hub.push_to_hub: one atomic commit holding the adapter,
    # processor, discriminator, run info and a domain-aware card, with Hub ids only (no local paths).

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Resolve ``hub_model_id`` to ``namespace/name``; the repo itself is created by the first push."""
        if not self.is_world_process_zero():
            return
        from huggingface_hub import HfApi

        from .hub.push import resolve_token

        repo_id = self.args.hub_model_id or Path(self.args.output_dir).absolute().name
        if "/" not in repo_id:
            token = resolve_token(token if token is not None else self.args.hub_token)
            repo_id = f"{HfApi(token=token).whoami()['name']}/{repo_id}"
        self.hub_model_id = repo_id
        self.push_in_progress = None

    def _hub_push(self, folder: str, commit_message: str, *, token=None, revision=None, private=None):
        from .hub import push_to_hub

        args = self.args
        return push_to_hub(
            folder,
            self.hub_model_id,
            base_model_repo_id=args.hub_base_model_repo_id,
            private=bool(args.hub_private_repo) if private is None else private,
            revision=revision if revision is not None else args.hub_revision,
            commit_message=commit_message,
            include_discriminator=args.hub_include_discriminator,
            token=token if token is not None else args.hub_token,
            domain=args.hub_card_domain,
            license=args.hub_license,
        )

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ):
        """Save the model to ``output_dir`` and push it in one commit (see :func:`hf_transfer.hub.push_to_hub`).

        Always blocking (a single commit is what keeps a failed push from changing the remote). Card fields come
        from the run itself; ``hub_card_domain``/``hub_license`` choose the card's section and licence.
        """
        if kwargs:
            logger.warning("push_to_hub: ignoring %s (the card is built from the run's own metadata).", sorted(kwargs))
        if not blocking:
            logger.info("push_to_hub: hf_transfer pushes are always blocking (one atomic commit).")
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        if self.hub_model_id is None:
            self.init_hf_repo(token=token)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        return self._hub_push(
            self.args.output_dir, commit_message or "End of training", token=token, revision=revision, private=private
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """At each checkpoint save (unless ``hub_strategy="end"``) push that checkpoint's adapter as the model.

        A failed intermediate push is logged and training goes on; the final push raises. Optimizer state is not
        uploaded (resume from the local checkpoint).
        """
        if not self.is_world_process_zero() or self.args.hub_strategy == "end":
            return
        from .hub import HubPushError

        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        try:
            self._hub_push(checkpoint_folder, f"Training in progress, step {self.state.global_step}")
        except HubPushError as exc:
            logger.warning("Checkpoint push at step %d failed (training continues): %s", self.state.global_step, exc)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """The Trainer's evaluation per split, plus the label-free validators on the target split.

        ``args.validators`` score the target eval split's logits and pooled features (never its labels), with the
        source eval split where a validator needs it (evaluated first), and are logged as ``eval_target_<name>``
        (see :mod:`hf_transfer.evaluation_features`).
        """
        from .evaluation_features import source_first

        if eval_dataset is None and isinstance(self.eval_dataset, dict) and list(self.eval_dataset) != source_first(
            list(self.eval_dataset)
        ):
            metrics = {}
            for name in source_first(list(self.eval_dataset)):
                metrics.update(self.evaluate(name, ignore_keys, f"{metric_key_prefix}_{name}"))
            return metrics
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        metrics.update(self._task_metrics(eval_dataset, metric_key_prefix))
        # Kept with the model so save_model() writes them into domain_adaptation.json (and the card).
        model = self.accelerator.unwrap_model(self.model)
        model.run_info.metrics.update(
            {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not k.endswith(("_runtime", "_per_second"))}
        )
        return metrics

    @torch.no_grad()
    def _task_metrics(self, eval_dataset: Any, prefix: str) -> dict[str, float]:
        """Each auxiliary task's accuracy on one evaluation split: ``<prefix>_<task>_accuracy``.

        A label task counts the rows that carry its labels; rotation needs none, so it is scored on every domain,
        the target included: each image turned by 0°, 90°, 180° and 270°.
        """
        from .auxiliary import NUM_ROTATIONS, pop_task_labels, rotate_images

        model = self.accelerator.unwrap_model(self.model)
        if not len(model.task_heads) or (eval_dataset is None and isinstance(self.eval_dataset, dict)):
            return {}  # a dict of splits: each split's own evaluate call scored it
        counts = {name: torch.zeros(2, device=self.args.device) for name in model.task_heads}
        was_training = model.training
        model.eval()
        for batch in self.get_eval_dataloader(eval_dataset):
            batch = self._prepare_inputs(batch)
            batch.pop("labels", None)
            batch.pop("domain_labels", None)
            task_labels = pop_task_labels(batch)
            features = None
            for name, spec in model.task_specs.items():
                if spec.kind == "rotation":
                    images = batch[model.main_input_name]
                    for k in range(NUM_ROTATIONS):
                        turned = rotate_images(images, torch.full((len(images),), k))
                        logits = model.task_heads[name](model.extract_features(**{**batch, model.main_input_name: turned}).float())
                        counts[name] += torch.stack([(logits.argmax(-1) == k).sum().float(),
                                                     torch.tensor(float(len(images)), device=logits.device)])
                elif name in task_labels:
                    features = features if features is not None else model.extract_features(**batch).float()
                    labels = task_labels[name]
                    counted = labels != -100
                    correct = ((model.task_heads[name](features).argmax(-1) == labels) & counted).sum().float()
                    counts[name] += torch.stack([correct, counted.sum().float()])
        model.train(was_training)
        metrics = {}
        for name, count in counts.items():
            correct, total = self.accelerator.reduce(count, reduction="sum").tolist()
            if total:
                metrics[f"{prefix}_{name}_accuracy"] = correct / total
        return metrics

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix: str = "eval"):
        from .evaluation_features import validator_evaluation

        return validator_evaluation(self).run(
            self, super().evaluation_loop, dataloader, description, prediction_loss_only, ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
