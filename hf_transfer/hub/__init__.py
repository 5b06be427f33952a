"""The Hugging Face Hub: push adapted models (:mod:`.push`) and load them back (:mod:`.load`).

``hf-transfer push`` (the command-line glue around :func:`push_to_hub`) lives in :mod:`hf_transfer.cli`.
"""

from __future__ import annotations

from .load import (
    DOWNLOAD_PATTERNS,
    ContinuedAdaptation,
    HubLoadError,
    download_adapted_model,
    load_adapted_model,
    load_for_continued_adaptation,
)
from .push import (
    BASE_MODEL_FILES,
    PROCESSOR_FILES,
    REQUIRED_FILES,
    HubPushError,
    resolve_token,
    check_output_dir,
    prepare_push_operations,
    push_base_model,
    push_local_base,
    push_to_hub,
    resolve_base_model_id,
)

__all__ = [
    "BASE_MODEL_FILES",
    "DOWNLOAD_PATTERNS",
    "PROCESSOR_FILES",
    "REQUIRED_FILES",
    "ContinuedAdaptation",
    "HubLoadError",
    "HubPushError",
    "check_output_dir",
    "download_adapted_model",
    "load_adapted_model",
    "load_for_continued_adaptation",
    "prepare_push_operations",
    "push_base_model",
    "push_local_base",
    "push_to_hub",
    "resolve_base_model_id",
    "resolve_token",
]
