"""The ``train`` job: config → data → backbone → LoRA + DANN → Trainer → saved adapter.

The same steps a user would write by hand with the Python API, in one function that the
CLI and the recipes call. Arguments are dataclasses parsed by ``HfArgumentParser``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .privacy import is_hub_id, public_split_name
from .data import (
    DomainDataArguments,
    align_labels,
    build_transform,
    check_modality,
    dataloader_settings,
    infer_modality,
    load_domain,
    parse_label_mapping,
    scan_domain,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformers import TrainerCallback

    from .modalities import Processor
    from .training_args import DomainAdaptationArguments

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which backbone to adapt, and how to read inputs for it."""

    model_name_or_path: str = field(metadata={"help": "Hub id or local folder of the backbone checkpoint."})
    revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit of the checkpoint."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom code from the checkpoint (off)."})
    max_length: int | None = field(default=128, metadata={"help": "Text: tokens kept per example."})
    max_duration_s: float | None = field(default=None, metadata={"help": "Audio: seconds kept (pad/truncate)."})
    label_mapping: str | None = field(
        default=None, metadata={"help": "Rename target labels to source names, e.g. 'pos=positive,neg=negative'."}
    )
    allow_extra_target_labels: bool = field(
        default=False, metadata={"help": "Allow target classes the source lacks (they are treated as unlabelled)."}
    )
    skip_bad_examples: bool = field(
        default=False, metadata={"help": "Skip unreadable files (listed in a warning) instead of stopping."}
    )
    allow_missing_target_labels: bool = field(
        default=False,
        metadata={"help": "Allow a target (train) split that lacks some source classes, e.g. a class with one image."},
    )
    random_init: bool = field(
        default=False,
        metadata={
            "help": "Build the architecture from model_name_or_path's config.json with random weights (no weights "
            "needed); use with a pretraining stage (pretraining.epochs > 0)."
        },
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "help": "Images: resize and crop to this many pixels instead of the checkpoint's size (e.g. 96 instead "
            "of 224, for CPU runs); convolutional and timm backbones only."
        },
    )
    image_augmentation: str = field(
        default="none",
        metadata={
            "help": "Augment labelled source images: 'none', 'flip' (flips + 90° turns), 'color' (flip + "
            "brightness/contrast/saturation) or 'stain' (color + HED stain jitter, for histology/cytology)."
        },
    )
    audio_augmentation: str = field(
        default="none",
        metadata={
            "help": "Augment labelled source audio: 'none', 'speed' (speed perturbation ×0.9/1.0/1.1, for speaker "
            "shifts) or 'speed_gain' (speed + ±6 dB gain)."
        },
    )


@dataclass
class SourcePretrainingArguments:
    """Optional first stage: fully fine-tune the backbone on the labelled source, then adapt from it."""

    epochs: float = field(default=0.0, metadata={"help": "Source pretraining epochs; 0 skips the stage."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the pretraining stage."})
    batch_size: int = field(default=64, metadata={"help": "Per-device batch size of the pretraining stage."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay of the pretraining stage."})
    warmup_steps: float = field(default=0, metadata={"help": "Linear warmup steps (a float < 1 is a fraction of the stage)."})
    image_augmentation: str | None = field(
        default=None,
        metadata={
            "help": "Source-image augmentation of this stage ('none', 'flip', 'color', 'stain'); default: the same "
            "as model.image_augmentation. Set it to pretrain with a different augmentation than the adaptation."
        },
    )
    output_subdir: str = field(
        default="source-pretrained",
        metadata={"help": "Where (under training.output_dir) the pretrained backbone is saved with save_pretrained."},
    )

    def __post_init__(self) -> None:
        from .data import AUGMENTATIONS

        if self.image_augmentation is not None and self.image_augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"pretraining.image_augmentation must be one of {AUGMENTATIONS} (or unset to follow "
                f"model.image_augmentation), got {self.image_augmentation!r}."
            )


@dataclass
class SourceDataArguments(DomainDataArguments):
    """The labelled source domain."""


@dataclass
class TargetDataArguments(DomainDataArguments):
    """The (unlabelled) target domain; its labels are only used for evaluation."""


def _domain_description(args: DomainDataArguments) -> dict[str, Any]:
    on_hub = is_hub_id(args.dataset) and not os.path.exists(args.dataset)
    return {
        "dataset": args.dataset if on_hub else None,  # local paths never reach the card
        "config": args.config,
        "split": args.split,
        "eval_split": args.eval_split if on_hub else public_split_name(args.eval_split),  # a local one may be a path
        **({"revision": args.revision, "data_dir": args.data_dir} if on_hub else {}),
        "description": args.description,
        "license": args.license,
        **({"center_crop": args.center_crop} if args.center_crop is not None else {}),
        **({"filter": {"column": args.filter_column, "values": list(args.filter_values or [])}}
           if args.filter_column is not None else {}),
    }


def domain_transforms(
    processor: Processor, modality: str, model_args: ModelArguments, source_args: DomainDataArguments,
    target_args: DomainDataArguments, task_classes: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``Dataset.with_transform`` callables for ``source``, ``target``, ``eval_source`` and ``eval_target``.

    A domain's ``center_crop`` applies to its training and evaluation images (it is how that
    domain's images are framed); ``model.image_augmentation`` / ``model.audio_augmentation`` to the
    source training set only.
    """
    from .data import build_audio_augmentation, build_image_augmentation

    augmentations = {
        "image": build_image_augmentation(model_args.image_augmentation),
        "audio": build_audio_augmentation(model_args.audio_augmentation),
    }
    for kind, augmentation in augmentations.items():
        if augmentation is not None and kind != modality:
            raise ValueError(f"model.{kind}_augmentation is for {kind} data but this domain is {modality}; set it to 'none'.")
    augment = augmentations.get(modality)
    domain_args = {"source": source_args, "target": target_args}
    return {
        name: build_transform(
            processor,
            modality,
            max_length=model_args.max_length,
            max_duration_s=model_args.max_duration_s,
            skip_bad_examples=model_args.skip_bad_examples,
            augment=augment if name == "source" else None,
            center_crop=domain_args[name.removeprefix("eval_")].center_crop,
            task_classes=task_classes,
        )
        for name in ("source", "target", "eval_source", "eval_target")
    }


def _load_split(args: DomainDataArguments, split: str | None, seed: int, task_columns: list[str]):
    return load_domain(args, split=split, seed=seed, task_columns=task_columns) if split else None


def _task_classes(source: Any, task_columns: list[str]) -> dict[str, list[str]]:
    """Each auxiliary label column's classes: the source's values, sorted (the target's are matched by name)."""
    classes = {}
    for column in task_columns:
        names = sorted({v for v in source[f"task__{column}"] if v is not None})
        if len(names) < 2:
            raise ValueError(f"The source's task column {column!r} has {len(names)} class(es) {names}; a task needs two.")
        classes[column] = names
    return classes


def _training_split(args: DomainDataArguments, seed: int, task_columns: list[str] = (), require_task_columns=False):
    """A domain's training split; ``examples_per_class`` keeps K per class (the few-shot draw, same seed)."""
    from .data.few_shot import stratified_indices

    dataset = load_domain(args, seed=seed, task_columns=task_columns, require_task_columns=require_task_columns)
    if args.examples_per_class:
        keep = stratified_indices(dataset.with_format(None)["label"], args.examples_per_class, seed=seed,
                                  name=f"{args.dataset!r} (examples_per_class)")
        dataset = dataset.select(keep)
    return dataset


def source_list(source_args: DomainDataArguments | list[DomainDataArguments]) -> list[DomainDataArguments]:
    """The labelled sources of a run: one ``source`` section, or the ``sources:`` list."""
    return list(source_args) if isinstance(source_args, (list, tuple)) else [source_args]


def source_split_names(count: int) -> list[str]:
    """Evaluation names of the sources: ``source`` alone, else ``source_1`` .. ``source_K`` (domain ids 0..K-1)."""
    return ["source"] if count == 1 else [f"source_{k + 1}" for k in range(count)]


def _align_sources(sources: list, source_args: list[DomainDataArguments]) -> list:
    """Sources 2..K in source 1's label ids, by name; a class missing from (or extra in) one source is an error."""
    aligned = [sources[0]]
    for k, other in enumerate(sources[1:], start=2):
        try:
            _, other, _ = align_labels(sources[0], other)
        except ValueError as error:
            raise ValueError(
                f"sources[{k - 1}] ({source_args[k - 1].description or source_args[k - 1].dataset}) does not have "
                f"the classes of sources[0]: {error} Every source must hold every class, named alike."
            ) from None
        aligned.append(other)
    return aligned


def _pool(datasets_: list):
    """Several aligned domains as one dataset (the pooled-sources baseline, the pooled source evaluation)."""
    import datasets

    return datasets_[0] if len(datasets_) == 1 else datasets.concatenate_datasets(datasets_)


def run_training(
    model_args: ModelArguments,
    source_args: DomainDataArguments | list[DomainDataArguments],
    target_args: DomainDataArguments,
    training_args: DomainAdaptationArguments,
    pretraining_args: SourcePretrainingArguments | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Train, evaluate per domain, and save the adapted model to ``training_args.output_dir``.

    After training, ``training_args.shift_report`` measures the shift before/after adaptation and draws the
    run's pictures into the output folder (:func:`~hf_transfer.diagnostics.shift_report`). ``callbacks`` go to
    the Trainer (the sweep's pruner reports the validator score through one).

    With ``pretraining_args.epochs > 0`` the backbone is first fully fine-tuned on the source
    (:func:`~hf_transfer.pretraining.pretrain_on_source`), saved under ``output_dir`` and adapted from there.

    ``source_args`` may list several sources (a config's ``sources:``): their labels are aligned by name, every
    batch holds one example of each (:class:`~hf_transfer.data.pairing.MultiSource`), DANN's discriminator tells
    the K sources and the target apart, and each source is evaluated on its own (``eval_source_<k>_*``) and pooled
    (``eval_source_*``). ``training_args.pool_sources`` pools them into one source instead (the baseline).
    """
    from transformers import set_seed

    from .alignment.objective import AlignmentObjective
    from .backbones import load_backbone
    from .checkpoints import resolve_resume
    from .distributed import check_launch
    from .modeling import DomainAdaptationModel
    from .data.pairing import MultiSource
    from .progress import readable_progress
    from .progress import stage as announce
    from .trainer import DomainAdaptationTrainer

    check_launch(training_args)  # before any work: N processes that would train N separate models stop here
    # 'last' / 'true' mean the newest complete checkpoint in output_dir
    training_args.resume_from_checkpoint = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    seed = training_args.seed
    set_seed(seed)  # before anything random is built: a random_init backbone, LoRA's A matrices, the discriminator
    task_columns = [name for name in training_args.task_weights if name != "rotation"]  # further label columns
    all_source_args = source_list(source_args)
    sources = [_training_split(args, seed, task_columns, require_task_columns=True) for args in all_source_args]
    target = _training_split(target_args, seed, task_columns)
    modality = infer_modality(sources[0])
    for name, dataset in (*((f"source {k + 1}", d) for k, d in enumerate(sources[1:], start=1)), ("target", target)):
        if infer_modality(dataset) != modality:
            raise ValueError(
                f"The source domain is {modality} but the {name} domain is {infer_modality(dataset)}: every domain "
                "must hold the same kind of input."
            )
    sources = _align_sources(sources, all_source_args)
    mapping = parse_label_mapping(model_args.label_mapping) if model_args.label_mapping else None
    source, target, names = align_labels(
        sources[0], target, label_mapping=mapping, allow_extra_target_labels=model_args.allow_extra_target_labels,
        allow_missing_target_labels=model_args.allow_missing_target_labels,
    )
    several = len(sources) > 1
    if several:
        source = _pool(sources)  # what the pretraining stage, the probe and the pooled baseline train on
    elif training_args.pool_sources:
        logger.warning("training.pool_sources is set but the config has one source: nothing to pool.")
    evals = {}
    source_names = source_split_names(len(sources))
    for domain, args in (*zip(source_names, all_source_args), ("target", target_args)):
        split = _load_split(args, args.eval_split, seed, task_columns)
        if split is not None:
            # Label ids follow the training source's classes; an eval split may lack a class (it is only scored on
            # what it has) and, with allow_extra_target_labels, hold extra ones (unlabelled, left out of metrics).
            _, split, _ = align_labels(
                sources[0], split, label_mapping=mapping if domain == "target" else None,
                allow_extra_target_labels=model_args.allow_extra_target_labels, allow_missing_target_labels=True,
            )
            evals[domain] = split
    if several and all(name in evals for name in source_names):
        try:
            evals["source"] = _pool([evals[name] for name in source_names])  # the sources together
        except ValueError as error:  # e.g. differently typed input columns: each source is still scored
            logger.warning("The sources' evaluation splits cannot be pooled (%s); each is evaluated alone.", error)
    order = dict.fromkeys(["source", *source_names, "target"])  # the pooled sources, each source, the target
    evals = {name: evals[name] for name in order if name in evals}

    from .auxiliary import check_tasks_fit, tasks_for

    task_classes = _task_classes(source, task_columns)
    tasks = tasks_for(training_args.task_weights, task_classes)
    check_tasks_fit(tasks, modality)  # before the backbone loads: rotation is for images only
    backbone = load_backbone(
        model_args.model_name_or_path,
        label_names=names,
        modality=modality,
        revision=model_args.revision,
        trust_remote_code=model_args.trust_remote_code,
        random_init=model_args.random_init,
        image_size=model_args.image_size,
    )
    check_modality(backbone.processor, modality, backbone=model_args.model_name_or_path)
    per_source = [domain_transforms(backbone.processor, modality, model_args, args, target_args, task_classes)
                  for args in all_source_args]
    transforms = per_source[0]
    datasets = {"source": source, "target": target, **{f"eval_{k}": v for k, v in evals.items()}}
    if several:
        datasets.update({f"train_{name}": d for name, d in zip(source_names, sources)})
    ready = {}
    for name, dataset in datasets.items():
        if modality != "text":
            dataset, report = scan_domain(dataset, modality, skip_bad_examples=model_args.skip_bad_examples)
            if report.num_bad:
                logger.warning("%s: %s", name, report.summary())
        ready[name] = dataset.with_transform(_transform_of(name, transforms, per_source, source_names))
    if modality != "text" and training_args.dataloader_num_workers == 0:
        # Decode images/audio in worker processes while the main process trains (Trainer default is 0).
        training_args.dataloader_num_workers = dataloader_settings(training_args.device)["num_workers"]

    base_model_name_or_path = model_args.model_name_or_path
    pretrain = pretraining_args is not None and pretraining_args.epochs > 0
    stages = 2 + pretrain + bool(evals)
    if pretrain:
        announce(1, stages, f"source pretraining ({pretraining_args.epochs:g} epochs on {len(source)} source examples)")
        stage = dict(ready)
        augmentation = pretraining_args.image_augmentation
        if (augmentation is not None and augmentation != model_args.image_augmentation) or task_classes:
            stage_model_args = replace(model_args, image_augmentation=augmentation or model_args.image_augmentation)
            # no task labels here: the plain backbone of this stage has no auxiliary heads
            stage_transform = domain_transforms(backbone.processor, modality, stage_model_args, all_source_args[0], target_args)
            stage["source"] = ready["source"].with_transform(stage_transform["source"])  # replaces the transform
            if "eval_source" in ready:
                stage["eval_source"] = ready["eval_source"].with_transform(stage_transform["eval_source"])
        base_dir = _pretrain_backbone(backbone, stage, pretraining_args, training_args)
        backbone = load_backbone(base_dir, label_names=names, modality=modality, image_size=model_args.image_size)
        base_model_name_or_path = str(base_dir)
    elif model_args.random_init:
        logger.warning("random_init without a pretraining stage: LoRA will adapt a randomly initialised backbone.")

    model = DomainAdaptationModel.from_backbone(
        backbone.model,
        lora_r=training_args.lora_r,
        lora_alpha=training_args.lora_alpha,
        lora_dropout=training_args.lora_dropout,
        lora_target_modules=training_args.lora_target_modules,
        discriminator_hidden_size=training_args.discriminator_hidden_size,
        discriminator_num_layers=training_args.discriminator_num_layers,
        discriminator_dropout=training_args.discriminator_dropout,
        base_model_name_or_path=base_model_name_or_path,
        objective=AlignmentObjective.from_arguments(training_args),
        seed=seed,
        num_domains=len(sources) + 1 if several and not training_args.pool_sources else 2,
        tasks=tasks,
    )
    model.run_info.source_domain = _domain_description(all_source_args[0])
    if several:
        model.run_info.source_domains = [_domain_description(args) for args in all_source_args]
    model.run_info.target_domain = _domain_description(target_args)
    train_source = ready["source"]
    if several and not training_args.pool_sources:
        train_source = MultiSource([ready[f"train_{name}"] for name in source_names])
    trainer = DomainAdaptationTrainer(
        model=model,
        args=training_args,
        source_dataset=train_source,
        target_dataset=ready["target"],
        eval_datasets={k[len("eval_"):]: v for k, v in ready.items() if k.startswith("eval_")} or None,
        processing_class=backbone.processor,
        callbacks=callbacks,
    )
    if several:
        model.run_info.training.update(num_sources=len(sources), pooled_sources=bool(training_args.pool_sources))
    readable_progress(trainer, "adaptation")
    resume = training_args.resume_from_checkpoint
    resuming = f", resuming from {resume}" if resume else ""
    announce(1 + pretrain, stages, f"adaptation ({training_args.method}, LoRA r={training_args.lora_r}{resuming})")
    trainer.train(resume_from_checkpoint=resume)
    metrics = {}
    if trainer.eval_dataset:
        splits = [f"{name} {args.eval_split!r}" for name, args in (*zip(source_names, all_source_args),
                                                                     ("target", target_args)) if name in evals]
        announce(2 + pretrain, stages, f"evaluation on {' and '.join(splits)}")
        metrics = trainer.evaluate()
    if training_args.save_target_predictions:
        from .evaluation_features import save_target_predictions

        save_target_predictions(trainer, training_args.output_dir)
    from .diagnostics.report import shift_report

    shift_report(trainer, source=ready.get("eval_source", source.with_transform(transforms["eval_source"])))
    announce(stages, stages, f"saving the adapted model to {training_args.output_dir}")
    trainer.save_model(training_args.output_dir)  # written by the main process only
    trainer.accelerator.wait_for_everyone()
    return metrics


def _transform_of(name: str, transforms: dict[str, Any], per_source: list[dict[str, Any]], source_names: list[str]):
    """The transform of a dataset of the run: source ``k``'s own (its ``center_crop``) for its splits, else the first's."""
    role = name.removeprefix("train_").removeprefix("eval_")
    if role in source_names and len(source_names) > 1:
        own = per_source[source_names.index(role)]
        return own["eval_source"] if name.startswith("eval_") else own["source"]
    return transforms[name]


def _pretrain_backbone(backbone, ready: dict[str, Any], pretraining_args: SourcePretrainingArguments, training_args):
    """Stage 1: full fine-tuning on the (augmented) labelled source; returns the saved backbone's folder."""
    from transformers import TrainingArguments

    from .data import DomainBatchCollator
    from .pretraining import pretrain_on_source

    base_dir = os.path.join(training_args.output_dir, pretraining_args.output_subdir)
    if training_args.resume_from_checkpoint and os.path.isfile(os.path.join(base_dir, "model.safetensors")):
        logger.info("Resuming: reusing the source-pretrained backbone in %s.", base_dir)
        return base_dir
    args = TrainingArguments(
        output_dir=base_dir,
        num_train_epochs=pretraining_args.epochs,
        learning_rate=pretraining_args.learning_rate,
        per_device_train_batch_size=pretraining_args.batch_size,
        per_device_eval_batch_size=training_args.per_device_eval_batch_size,
        weight_decay=pretraining_args.weight_decay,
        warmup_steps=pretraining_args.warmup_steps,
        seed=training_args.seed,
        report_to=training_args.report_to,
        logging_steps=training_args.logging_steps,
        save_strategy="no",
        remove_unused_columns=False,
        dataloader_num_workers=training_args.dataloader_num_workers,
        dataloader_pin_memory=training_args.dataloader_pin_memory,
        disable_tqdm=training_args.disable_tqdm,
        use_cpu=training_args.use_cpu,
        bf16=training_args.bf16,
        fp16=training_args.fp16,
        ddp_timeout=training_args.ddp_timeout,
    )
    metrics = pretrain_on_source(
        backbone.model,
        ready["source"],
        args,
        eval_dataset=ready.get("eval_source"),
        processor=backbone.processor,
        data_collator=DomainBatchCollator.for_processor(backbone.processor),
        save_directory=base_dir,
    )
    if metrics:
        logger.info("Source pretraining: held-out source accuracy %.4f", metrics.get("eval_accuracy", float("nan")))
    return base_dir
