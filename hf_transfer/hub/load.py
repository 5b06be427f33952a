"""Load adapted models back, from the Hub or a local folder: for inference, or to continue adapting.

- Only safetensors, JSON and text files are downloaded (never pickles or code), and remote code is
  never trusted unless asked to.
- Tokens come from the usual places (argument, ``HF_TOKEN``, ``hf auth login``) and are never
  printed or logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from ..artifacts import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, resolve_base_model
from ..cards import load_run_info
from ..modalities import Modality, get_modality, modality_of_architectures, modality_of_task
from ..privacy import is_hub_id
from ..utils.peft_compat import peft_wrapping
from .push import _http_status

if TYPE_CHECKING:  # pragma: no cover
    from peft import PeftModel
    from transformers import PreTrainedModel

    from ..artifacts import RunInfo
    from ..modalities import Processor
    from ..modeling import DomainAdaptationModel

# What loading downloads: never pickles (*.bin, *.pt, *.pkl) and never code (*.py).
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "README.md"]


class HubLoadError(RuntimeError):
    """An adapted model that cannot be fetched or loaded from the Hub or a local directory."""


def download_adapted_model(
    repo_id: str, revision: str | None = None, token: str | None = None, cache_dir: str | os.PathLike | None = None
) -> str:
    """Download an adapted model repo (safetensors/json/text only) and return its local directory.

    This is the hand-off point for ``DomainAdaptationModel.from_pretrained(local_dir)``.
    """
    try:
        local = snapshot_download(
            repo_id, revision=revision, token=token, cache_dir=cache_dir, allow_patterns=DOWNLOAD_PATTERNS
        )
    except RevisionNotFoundError:
        raise HubLoadError(f"Revision {revision!r} does not exist in '{repo_id}'.") from None
    except RepositoryNotFoundError as exc:
        if _is_invalid_token(exc):
            raise HubLoadError(_BAD_TOKEN.format(repo_id=repo_id)) from None
        raise HubLoadError(
            f"'{repo_id}' was not found: check the name, or if it is private, log in (`hf auth login` / HF_TOKEN) "
            "with a token that can read it."
        ) from None
    except HfHubHTTPError as exc:
        if _is_invalid_token(exc):
            raise HubLoadError(_BAD_TOKEN.format(repo_id=repo_id)) from None
        raise HubLoadError(f"Could not download '{repo_id}' ({_http_status(exc)}): {exc}") from None
    if not (Path(local) / ADAPTER_CONFIG_NAME).is_file():
        raise HubLoadError(f"'{repo_id}' holds no {ADAPTER_CONFIG_NAME}: it is not an adapted model repository.")
    return local


_BAD_TOKEN = "The Hub rejected your token (401) while loading '{repo_id}': run `hf auth login` or fix HF_TOKEN."


def _is_invalid_token(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if response is None:
        return False
    return response.status_code == 401 and "Invalid credentials" in (response.headers.get("X-Error-Message") or "")


def _local_or_download(repo_id_or_path: str | os.PathLike, revision: str | None, token: str | None) -> Path:
    candidate = Path(repo_id_or_path)
    if candidate.is_dir():
        return candidate
    if isinstance(repo_id_or_path, str) and is_hub_id(repo_id_or_path):
        return Path(download_adapted_model(repo_id_or_path, revision=revision, token=token))
    raise HubLoadError(f"{str(repo_id_or_path)!r} is neither a local directory nor a Hub repo id.")


def _modality_and_info(directory: Path) -> tuple[Modality, dict[str, Any]]:
    """The modality from the run info's task, else from the saved config's architectures (else image)."""
    info = load_run_info(directory)
    modality = modality_of_task(info.get("task"))
    if modality is None:
        config_path = directory / "config.json"
        architectures = json.loads(config_path.read_text()).get("architectures", []) if config_path.is_file() else []
        modality = modality_of_architectures(architectures) or "image"
    return get_modality(modality), info


def _load_processor(directory: Path, modality: Modality, trust_remote_code: bool) -> Processor:
    import transformers

    try:
        auto_processor = getattr(transformers, modality.auto_processor)
        return auto_processor.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return transformers.AutoProcessor.from_pretrained(str(directory), trust_remote_code=trust_remote_code)


def _load_base(
    directory: Path, *, token: str | None, trust_remote_code: bool
) -> tuple[PreTrainedModel, Modality, dict[str, Any]]:
    """The base model ``adapter_config.json`` names (a Hub id once pushed), with the saved label config."""
    import transformers

    if not (directory / ADAPTER_WEIGHTS_NAME).is_file():
        raise HubLoadError(f"{ADAPTER_WEIGHTS_NAME} is missing: only safetensors adapters are loaded.")
    modality, info = _modality_and_info(directory)
    adapter_config = json.loads((directory / ADAPTER_CONFIG_NAME).read_text())
    base = resolve_base_model(adapter_config.get("base_model_name_or_path"), directory)  # a local base: relative
    if not base:
        raise HubLoadError(f"{ADAPTER_CONFIG_NAME} does not name its base model.")
    auto_class = getattr(transformers, modality.auto_model)
    kwargs: dict[str, Any] = dict(use_safetensors=True, trust_remote_code=trust_remote_code, token=token)
    if adapter_config.get("revision"):
        kwargs["revision"] = adapter_config["revision"]
    if (directory / "config.json").is_file():
        kwargs["config"] = transformers.AutoConfig.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
        kwargs["ignore_mismatched_sizes"] = True  # the head comes from the adapter (modules_to_save)
    try:
        base_model = auto_class.from_pretrained(base, **kwargs)
    except OSError as exc:
        raise HubLoadError(f"Could not load the base model '{base}': {exc}") from None
    return base_model, modality, info


def _load_peft(
    directory: Path, *, token: str | None, trust_remote_code: bool, is_trainable: bool
) -> tuple[PeftModel, Modality, dict[str, Any]]:
    """Base + adapter with plain peft: what any user without hf_transfer gets."""
    from peft import PeftModel

    base_model, modality, info = _load_base(directory, token=token, trust_remote_code=trust_remote_code)
    with peft_wrapping():
        model = PeftModel.from_pretrained(base_model, str(directory), is_trainable=is_trainable)
    return model, modality, info


def load_adapted_model(
    repo_id_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    merge: bool = False,
    token: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[PeftModel | PreTrainedModel, Processor]:
    """Load an adapted model (Hub repo id, optionally at ``revision``, or local dir) ready for inference.

    Returns ``(model, processor)``: a ``PeftModel`` in eval mode, or with ``merge=True`` a plain
    transformers model with the LoRA weights folded in.
    """
    directory = _local_or_download(repo_id_or_path, revision, token)
    model, modality, _ = _load_peft(directory, token=token, trust_remote_code=trust_remote_code, is_trainable=False)
    if merge:
        model = model.merge_and_unload()
    model.eval()
    return model, _load_processor(directory, modality, trust_remote_code)


@dataclass
class ContinuedAdaptation:
    """What resuming domain adaptation needs: the trainable model (discriminator included), processor, run info."""

    model: DomainAdaptationModel
    processor: Processor
    info: RunInfo
    local_dir: str


def load_for_continued_adaptation(
    repo_id_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | None = None,
    trust_remote_code: bool = False,
) -> ContinuedAdaptation:
    """A trainable :class:`~hf_transfer.modeling.DomainAdaptationModel`, through hf_transfer's one loader
    (``DomainAdaptationModel.from_pretrained``): LoRA, head and discriminator (when it was pushed) trainable."""
    from ..artifacts import RunInfo
    from ..modeling import DomainAdaptationModel

    directory = _local_or_download(repo_id_or_path, revision, token)
    base_model, modality, _ = _load_base(directory, token=token, trust_remote_code=trust_remote_code)
    model = DomainAdaptationModel.from_pretrained(directory, base_model=base_model, is_trainable=True)
    processor = _load_processor(directory, modality, trust_remote_code)
    return ContinuedAdaptation(model, processor, RunInfo.read(directory), str(directory))


__all__ = [
    "DOWNLOAD_PATTERNS",
    "ContinuedAdaptation",
    "HubLoadError",
    "download_adapted_model",
    "load_adapted_model",
    "load_for_continued_adaptation",
]
