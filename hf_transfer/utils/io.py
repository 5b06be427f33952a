"""Atomic file writes: a crash mid-save never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_directory_update(target_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a scratch folder; on success move each file in it onto ``target_dir``.

    Every file lands with ``os.replace`` (atomic on POSIX), so a reader of ``target_dir``
    sees either the old or the new version of each file, never a torn one. On an error
    nothing in ``target_dir`` changes.
    """
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-save-", dir=target))
    try:
        yield scratch
        for path in sorted(scratch.rglob("*")):
            if path.is_file():
                dest = target / path.relative_to(scratch)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
