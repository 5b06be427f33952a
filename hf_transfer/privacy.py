"""What never leaves the machine: local paths, the user's name and Hub tokens.

Everything hf_transfer pushes or prints for others (the model card, the run info, configs) goes
through :func:`sanitize` (structured values) or :func:`scrub_text` (free text) first. A local path
becomes :data:`LOCAL_DATA`, a token ``[redacted]``, the user name ``[user]``. :func:`is_hub_id` tells
a Hub repo id (safe to publish, loadable elsewhere) from a path on this machine.

Standard library only, so the card, the Hub push and ``hf-transfer --help`` stay light.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from typing import Any

LOCAL_DATA = "local data"
HELD_OUT_FILES = "held-out files"
"""What a card says for an evaluation split given as a path (a folder or data files) instead of a split name."""
TOKEN_PATTERN = re.compile(r"\b(hf|api_org)_[A-Za-z0-9]{16,}\b")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_EMBEDDED_PATH = re.compile(r"(?<![\w.:/~])(?:~|[A-Za-z]:)?[\\/][^\s'\"`,;)]+")
_GENERIC_ACCOUNTS = {"root", "user", "admin", "ubuntu", "runner", "jovyan", "app"}


def looks_like_local_path(value: str) -> bool:
    """True for strings that name a file-system location rather than a Hub id."""
    value = value.strip()
    if not value:
        return False
    if value.startswith(("/", "~", "./", "../", ".\\", "file:")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return True
    if re.match(r"^[a-z][a-z0-9+.\-]*://", value):  # a URL (file:// was handled above)
        return False
    if re.fullmatch(r"refs/(convert|pr|heads|tags)/[\w.\-]+", value):  # a Hub git ref (refs/convert/parquet)
        return False
    if "\\" in value or value.count("/") > 1:
        return True
    home = os.path.expanduser("~")
    return bool(home and home != "/" and home in value)


def is_hub_id(value: object) -> bool:
    """A plausible Hub repo id (``name`` or ``namespace/name``), not a local path."""
    return isinstance(value, str) and not looks_like_local_path(value) and bool(_HUB_ID.match(value))


def public_split_name(split: str | None) -> str | None:
    """A split as others may read it: a split name (``test``, ``train[:10%]``) as it is, a path as ``held-out files``."""
    if not split:
        return None
    if looks_like_local_path(split) or "/" in split or "\\" in split or any(c in split for c in "*?"):
        return HELD_OUT_FILES
    if os.path.splitext(split)[1].lower() in (".csv", ".tsv", ".json", ".jsonl", ".parquet"):
        return HELD_OUT_FILES
    return split


def _username() -> str | None:
    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return None
    return name if name and len(name) >= 3 and name.lower() not in _GENERIC_ACCOUNTS else None


def scrub_text(text: str) -> str:
    """Remove tokens, the home directory and the local user name from free text."""
    text = TOKEN_PATTERN.sub("[redacted]", text)
    home = os.path.expanduser("~")
    if home and home != "/":
        text = text.replace(home, LOCAL_DATA)
    user = _username()
    if user:
        text = re.sub(rf"\b{re.escape(user)}\b", "[user]", text)
    return text


def sanitize(value: Any) -> Any:
    """Recursively replace local paths by ``"local data"`` and scrub secrets from strings.

    For JSON-like values of any shape: mappings come back as dicts with string keys, tuples as
    lists, other values unchanged.
    """
    if isinstance(value, str):
        if looks_like_local_path(value) and " " not in value.strip():
            return LOCAL_DATA
        return scrub_text(_EMBEDDED_PATH.sub(LOCAL_DATA, value))
    if isinstance(value, Mapping):
        return {str(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value


__all__ = ["HELD_OUT_FILES", "LOCAL_DATA", "TOKEN_PATTERN", "public_split_name", "is_hub_id", "looks_like_local_path", "sanitize", "scrub_text"]
