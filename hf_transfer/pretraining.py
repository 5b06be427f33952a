"""Source pretraining: fine-tune a backbone fully on the source domain first.

The classic first step of domain adaptation ("train on source, then adapt"): a randomly
initialised (or generic) backbone becomes a real source-domain model, saved with
``save_pretrained`` so that LoRA + DANN can start from it exactly as from a Hub checkpoint.
This is also how the offline demo gets a pretrained backbone without any download.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from transformers import PreTrainedModel, Trainer, TrainingArguments, default_data_collator

from .metrics import ClassificationMetrics
from .progress import readable_progress
from .utils.io import atomic_directory_update

logger = logging.getLogger(__name__)


def pretrain_on_source(
    model: PreTrainedModel,
    train_dataset: Any,
    args: TrainingArguments,
    *,
    eval_dataset: Any = None,
    processor: Any = None,
    data_collator: Any = None,
    save_directory: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Fully fine-tune ``model`` on labelled source data and ``save_pretrained`` it.

    Args:
        model: an ``AutoModelFor*Classification`` backbone (all weights trainable).
        train_dataset: source examples (model inputs + ``labels``).
        args: ordinary ``TrainingArguments`` (epochs, learning rate, ``report_to``...).
        eval_dataset: optional held-out source set; its accuracy is returned.
        processor: saved next to the model, so the folder loads like a Hub checkpoint.
        save_directory: where to save (default ``args.output_dir``).

    Returns:
        the evaluation metrics (``eval_accuracy``, ``eval_f1``) when ``eval_dataset`` is given.
    """
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator or default_data_collator,
        compute_metrics=ClassificationMetrics() if eval_dataset is not None else None,
    )
    readable_progress(trainer, "source pretraining")
    trainer.train()
    metrics = trainer.evaluate() if eval_dataset is not None else {}
    save_directory = str(save_directory or args.output_dir)
    if args.should_save:  # the main process writes; under DDP the others wait for it, then all load the folder
        with atomic_directory_update(save_directory) as scratch:  # a crash mid-save leaves no torn checkpoint
            model.save_pretrained(scratch)
            if processor is not None:
                processor.save_pretrained(scratch)
        logger.info("Source-pretrained backbone saved to %s", save_directory)
    trainer.accelerator.wait_for_everyone()
    return metrics
