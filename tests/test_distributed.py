"""Multi-process training, for real: ``torchrun --nproc_per_node 2`` on CPU (gloo DDP) through the CLI.

One 2-process run of ``hf-transfer train`` (with a source-pretraining stage, a checkpoint and an evaluation)
is recorded rank by rank (``tests/ddp_worker.py``) and compared with a single-process run of the same global
batch. A launch that would silently train two separate models must stop with an error naming the fix.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hf_transfer.distributed import DistributedLaunchError, accelerate_launch_processes, check_launch

REPO = Path(__file__).resolve().parent.parent
N_SOURCE, N_TARGET, RATIO, PER_DEVICE, WORLD, STEPS = 16, 32, 2, 2, 2, 8
STEPS_PER_EPOCH = N_SOURCE // (PER_DEVICE * WORLD)
TARGET_ID0 = 100


def _images(root: Path, n: int, first_id: int, shift: int) -> None:
    """``n`` 16-px images in two class folders; pixel (0, 0) holds the example's id (read back by the worker)."""
    rng = np.random.default_rng(first_id)
    for k in range(n):
        label = k % 2
        pixels = rng.integers(0, 60, size=(16, 16, 3))
        pixels[:, :, label] += 150
        pixels = np.clip(pixels + shift, 0, 255)
        pixels[0, 0, :] = first_id + k
        (root / "ab"[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype("uint8")).save(root / "ab"[label] / f"{k}.png")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import ViTForImageClassification, ViTImageProcessor

    from tests.conftest import CHECKPOINTING, tiny_vit_config

    root = tmp_path_factory.mktemp("ddp")
    _images(root / "source", N_SOURCE, 0, 0)
    _images(root / "target", N_TARGET, TARGET_ID0, 40)
    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config(num_labels=2)).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    config = {
        "model": {"model_name_or_path": str(root / "vit")},
        "source": {"dataset": str(root / "source")},
        "target": {"dataset": str(root / "target"), "eval_split": "train"},
        "pretraining": {"epochs": 1, "learning_rate": 1e-3},
        "training": {
            "max_steps": STEPS, "learning_rate": 1e-2, "target_ratio": RATIO, "lora_r": 4,
            "discriminator_hidden_size": 8, "discriminator_dropout": 0.0, "report_to": "none", "logging_steps": 2,
            "save_strategy": "steps", "save_steps": STEPS, "disable_tqdm": True, "seed": 0,
            "dataloader_num_workers": 1, CHECKPOINTING: True,
        },
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
               *args]
    return subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ddp_run(setup):
    record = setup / "record"
    record.mkdir()
    out = setup / "out-ddp"
    result = _torchrun(
        "tests/ddp_worker.py", str(record), "train", str(setup / "config.yaml"), "--training.output_dir", str(out),
        "--training.per_device_train_batch_size", str(PER_DEVICE), "--pretraining.batch_size", "4",
        "--training.use_cpu", "true",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in range(WORLD)]
    weights = [torch.load(record / f"rank{r}.pt") for r in range(WORLD)]
    return out, ranks, weights, result


def test_two_processes_train_one_model_with_ddp(ddp_run):
    _, ranks, weights, _ = ddp_run
    for rank in ranks:
        assert rank["trainer_world_size"] == WORLD and rank["dist_world_size"] == WORLD and rank["ddp_wrapped"]
        assert rank["find_unused_parameters"] is False  # the discriminator always runs: no extra graph traversal
        assert rank["activation_checkpointing"]  # LoRA under DDP with checkpointed layers
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), f"{name} differs between the ranks"


def test_ranks_see_disjoint_examples_that_cover_each_epoch_with_both_domains_in_every_batch(ddp_run):
    _, ranks, _, _ = ddp_run
    assert all(len(rank["batches"]) == STEPS for rank in ranks)
    for rank in ranks:
        for batch in rank["batches"]:  # source rows first, then RATIO target rows per source row
            assert batch["domains"] == [0] * PER_DEVICE + [1] * PER_DEVICE * RATIO
            assert all(i < N_SOURCE for i in batch["ids"][:PER_DEVICE])
            assert all(TARGET_ID0 <= i < TARGET_ID0 + N_TARGET for i in batch["ids"][PER_DEVICE:])
    for epoch in range(STEPS // STEPS_PER_EPOCH):
        seen = [i for rank in ranks for b in rank["batches"] if b["step"] // STEPS_PER_EPOCH == epoch for i in b["ids"]]
        sources = sorted(i for i in seen if i < TARGET_ID0)
        targets = sorted(i - TARGET_ID0 for i in seen if i >= TARGET_ID0)
        assert sources == list(range(N_SOURCE)), f"epoch {epoch}: source examples missing or repeated"
        assert targets == list(range(N_TARGET)), f"epoch {epoch}: target examples missing or repeated"


def test_only_rank_0_writes(ddp_run):
    out, ranks, _, _ = ddp_run
    # Rank 1 ran with umask 0: whatever it created is world-writable (rank 0's files never are). The Trainer saves
    # each rank's RNG state into the checkpoint (resume restores every rank's random state), creating the
    # checkpoint folder from whichever rank gets there first: that file and that folder are the only exceptions.
    created_by_rank_1 = [
        str(path.relative_to(out)) for path in out.rglob("*")
        if path.stat().st_mode & stat.S_IWOTH and path.name not in ("rng_state_1.pth", f"checkpoint-{STEPS}")
    ]
    assert created_by_rank_1 == []
    assert [w for w in ranks[1]["writes"] if not w.endswith(("rng_state_1.pth", f"checkpoint-{STEPS}"))] == []
    for expected in ("adapter_model.safetensors", "README.md", "source-pretrained/model.safetensors",
                     "source-pretrained/preprocessor_config.json", f"checkpoint-{STEPS}/optimizer.pt"):
        assert (out / expected).is_file(), expected


def test_logged_and_evaluation_metrics_are_gathered_and_match_a_single_process_run(ddp_run, setup):
    from safetensors.torch import load_file

    from hf_transfer.cli import main

    out, ranks, _, _ = ddp_run
    single = setup / "out-single"
    argv = ["train", str(setup / "config.yaml"), "--training.output_dir", str(single),
            "--training.per_device_train_batch_size", str(PER_DEVICE * WORLD), "--pretraining.batch_size", "8",
            "--training.use_cpu", "true"]
    assert main(argv) == 0
    for name in ("adapter_model.safetensors", "domain_discriminator.safetensors"):
        distributed, alone = load_file(str(out / name)), load_file(str(single / name))
        assert distributed.keys() == alone.keys()
        for key in distributed:
            torch.testing.assert_close(distributed[key], alone[key], atol=2e-4, rtol=1e-3, msg=f"{name}:{key}")
    ddp_info = json.loads((out / "domain_adaptation.json").read_text())
    single_info = json.loads((single / "domain_adaptation.json").read_text())
    for key, value in single_info["metrics"].items():
        assert ddp_info["metrics"][key] == pytest.approx(value, abs=1e-3), key  # evaluation over all 32 target rows
    # The logged alignment values are means over both ranks' rows, as one process with the global batch logs them.
    ddp_logs = [h for h in ranks[0]["log_history"] if "domain_loss" in h]
    single_logs = [h for h in json.loads((single / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())[
        "log_history"] if "domain_loss" in h]
    assert len(ddp_logs) == len(single_logs) == STEPS // 2
    for a, b in zip(ddp_logs, single_logs):
        for key in ("loss", "classification_loss", "domain_loss", "domain_accuracy", "grl_lambda"):
            assert a[key] == pytest.approx(b[key], abs=2e-3), key


def test_a_launch_that_would_train_two_separate_models_stops_with_the_fix(setup):
    """torchrun on a CPU machine without use_cpu: each process would train alone on all the data."""
    if torch.cuda.is_available():
        pytest.skip("with a GPU the Trainer does run DDP without use_cpu")
    out = setup / "out-silent"
    result = _torchrun("-m", "hf_transfer", "train", str(setup / "config.yaml"), "--training.output_dir", str(out),
                       timeout=120)
    assert result.returncode != 0
    assert "world size 1" in result.stderr and "--training.use_cpu true" in result.stderr
    assert not out.exists() or not any(out.rglob("*.safetensors"))


def test_check_launch_names_the_cpu_forms(monkeypatch):
    class Args:
        world_size, use_cpu = 1, False

    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(DistributedLaunchError, match="3 processes were launched"):
        check_launch(Args())
    monkeypatch.delenv("WORLD_SIZE")
    check_launch(Args())  # one process, nothing to say
    # `accelerate launch --cpu --num_processes 2` starts one process: read from the launcher's command line.
    launcher = ["python3", "/usr/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "hf_transfer"]
    assert accelerate_launch_processes(launcher) == 2
    assert accelerate_launch_processes(["python3", "/usr/bin/accelerate", "launch", "--num_processes=4", "x.py"]) == 4
    assert accelerate_launch_processes(["python3", "-m", "pytest", "--num_processes", "2"]) == 0
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setattr("hf_transfer.distributed._accelerate_cpu_processes_requested", lambda: 2)
    with pytest.raises(DistributedLaunchError, match="accelerate launch --multi_gpu --num_processes 2"):
        check_launch(Args())


def test_accelerate_recipes_load_and_carry_what_peft_needs():
    from accelerate.commands.config.config_args import load_config_from_file

    folder = REPO / "recipes" / "accelerate"
    configs = {path.stem: load_config_from_file(str(path)) for path in sorted(folder.glob("*.yaml"))}
    assert set(configs) == {"single_gpu", "multi_gpu_ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"}
    assert configs["single_gpu"].num_processes == 1 and configs["multi_gpu_ddp"].distributed_type == "MULTI_GPU"
    fsdp = configs["fsdp"].fsdp_config
    assert fsdp["fsdp_use_orig_params"] is True and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    for stage in (2, 3):
        deepspeed = configs[f"deepspeed_zero{stage}"].deepspeed_config
        ds = json.loads((REPO / deepspeed["deepspeed_config_file"]).read_text())
        assert ds["zero_optimization"]["stage"] == stage and deepspeed["zero3_init_flag"] is False
        assert ds["gradient_accumulation_steps"] == ds["train_micro_batch_size_per_gpu"] == "auto"
    assert json.loads((folder / "ds_zero3.json").read_text())["zero_optimization"][
        "stage3_gather_16bit_weights_on_model_save"] is True
