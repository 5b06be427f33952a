"""``hf-transfer`` under a launcher, with each rank's behaviour recorded (used by ``tests/test_distributed.py``).

Run as ``torchrun --nproc_per_node 2 tests/ddp_worker.py RECORD_DIR train CONFIG ...``: it is the CLI
(:func:`hf_transfer.cli.main`) plus instruments, per rank, into ``RECORD_DIR/rank<R>.json`` and
``RECORD_DIR/rank<R>.pt``:

* the world size the Trainer and ``torch.distributed`` saw, and whether the model was wrapped in DDP;
* every training batch: the global step, the example ids (written into pixel (0, 0) of each image) and the
  domain labels;
* the trainable weights after training;
* what this rank wrote under the output folder. Rank 0 runs with umask ``0o022`` and the others with ``0``, so
  any file or folder another rank creates is world-writable and rank 0's never are (whatever library writes it,
  Python, C++ or Rust); an audit hook also records the other ranks' Python-level writes, including temporary
  files (created with mode 0o600 whatever the umask) and rewrites of existing files.
"""

from __future__ import annotations

import json
import os
import sys

RANK = int(os.environ.get("RANK", "0"))
_WRITES: list[str] = []


def _watch_writes(root: str) -> None:
    root = os.path.realpath(root)

    def under(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(root)
        except (TypeError, ValueError):
            return False

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and under(args[0]):
                _WRITES.append(f"open {os.fsdecode(args[0])}")
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "tempfile.mkstemp", "tempfile.mkdtemp"):
            paths = args[:2] if event == "os.rename" else args[:1]
            if any(under(p) for p in paths if isinstance(p, (str, bytes, os.PathLike))):
                _WRITES.append(f"{event} {' -> '.join(os.fsdecode(p) for p in paths)}")

    sys.addaudithook(hook)


def main() -> int:
    record_dir, argv = sys.argv[1], sys.argv[2:]
    output_dir = argv[argv.index("--training.output_dir") + 1]
    os.umask(0o022 if RANK == 0 else 0)
    if RANK != 0:
        _watch_writes(output_dir)

    import torch
    import torch.distributed as dist

    from hf_transfer.cli import main as cli_main
    from hf_transfer.trainer import DomainAdaptationTrainer

    record: dict = {"rank": RANK, "batches": []}
    compute_loss = DomainAdaptationTrainer.compute_loss
    train = DomainAdaptationTrainer.train

    def recording_compute_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            pixels = inputs["pixel_values"][:, 0, 0, 0].float() * 0.5 + 0.5  # undo the processor's (x - 0.5) / 0.5
            record["batches"].append({
                "step": self.state.global_step,
                "ids": [int(round(v)) for v in (pixels * 255).tolist()],
                "domains": inputs["domain_labels"].tolist(),
            })
        return compute_loss(self, model, inputs, *args, **kwargs)

    def recording_train(self, *args, **kwargs):
        output = train(self, *args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        torch.save({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
                   os.path.join(record_dir, f"rank{RANK}.pt"))
        record.update(
            trainer_world_size=self.args.world_size,
            dist_world_size=dist.get_world_size() if dist.is_initialized() else 1,
            ddp_wrapped=isinstance(self.model_wrapped, torch.nn.parallel.DistributedDataParallel),
            find_unused_parameters=getattr(self.model_wrapped, "find_unused_parameters", None),
            activation_checkpointing=model.is_activation_checkpointing,
            log_history=self.state.log_history,
        )
        return output

    DomainAdaptationTrainer.compute_loss = recording_compute_loss
    DomainAdaptationTrainer.train = recording_train
    try:
        code = cli_main(argv)
    finally:
        record["writes"] = list(_WRITES)
        with open(os.path.join(record_dir, f"rank{RANK}.json"), "w") as handle:
            json.dump(record, handle)
    return code


if __name__ == "__main__":
    sys.exit(main())
