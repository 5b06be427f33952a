"""Calls into peft that must not print a deprecation warning about our own use.

peft (0.17 to 0.21) reads ``model.is_gradient_checkpointing`` whenever it wraps a model
(``PeftModel.__init__``, so ``get_peft_model`` and ``PeftModel.from_pretrained``). transformers 5
deprecated that property in favour of ``is_activation_checkpointing`` and warns with a
``FutureWarning`` on every read, so every run printed it once per model we wrapped. The read is
peft's, not ours, and there is nothing to change on our side but the call: these helpers wrap it
and filter exactly that one message, so any other warning still shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_GRADIENT_CHECKPOINTING_DEPRECATION = r"`is_gradient_checkpointing` is deprecated"


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Context for ``get_peft_model`` / ``PeftModel.from_pretrained``: hides transformers' warning about peft's read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_GRADIENT_CHECKPOINTING_DEPRECATION, category=FutureWarning)
        yield


__all__ = ["peft_wrapping"]
