"""Progress people can read: each stage says when it starts, the Trainer's bar shows how far it has got, and the
Trainer's log dicts become one readable line on the logger instead of a raw dict on stdout.

``hf-transfer --verbose`` (:data:`VERBOSE`) keeps the Trainer's own output (raw dicts). Standard library only
at import time: the callback class is built when a trainer asks for it.
"""

from __future__ import annotations

import logging
from typing import Any

VERBOSE = False
"""Set by ``hf-transfer --verbose``: leave the Trainer's raw log dicts as they are."""

logger = logging.getLogger(__name__)

_HIDDEN = ("total_flos",)


def stage(number: int, total: int, text: str) -> None:
    """Say that stage ``number`` of ``total`` starts: ``Stage 2/3: adaptation (dann, 200 steps)``."""
    logger.info("Stage %d/%d: %s", number, total, text)


def format_logs(logs: dict[str, Any]) -> str:
    """A Trainer log dict as one line: ``loss 1.77, classification_loss 1.08, domain_accuracy 0.5, ...``."""
    parts = []
    for key, value in logs.items():
        if key in _HIDDEN:
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def readable_progress(trainer: Any, name: str) -> None:
    """Swap the Trainer's printing callbacks for :func:`readable_callback`'s (unless :data:`VERBOSE`).

    The progress bar stays when the Trainer had one (``disable_tqdm`` off); the log dicts go to this module's
    logger as ``<name> step 50/600: loss 1.77, ...``.
    """
    if VERBOSE:
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    had_bar = trainer.pop_callback(ProgressCallback) is not None
    trainer.pop_callback(PrinterCallback)
    trainer.add_callback(readable_callback(name, bar=had_bar))


def readable_callback(name: str, *, bar: bool = True) -> Any:
    """A ``ProgressCallback`` (bars for training and evaluation when ``bar``) that logs the log dicts as lines."""
    from transformers.trainer_callback import ProgressCallback

    class ReadableProgressCallback(ProgressCallback):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.bar = name, bar

        def on_train_begin(self, args, state, control, **kwargs):
            if self.bar:
                super().on_train_begin(args, state, control, **kwargs)
            else:
                self.current_step = 0

        def on_step_end(self, args, state, control, **kwargs):
            if self.training_bar is not None:
                super().on_step_end(args, state, control, **kwargs)

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if self.bar:
                super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                logger.info("%s step %d/%d: %s", self.name, state.global_step, state.max_steps, format_logs(logs))

        def on_train_end(self, args, state, control, **kwargs):
            if self.training_bar is not None:
                super().on_train_end(args, state, control, **kwargs)

    return ReadableProgressCallback()


__all__ = ["VERBOSE", "format_logs", "readable_callback", "readable_progress", "stage"]
