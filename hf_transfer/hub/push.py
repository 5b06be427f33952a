"""Push adapted models (and local base checkpoints) to the Hugging Face Hub, each in one commit.

Why these choices:
- One ``create_commit`` per push: the Hub applies a commit atomically, so an interrupted or failed
  push leaves the remote repo exactly as it was (and local files are only ever read).
- The pushed ``adapter_config.json`` must name the base model by its *Hub id*: transformers' PEFT
  integration (``AutoModelFor...from_pretrained(repo)``, ``pipeline(task, model=repo)``) loads the
  base from there. A local path is never pushed; if training used a local base checkpoint, pass
  ``base_model_repo_id`` (push that checkpoint first with :func:`push_base_model` if needed),
  otherwise :func:`push_to_hub` raises :class:`HubPushError`.
- Everything pushed goes through :mod:`hf_transfer.privacy` (no local paths, user names or tokens).
- Tokens come from the usual places (argument, ``HF_TOKEN``, ``hf auth login``) and are never
  printed, logged or written anywhere by this module.

The ``hf-transfer push`` command around these functions lives in :mod:`hf_transfer.cli`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

from ..artifacts import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    DISCRIMINATOR_WEIGHTS_NAME,
    MODEL_CARD_NAME,
    PROCESSOR_FILES,
    RUN_INFO_NAME,
    TASK_HEADS_WEIGHTS_NAME,
    resolve_base_model,
)
from ..card_sections import picture_files
from ..cards import DOMAINS, build_model_card, load_run_info
from ..errors import network_cause, unreachable_message
from ..privacy import is_hub_id, sanitize

REQUIRED_FILES = (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME)
BASE_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors")


class HubPushError(RuntimeError):
    """A push that cannot (or did not) happen, with a message saying what to do about it."""


class LocalBaseModelError(HubPushError):
    """The adapter's base model is a local checkpoint and no Hub id was given for it."""


# ----------------------------------------------------------------------------- helpers
def resolve_token(token: str | None) -> str:
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HubPushError(f"Cannot read {path.name} in the output directory: {exc}") from exc


def resolve_base_model_id(adapter_config: dict[str, Any], base_model_repo_id: str | None) -> str:
    """The Hub id to record as base model; refuses local paths (they would break loading elsewhere)."""
    if base_model_repo_id:
        if not is_hub_id(base_model_repo_id):
            raise HubPushError(f"base_model_repo_id must be a Hub repo id like 'org/name', got {base_model_repo_id!r}.")
        return base_model_repo_id
    recorded = adapter_config.get("base_model_name_or_path")
    if is_hub_id(recorded) and not (isinstance(recorded, str) and os.path.isdir(recorded) and "/" not in recorded):
        return recorded
    raise LocalBaseModelError(
        "The adapter's base model is a local checkpoint (or unknown), which other machines cannot load. "
        "Pass base_model_repo_id='<namespace>/<name>' with the base model's Hub id "
        "(push a local base first with hf_transfer.hub.push_base_model)."
    )


def _base_config(
    output_dir: Path, adapter_config: dict[str, Any], base_id: str, api: HfApi, info: dict[str, Any]
) -> dict[str, Any] | None:
    """The base ``config.json`` carrying this run's labels (so pipelines show the right class names)."""
    candidates = [output_dir / "config.json"]
    recorded = resolve_base_model(adapter_config.get("base_model_name_or_path"), output_dir)
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


def _json_bytes(payload: object) -> bytes:
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
    adapter_config = _read_json(directory / ADAPTER_CONFIG_NAME)
    base_id = resolve_base_model_id(adapter_config, base_model_repo_id)
    info = load_run_info(directory)
    info["base_model"] = base_id

    pushed_adapter_config = dict(adapter_config, base_model_name_or_path=base_id)
    ops = [
        CommitOperationAdd(ADAPTER_CONFIG_NAME, _json_bytes(sanitize(pushed_adapter_config))),
        CommitOperationAdd(ADAPTER_WEIGHTS_NAME, (directory / ADAPTER_WEIGHTS_NAME).read_bytes()),
    ]
    for name in PROCESSOR_FILES:
        if (directory / name).is_file():
            content = (directory / name).read_bytes()
            if name.endswith(".json"):
                content = _json_bytes(sanitize(json.loads(content)))
            ops.append(CommitOperationAdd(name, content))
    # The run's pictures, linked from the card by relative path (a listed picture that is missing is not linked).
    info["pictures"] = {key: name for key, name in picture_files(info).items() if (directory / name).is_file()}
    ops += [CommitOperationAdd(name, (directory / name).read_bytes()) for name in info["pictures"].values()]
    if include_discriminator and (directory / DISCRIMINATOR_WEIGHTS_NAME).is_file():
        ops.append(CommitOperationAdd(DISCRIMINATOR_WEIGHTS_NAME, (directory / DISCRIMINATOR_WEIGHTS_NAME).read_bytes()))
    if (directory / TASK_HEADS_WEIGHTS_NAME).is_file():  # auxiliary heads: part of the model, like the classifier
        ops.append(CommitOperationAdd(TASK_HEADS_WEIGHTS_NAME, (directory / TASK_HEADS_WEIGHTS_NAME).read_bytes()))
    if (directory / RUN_INFO_NAME).is_file():
        run_info = _read_json(directory / RUN_INFO_NAME)
        run_info["base_model"] = base_id
        ops.append(CommitOperationAdd(RUN_INFO_NAME, _json_bytes(sanitize(run_info))))
    config = _base_config(directory, adapter_config, base_id, api or HfApi(), info)
    if config is not None:
        ops.append(CommitOperationAdd("config.json", _json_bytes(config)))
    card_info = dict(
        info,
        has_discriminator=include_discriminator and info.get("has_discriminator", False),
        has_base_config=config is not None,  # the card names only the files this commit holds
        has_processor=any(op.path_in_repo in PROCESSOR_FILES for op in ops),
        base_model_is_local=False,
    )
    if config is not None and config.get("model_type"):
        card_info["model_type"] = config["model_type"]
    card = build_model_card(card_info, repo_id=repo_id, domain=domain, base_model=base_id, license=license)
    ops.append(CommitOperationAdd(MODEL_CARD_NAME, card.content.encode()))
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
    resolve_base_model_id(_read_json(Path(output_dir) / ADAPTER_CONFIG_NAME), base_model_repo_id)
    token = resolve_token(token)
    with _network_errors_named(repo_id):
        return _push(
            output_dir, repo_id, base_model_repo_id=base_model_repo_id, private=private, revision=revision,
            create_pr=create_pr, commit_message=commit_message, include_discriminator=include_discriminator,
            token=token, domain=domain, license=license, overwrite=overwrite,
        )


@contextmanager
def _network_errors_named(repo_id: str) -> Iterator[None]:
    """A connection that fails (no network, a wrong HF_ENDPOINT) becomes a HubPushError naming the endpoint."""
    try:
        yield
    except HubPushError:
        raise
    except Exception as error:
        cause = network_cause(error)
        if cause is None:
            raise
        raise HubPushError(
            unreachable_message(f"Push to '{repo_id}' failed before its commit; the remote repository was not modified",
                                cause)
        ) from error


def _push(
    output_dir: str | os.PathLike, repo_id: str, *, base_model_repo_id: str | None, private: bool,
    revision: str | None, create_pr: bool, commit_message: str | None, include_discriminator: bool, token: str,
    domain: str, license: str | None, overwrite: bool,
) -> CommitInfo:
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
        if network_cause(exc) is not None:
            raise  # named with the endpoint by _network_errors_named
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
        foreign = files - {".gitattributes", MODEL_CARD_NAME}
        if foreign and RUN_INFO_NAME not in files and not overwrite:
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
    token = resolve_token(token)
    with _network_errors_named(repo_id):
        return _push_base(directory, repo_id, private=private, token=token, commit_message=commit_message)


def _push_base(directory: Path, repo_id: str, *, private: bool, token: str, commit_message: str | None) -> CommitInfo:
    api = HfApi(token=token)
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


def push_local_base(output_dir: str | os.PathLike, base_model_repo_id: str | None, *, private: bool) -> CommitInfo:
    """Push the local base checkpoint named in the adapter config to ``base_model_repo_id``.

    What ``hf-transfer push --push-base-model`` does before pushing the adapter itself.
    """
    if not base_model_repo_id:
        raise HubPushError("--push-base-model needs --base-model-repo-id (where the base checkpoint goes).")
    directory = check_output_dir(output_dir)
    base = resolve_base_model(_read_json(directory / ADAPTER_CONFIG_NAME).get("base_model_name_or_path"), directory) or ""
    if not Path(base).is_dir():
        raise HubPushError(
            "--push-base-model: the adapter's base model is not a local checkpoint folder on this machine; "
            "drop the flag and pass the base's Hub id with --base-model-repo-id."
        )
    return push_base_model(base, base_model_repo_id, private=private)


__all__ = [
    "BASE_MODEL_FILES",
    "PROCESSOR_FILES",
    "REQUIRED_FILES",
    "HubPushError",
    "LocalBaseModelError",
    "check_output_dir",
    "prepare_push_operations",
    "push_base_model",
    "push_local_base",
    "push_to_hub",
    "resolve_base_model_id",
]
