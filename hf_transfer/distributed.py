"""Multi-process launches: refuse the ones that would silently train N separate models.

hf_transfer never launches processes itself: ``torchrun --nproc_per_node N`` and ``accelerate launch``
start them, and the ``transformers.Trainer`` (through Accelerate) runs DDP, FSDP or DeepSpeed across
them. Two launches look distributed but are not, and used to exit 0:

* ``torchrun --nproc_per_node N`` (or ``accelerate launch --multi_gpu``) on a machine without a GPU,
  without ``--training.use_cpu true``: every process initialises ``torch.distributed`` yet its Trainer
  sees world size 1, so N processes each train on all the data and write the same files;
* ``accelerate launch --cpu --num_processes N``: Accelerate's simple launcher starts **one** process,
  whatever N says.

:func:`check_launch` turns both into a :class:`DistributedLaunchError` that names the command that works.
On CPU the working forms are::

    torchrun --nproc_per_node 2 -m hf_transfer train CONFIG --training.use_cpu true
    accelerate launch --multi_gpu --num_processes 2 -m hf_transfer train CONFIG --training.use_cpu true
"""

from __future__ import annotations

import os
from typing import Any

CPU_TORCHRUN = "torchrun --nproc_per_node {n} -m hf_transfer train CONFIG --training.use_cpu true"
CPU_ACCELERATE = "accelerate launch --multi_gpu --num_processes {n} -m hf_transfer train CONFIG --training.use_cpu true"


class DistributedLaunchError(ValueError):
    """The processes were launched in a way that would not train one model together (a usage error: the CLI
    prints it as ``hf-transfer train: error: ...``)."""


def launched_world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``, or the initialised process group's size)."""
    size = _int_env("WORLD_SIZE", 1)
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            size = max(size, dist.get_world_size())
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return size


def check_launch(args: Any) -> None:
    """Raise :class:`DistributedLaunchError` when this launch would not be one distributed training.

    ``args`` are the run's ``TrainingArguments`` (their ``world_size`` is what the Trainer will use).
    """
    launched = launched_world_size()
    trainer_world = int(getattr(args, "world_size", 1) or 1)
    if launched > 1 and trainer_world != launched:
        fix = (
            f"there is no GPU here, so add --training.use_cpu true (gloo DDP on CPU), e.g. "
            f"`{CPU_TORCHRUN.format(n=launched)}` or `{CPU_ACCELERATE.format(n=launched)}`"
            if not _has_gpu() and not getattr(args, "use_cpu", False)
            else "check that every process sees its own GPU (CUDA_VISIBLE_DEVICES) and that the launcher and "
            "the config agree on the number of processes"
        )
        raise DistributedLaunchError(
            f"{launched} processes were launched (WORLD_SIZE={launched}) but the Trainer runs with world size "
            f"{trainer_world}: each process would train its own model on all the data and overwrite the others' "
            f"files. To train one model across the processes, {fix}."
        )
    requested = _accelerate_cpu_processes_requested()
    if launched == 1 and requested > 1:
        raise DistributedLaunchError(
            f"`accelerate launch --cpu --num_processes {requested}` starts only one process (Accelerate's --cpu "
            f"launcher ignores --num_processes). For {requested} CPU processes use "
            f"`{CPU_ACCELERATE.format(n=requested)}` or `{CPU_TORCHRUN.format(n=requested)}`; for one, drop "
            "--num_processes."
        )


def _accelerate_cpu_processes_requested() -> int:
    """``--num_processes`` of an ``accelerate launch --cpu`` parent process (Linux), else 0.

    Accelerate's simple launcher (used for ``--cpu``) exports ``ACCELERATE_USE_CPU`` but no process count,
    so the count is read from the launcher's own command line when the platform exposes it.
    """
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes") or "WORLD_SIZE" in os.environ:
        return 0
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return 0
    return accelerate_launch_processes(argv)


def accelerate_launch_processes(argv: list[str]) -> int:
    """``--num_processes`` of an ``accelerate launch`` command line (0 when it is not one or gives none)."""
    if not any(os.path.basename(a).startswith("accelerate") for a in argv[:3]) or "launch" not in argv:
        return 0
    for i, token in enumerate(argv):
        for flag in ("--num_processes", "--num-processes"):
            if token == flag and i + 1 < len(argv):
                return _to_int(argv[i + 1])
            if token.startswith(flag + "="):
                return _to_int(token.split("=", 1)[1])
    return 0


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _int_env(name: str, default: int) -> int:
    return _to_int(os.environ.get(name, default)) or default


def _to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
