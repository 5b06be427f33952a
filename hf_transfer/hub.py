"""Push adapted models to the Hugging Face Hub and load them back.

Why these choices:
- One ``create_commit`` per push: the Hub applies a commit atomically, so an interrupted or failed
  push leaves the remote repo exactly as it was (and local files are only ever read).
- The pushed ``adapter_config.json`` must name the base model by its *Hub id*: transformers' PEFT
  integration (``AutoModelFor...from_pretrained(repo)``, ``pipeline(task, model=repo)``) loads the
  base from there. A local path is never pushed; if training used a local base checkpoint, pass
  ``base_model_repo_id`` (push that checkpoint first with :func:`push_base_model` if needed),
  otherwise :func:`push_to_hub` raises :class:`HubPushError`.
- Tokens come from the usual places (argument, ``HF_TOKEN``, ``hf auth login``) and are never
  printed, logged or written anywhere by this module.
- Loading uses safetensors only and never trusts remote code unless asked to.
"""

from __future__ import annotations

import argparse
import json
import sys
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, get_token, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .cards import DOMAINS, build_model_card, is_hub_id, load_run_info, looks_like_local_path, sanitize


ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
DISCRIMINATOR_WEIGHTS = "domain_discriminator.safetensors"
RUN_INFO = "domain_adaptation.json"
REQUIRED_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
)
# What loading downloads: never pickles (*.bin, *.pt, *.pkl) and never code (*.py).
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "README.md"]
BASE_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors")
AUTO_CLASSES = {
    "image-classification": "AutoModelForImageClassification",
    "audio-classification": "AutoModelForAudioClassification",
    "text-classification": "AutoModelForSequenceClassification",
}


class HubPushError(RuntimeError):
    """A push that cannot (or did not) happen, with a message saying what to do about it."""


class HubLoadError(RuntimeError):
    """An adapted model that cannot be fetched or loaded from the Hub or a local directory."""


# ----------------------------------------------------------------------------- helpers
def _resolve_token(token: str | None) -> str:
    resolved = token or get_token()
    if not resolved:
        raise HubPushError(
            "No Hugging Face token found: run `hf auth login` or set HF_TOKEN (a token with write access)."
        )
    return resolved


def _http_status(error: HfHubHTTPError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _push_error(error: HfHubHTTPError, repo_id: str, during: str) -> HubPushError:
    status = _http_status(error)
    message = (getattr(error, "response", None) and error.response.headers.get("X-Error-Message")) or ""
    if status == 401 and "Invalid credentials" in message:
        text = "the Hub rejected your token (401): run `hf auth login` again or set a valid HF_TOKEN"
    elif status in (401, 403) or isinstance(error, RepositoryNotFoundError):
        text = (
            f"you cannot write to '{repo_id}' ({status}): use a token with write access to that namespace, "
            "or push under your own user or an organisation you belong to"
        )
    elif status == 412:
        text = f"'{repo_id}' changed while pushing (412): retry the push"
    else:
        text = f"the Hub returned an error ({status}): {message or error}"
    return HubPushError(f"Push to '{repo_id}' failed while {during}: {text}. The remote repository was not modified.")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HubPushError(f"Cannot read {path.name} in the output directory: {exc}") from exc


def resolve_base_model_id(adapter_config: dict, base_model_repo_id: str | None) -> str:
    """The Hub id to record as base model; refuses local paths (they would break loading elsewhere)."""
    if base_model_repo_id:
        if not is_hub_id(base_model_repo_id):
            raise HubPushError(f"base_model_repo_id must be a Hub repo id like 'org/name', got {base_model_repo_id!r}.")
        return base_model_repo_id
    recorded = adapter_config.get("base_model_name_or_path")
    if is_hub_id(recorded) and not (isinstance(recorded, str) and os.path.isdir(recorded) and "/" not in recorded):
        return recorded
    raise HubPushError(
        "The adapter's base model is a local checkpoint (or unknown), which other machines cannot load. "
        "Pass base_model_repo_id='<namespace>/<name>' with the base model's Hub id "
        "(push a local base first with hf_transfer.hub.push_base_model)."
    )


def _base_config(output_dir: Path, adapter_config: dict, base_id: str, api: HfApi, info: dict) -> dict | None:
    """The base ``config.json`` carrying this run's labels (so pipelines show the right class names)."""
    candidates = [output_dir / "config.json"]
    recorded = adapter_config.get("base_model_name_or_path")
    if isinstance(recorded, str) and os.path.isdir(recorded):
        candidates.append(Path(recorded) / "config.json")
    config = None
    for candidate in candidates:
        if candidate.is_file():
            config = json.loads(candidate.read_text())
            break
    if config is None:
        try:
            config = json.loads(Path(api.hf_hub_download(base_id, "config.json")).read_text())
        except (EntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError):
            return None
    id2label = info.get("id2label")
    if isinstance(id2label, dict) and id2label:
        config["id2label"] = {str(k): v for k, v in id2label.items()}
        config["label2id"] = info.get("label2id") or {v: int(k) for k, v in id2label.items()}
    config.pop("_name_or_path", None)
    return sanitize(config)


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()


def check_output_dir(output_dir: str | os.PathLike) -> Path:
    """Fail early (before any network call) when the directory cannot be pushed."""
    directory = Path(output_dir)
    if not directory.is_dir():
        raise HubPushError(f"Output directory not found: {directory.name!r} does not exist or is not a directory.")
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise HubPushError(
            f"The output directory is missing {', '.join(missing)}: save the trained model with "
            "`trainer.save_model(output_dir)` (or model.save_pretrained) before pushing."
        )
    return directory


def prepare_push_operations(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model_repo_id: str | None = None,
    include_discriminator: bool = True,
    domain: str = "generic",
    license: str | None = None,
    api: HfApi | None = None,
) -> list[CommitOperationAdd]:
    """Everything one push commits, built from local files without modifying them."""
    directory = check_output_dir(output_dir)
    adapter_config = _read_json(directory / ADAPTER_CONFIG)
    base_id = resolve_base_model_id(adapter_config, base_model_repo_id)
    info = load_run_info(directory)
    info["base_model"] = base_id

    pushed_adapter_config = dict(adapter_config, base_model_name_or_path=base_id)
    ops = [
        CommitOperationAdd(ADAPTER_CONFIG, _json_bytes(sanitize(pushed_adapter_config))),
        CommitOperationAdd(ADAPTER_WEIGHTS, (directory / ADAPTER_WEIGHTS).read_bytes()),
    ]
    for name in PROCESSOR_FILES:
        if (directory / name).is_file():
            content = (directory / name).read_bytes()
            if name.endswith(".json"):
                content = _json_bytes(sanitize(json.loads(content)))
            ops.append(CommitOperationAdd(name, content))
    if include_discriminator and (directory / DISCRIMINATOR_WEIGHTS).is_file():
        ops.append(CommitOperationAdd(DISCRIMINATOR_WEIGHTS, (directory / DISCRIMINATOR_WEIGHTS).read_bytes()))
    if (directory / RUN_INFO).is_file():
        run_info = _read_json(directory / RUN_INFO)
        run_info["base_model"] = base_id
        ops.append(CommitOperationAdd(RUN_INFO, _json_bytes(sanitize(run_info))))
    config = _base_config(directory, adapter_config, base_id, api or HfApi(), info)
    if config is not None:
        ops.append(CommitOperationAdd("config.json", _json_bytes(config)))
    card_info = dict(info, has_discriminator=include_discriminator and info.get("has_discriminator", False))
    if config is not None and config.get("model_type"):
        card_info["model_type"] = config["model_type"]
    card = build_model_card(card_info, repo_id=repo_id, domain=domain, base_model=base_id, license=license)
    ops.append(CommitOperationAdd("README.md", card.content.encode()))
    return ops


# ----------------------------------------------------------------------------- push
def push_to_hub(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model_repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    include_discriminator: bool = True,
    token: str | None = None,
    domain: str = "generic",
    license: str | None = None,
    overwrite: bool = False,
) -> CommitInfo:
    """Upload an adapted model directory (adapter, processor, run info, card, config) in ONE commit.

    ``revision`` names a branch (created from main if missing); ``create_pr`` opens a pull request
    instead of committing to it. A repo that already holds something other than an hf_transfer
    model is refused unless ``overwrite=True``. Returns the ``CommitInfo`` (``.oid``, ``.pr_url``).
    """
    if domain not in DOMAINS:
        raise HubPushError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not is_hub_id(repo_id) or "/" not in repo_id:
        raise HubPushError(f"repo_id must look like '<namespace>/<name>', got {repo_id!r}")
    check_output_dir(output_dir)
    resolve_base_model_id(_read_json(Path(output_dir) / ADAPTER_CONFIG), base_model_repo_id)
    token = _resolve_token(token)
    api = HfApi(token=token)
    operations = prepare_push_operations(
        output_dir, repo_id, base_model_repo_id=base_model_repo_id, include_discriminator=include_discriminator,
        domain=domain, license=license, api=api,
    )
    base_id = json.loads(operations[0].path_or_fileobj)["base_model_name_or_path"]
    _check_base_reachable(api, base_id, repo_id)
    parent = _ensure_repo(api, repo_id, private=private, revision=revision, create_pr=create_pr, overwrite=overwrite)
    try:
        return api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload domain-adapted LoRA adapter ({base_id})",
            revision=revision,
            create_pr=create_pr,
            parent_commit=parent,
        )
    except HfHubHTTPError as exc:
        raise _push_error(exc, repo_id, "committing") from None
    except (RuntimeError, OSError, ValueError) as exc:  # e.g. an LFS/Xet upload dying before the commit
        cause = exc.__cause__
        if isinstance(cause, HfHubHTTPError):
            raise _push_error(cause, repo_id, "uploading files") from None
        raise HubPushError(
            f"Push to '{repo_id}' failed while uploading files ({type(exc).__name__}: {exc}). "
            "The remote repository was not modified; retry the push."
        ) from exc


def _check_base_reachable(api: HfApi, base_id: str, repo_id: str) -> None:
    try:
        api.repo_info(base_id)
    except RepositoryNotFoundError:
        raise HubPushError(
            f"The base model '{base_id}' is not on the Hub (or not visible with your token); '{repo_id}' would not "
            "load anywhere else. Push the base first (hf_transfer.hub.push_base_model) or fix base_model_repo_id."
        ) from None
    except HfHubHTTPError as exc:
        raise _push_error(exc, repo_id, "checking the base model") from None


def _ensure_repo(
    api: HfApi, repo_id: str, *, private: bool, revision: str | None, create_pr: bool, overwrite: bool
) -> str | None:
    """Create the repo/branch if needed; return the head commit to guard the push against races."""
    try:
        info = api.repo_info(repo_id, files_metadata=False)
    except RepositoryNotFoundError:
        info = None
    except HfHubHTTPError as exc:
        raise _push_error(exc, repo_id, "reading the repository") from None
    if info is None:
        try:
            api.create_repo(repo_id, private=private, repo_type="model")
        except HfHubHTTPError as exc:
            if _http_status(exc) == 409:
                raise HubPushError(
                    f"'{repo_id}' already exists but is not visible to you (name clash): choose another name."
                ) from None
            raise _push_error(exc, repo_id, "creating the repository") from None
    else:
        files = {s.rfilename for s in info.siblings or []}
        foreign = files - {".gitattributes", "README.md"}
        if foreign and RUN_INFO not in files and not overwrite:
            raise HubPushError(
                f"'{repo_id}' already exists and does not hold an hf_transfer model (name clash): choose another "
                "repo_id, or pass overwrite=True to add the adapter to it."
            )
    if revision and revision != "main" and not revision.startswith("refs/pr/"):
        try:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        except HfHubHTTPError as exc:
            raise _push_error(exc, repo_id, f"creating branch '{revision}'") from None
    try:
        return api.repo_info(repo_id, revision=revision).sha
    except HfHubHTTPError as exc:
        raise _push_error(exc, repo_id, "reading the repository") from None


def push_base_model(
    base_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Push a local base checkpoint (safetensors weights, config, processor files) in one commit."""
    directory = Path(base_dir)
    if not (directory / "config.json").is_file() or not list(directory.glob("model*.safetensors")):
        raise HubPushError("A base model directory needs config.json and model*.safetensors (no pickle weights).")
    api = HfApi(token=_resolve_token(token))
    paths = sorted({p for pattern in BASE_MODEL_FILES + PROCESSOR_FILES for p in directory.glob(pattern)})
    ops = []
    for path in paths:
        content = path.read_bytes()
        if path.suffix == ".json":
            content = _json_bytes(sanitize({k: v for k, v in json.loads(content).items() if k != "_name_or_path"}))
        ops.append(CommitOperationAdd(path.name, content))
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.create_commit(repo_id, ops, commit_message=commit_message or "Upload base model")
    except HfHubHTTPError as exc:
        raise _push_error(exc, repo_id, "pushing the base model") from None


# ----------------------------------------------------------------------------- load
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
    if not (Path(local) / ADAPTER_CONFIG).is_file():
        raise HubLoadError(f"'{repo_id}' holds no {ADAPTER_CONFIG}: it is not an adapted model repository.")
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


def _task_and_info(directory: Path) -> tuple[str, dict]:
    info = load_run_info(directory)
    task = info.get("task")
    if task not in AUTO_CLASSES:
        config_path = directory / "config.json"
        architectures = json.loads(config_path.read_text()).get("architectures", []) if config_path.is_file() else []
        arch = " ".join(architectures)
        task = (
            "audio-classification" if "AudioClassification" in arch or "Wav2Vec2" in arch
            else "text-classification" if "SequenceClassification" in arch
            else "image-classification"
        )
    return task, info


def _load_processor(directory: Path, task: str, trust_remote_code: bool):
    import transformers

    loaders = {
        "image-classification": transformers.AutoImageProcessor,
        "audio-classification": transformers.AutoFeatureExtractor,
        "text-classification": transformers.AutoTokenizer,
    }
    try:
        return loaders[task].from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return transformers.AutoProcessor.from_pretrained(str(directory), trust_remote_code=trust_remote_code)


def _load_peft(directory: Path, *, token: str | None, trust_remote_code: bool, is_trainable: bool):
    import transformers
    from peft import PeftModel

    if not (directory / ADAPTER_WEIGHTS).is_file():
        raise HubLoadError(f"{ADAPTER_WEIGHTS} is missing: only safetensors adapters are loaded.")
    task, info = _task_and_info(directory)
    adapter_config = json.loads((directory / ADAPTER_CONFIG).read_text())
    base = adapter_config.get("base_model_name_or_path")
    if not base:
        raise HubLoadError(f"{ADAPTER_CONFIG} does not name its base model.")
    auto_class = getattr(transformers, AUTO_CLASSES[task])
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
    model = PeftModel.from_pretrained(base_model, str(directory), is_trainable=is_trainable)
    return model, task, info


def load_adapted_model(
    repo_id_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    merge: bool = False,
    token: str | None = None,
    trust_remote_code: bool = False,
):
    """Load an adapted model (Hub repo id, optionally at ``revision``, or local dir) ready for inference.

    Returns ``(model, processor)``: a ``PeftModel`` in eval mode, or with ``merge=True`` a plain
    transformers model with the LoRA weights folded in.
    """
    directory = _local_or_download(repo_id_or_path, revision, token)
    model, task, _ = _load_peft(directory, token=token, trust_remote_code=trust_remote_code, is_trainable=False)
    if merge:
        model = model.merge_and_unload()
    model.eval()
    return model, _load_processor(directory, task, trust_remote_code)


@dataclass
class ContinuedAdaptation:
    """What resuming domain adaptation needs: trainable adapter model, processor, discriminator, run info."""

    model: Any
    processor: Any
    discriminator_state_dict: dict | None
    info: dict
    local_dir: str


def load_for_continued_adaptation(
    repo_id_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | None = None,
    trust_remote_code: bool = False,
) -> ContinuedAdaptation:
    """Base + adapter with LoRA weights trainable, plus the discriminator weights when they were pushed."""
    from safetensors.torch import load_file

    directory = _local_or_download(repo_id_or_path, revision, token)
    model, task, info = _load_peft(directory, token=token, trust_remote_code=trust_remote_code, is_trainable=True)
    model.train()
    disc_path = directory / DISCRIMINATOR_WEIGHTS
    discriminator = load_file(str(disc_path)) if disc_path.is_file() else None
    return ContinuedAdaptation(model, _load_processor(directory, task, trust_remote_code), discriminator, info, str(directory))


# ----------------------------------------------------------------------------- CLI glue
def add_push_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``hf-transfer push`` (cli.py owns the sub-command; this keeps the flags here)."""
    parser.add_argument("output_dir", help="Directory written by the trainer's save_model")
    parser.add_argument("repo_id", help="Target repo, e.g. my-user/vit-dann-office31")
    parser.add_argument("--base-model-repo-id", default=None, help="Hub id of the base model if trained from a local path")
    parser.add_argument(
        "--push-base-model",
        action="store_true",
        help="Also push the local base checkpoint the adapter was trained from (e.g. the demo's source-pretrained "
        "backbone) to --base-model-repo-id first, in its own commit",
    )
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="Branch to push to (created if missing)")
    parser.add_argument("--create-pr", action="store_true", help="Open a pull request instead of committing")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--no-discriminator", action="store_true", help="Do not upload the domain discriminator")
    parser.add_argument("--domain", choices=DOMAINS, default="generic", help="Model card domain section")
    parser.add_argument("--license", default=None)
    parser.add_argument("--overwrite", action="store_true", help="Allow pushing into an existing non-hf_transfer repo")
    return parser


def main_push(
    output_dir: str,
    repo_id: str,
    *,
    base_model_repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    include_discriminator: bool = True,
    domain: str = "generic",
    license: str | None = None,
    overwrite: bool = False,
    push_base: bool = False,
) -> int:
    """argparse-free entry point: push, print the commit/PR URL, return an exit code (no token output)."""
    try:
        if push_base:
            base_info = _push_local_base(output_dir, base_model_repo_id, private=private)
            print(base_info.commit_url)
        info = push_to_hub(
            output_dir, repo_id, base_model_repo_id=base_model_repo_id, private=private, revision=revision,
            create_pr=create_pr, commit_message=commit_message, include_discriminator=include_discriminator,
            domain=domain, license=license, overwrite=overwrite,
        )
    except HubPushError as exc:
        print(f"hf-transfer push: error: {exc}", file=sys.stderr)
        return 1
    print(info.pr_url or info.commit_url)
    return 0


def _push_local_base(output_dir: str, base_model_repo_id: str | None, *, private: bool) -> CommitInfo:
    """Push the local base checkpoint named in the adapter config to ``base_model_repo_id``."""
    if not base_model_repo_id:
        raise HubPushError("--push-base-model needs --base-model-repo-id (where the base checkpoint goes).")
    base = _read_json(check_output_dir(output_dir) / ADAPTER_CONFIG).get("base_model_name_or_path") or ""
    if not Path(base).is_dir():
        raise HubPushError(
            "--push-base-model: the adapter's base model is not a local checkpoint folder on this machine; "
            "drop the flag and pass the base's Hub id with --base-model-repo-id."
        )
    return push_base_model(base, base_model_repo_id, private=private)


def push_command(args: argparse.Namespace) -> int:
    """Handler for ``hf-transfer push``; tolerates parsers that define only some optional flags."""
    return main_push(
        args.output_dir,
        args.repo_id,
        base_model_repo_id=getattr(args, "base_model_repo_id", None),
        private=getattr(args, "private", False),
        revision=getattr(args, "revision", None),
        create_pr=getattr(args, "create_pr", False),
        commit_message=getattr(args, "commit_message", None),
        include_discriminator=not getattr(args, "no_discriminator", False),
        domain=getattr(args, "domain", None) or "generic",
        license=getattr(args, "license", None),
        overwrite=getattr(args, "overwrite", False),
        push_base=getattr(args, "push_base_model", False),
    )


__all__ = [
    "HubPushError",
    "HubLoadError",
    "ContinuedAdaptation",
    "push_to_hub",
    "push_base_model",
    "prepare_push_operations",
    "resolve_base_model_id",
    "download_adapted_model",
    "load_adapted_model",
    "load_for_continued_adaptation",
    "add_push_arguments",
    "main_push",
    "push_command",
    "looks_like_local_path",
]
