"""Checkpoints in an output folder: which are complete, which one ``resume_from_checkpoint: last`` means, and
what a stopped run has left behind.

The Trainer writes a checkpoint folder's files one after the other and ``trainer_state.json`` last, so a
checkpoint without it was cut short (an interrupt, a crash, a full disk) and is never resumed from.
Standard library only: the command line uses it for its messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE_NAME = "trainer_state.json"
RESUME_NEWEST = ("last", "latest", "true", "yes")
"""``resume_from_checkpoint`` values that mean the newest complete checkpoint in ``output_dir``."""
NO_RESUME = ("", "false", "no", "none", "null")

_STEP = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-<step>`` folders of ``output_dir``, oldest step first (complete or not)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _STEP.match(p.name))]
    return [p for _, p in sorted(found)]


def is_complete(checkpoint: str | os.PathLike) -> bool:
    """A checkpoint the Trainer finished writing (its state file is written last)."""
    return (Path(checkpoint) / TRAINER_STATE_NAME).is_file()


def newest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step in ``output_dir``, or ``None``."""
    complete = [p for p in checkpoints(output_dir) if is_complete(p)]
    return complete[-1] if complete else None


def wants_resume(value: object) -> bool:
    """Whether a ``resume_from_checkpoint`` value asks to resume at all (``false``/``none`` and unset do not)."""
    if value is None or value is False:
        return False
    return str(value).strip().lower() not in NO_RESUME


def resolve_resume(value: object, output_dir: str | os.PathLike) -> str | None:
    """The checkpoint folder to resume from: ``last`` / ``true`` → the newest complete one in ``output_dir``,
    a path → that folder; ``None`` when the run starts fresh. Raises a ``ValueError`` or ``FileNotFoundError``
    that says what is there instead."""
    if not wants_resume(value):
        return None
    if value is True or str(value).strip().lower() in RESUME_NEWEST:
        newest = newest_checkpoint(output_dir)
        if newest is None:
            raise ValueError(
                f"resume_from_checkpoint {value!r} resumes from the newest complete checkpoint in output_dir, but "
                f"{describe_checkpoints(output_dir)}. Start without resume_from_checkpoint, or name a checkpoint folder."
            )
        return str(newest)
    path = Path(os.path.expanduser(str(value)))
    if not path.is_dir():
        raise FileNotFoundError(
            f"resume_from_checkpoint {str(value)!r} is not a folder. Use 'last' for the newest complete checkpoint "
            f"in output_dir ({describe_checkpoints(output_dir)}), or the path of a checkpoint-<step> folder."
        )
    return str(path)


def describe_checkpoints(output_dir: str | os.PathLike) -> str:
    """One clause on what ``output_dir`` holds: ``out holds checkpoint-4 (newest complete) …`` or ``… holds none``."""
    found = checkpoints(output_dir)
    if not found:
        return f"{output_dir} holds no checkpoint"
    complete = [p for p in found if is_complete(p)]
    cut = [p.name for p in found if not is_complete(p)]
    text = f"{output_dir} holds " + (f"{len(complete)} complete checkpoint(s), the newest {complete[-1].name}"
                                     if complete else "no complete checkpoint")
    if cut:
        text += f" ({', '.join(cut)} was cut short and is never resumed from)"
    return text


def output_dir_contents(output_dir: str | os.PathLike) -> list[str]:
    """The visible entries of an existing ``output_dir`` (empty when it is missing or empty)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def claim_output_dir(output_dir: str | os.PathLike, *, overwrite: bool, resume: object) -> list[str]:
    """Check that a new run may write into ``output_dir``; returns the old checkpoints it removed.

    An existing, non-empty ``output_dir`` is refused unless the run resumes (``resume_from_checkpoint``) or
    ``overwrite`` is set; with ``overwrite`` the old ``checkpoint-*`` folders are removed first, so the new
    run's checkpoints never mix with them (and ``resume_from_checkpoint: last`` cannot pick an old one).
    Other files are replaced as the new run saves its own.
    """
    import shutil

    contents = output_dir_contents(output_dir)
    if not contents or wants_resume(resume):
        return []
    if not overwrite:
        shown = ", ".join(contents[:6]) + (f", … ({len(contents)} entries)" if len(contents) > 6 else "")
        raise ValueError(
            f"output_dir {str(output_dir)!r} already holds files ({shown}): a new run would mix its checkpoints and "
            "model with them. Choose another --training.output_dir, resume the run with "
            "--training.resume_from_checkpoint last, or pass --training.overwrite_output_dir true to replace it."
        )
    removed = [p.name for p in checkpoints(output_dir)]
    for name in removed:
        shutil.rmtree(Path(output_dir) / name)
    return removed


__all__ = [
    "claim_output_dir",
    "CHECKPOINT_PREFIX",
    "RESUME_NEWEST",
    "TRAINER_STATE_NAME",
    "checkpoints",
    "describe_checkpoints",
    "is_complete",
    "newest_checkpoint",
    "output_dir_contents",
    "resolve_resume",
    "wants_resume",
]
