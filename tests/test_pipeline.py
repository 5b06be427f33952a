"""``run_training`` (the CLI's ``train`` job): reproducible from its seed."""

import json

from safetensors.torch import load_file

from hf_transfer.cli import main


def _train(config, output_dir, method="dann"):
    argv = ["train", str(config), "--training.output_dir", str(output_dir), "--training.max_steps", "3",
            "--training.logging_steps", "1", "--training.method", method, "--training.seed", "0"]
    assert main(argv) == 0
    return output_dir


def test_two_runs_with_the_same_seed_give_bit_identical_weights(tiny_setup):
    tmp_path, config = tiny_setup
    first = _train(config, tmp_path / "run1")
    second = _train(config, tmp_path / "run2")
    for name in ("adapter_model.safetensors", "domain_discriminator.safetensors"):
        a, b = load_file(str(first / name)), load_file(str(second / name))
        assert a.keys() == b.keys() and a
        for key in a:
            assert a[key].equal(b[key]), f"{name}:{key} differs between two runs with seed 0"
    # ... and a different seed really draws different weights (the check above could not pass by accident).
    assert main(["train", str(config), "--training.output_dir", str(tmp_path / "run3"), "--training.max_steps", "3",
                 "--training.seed", "1"]) == 0
    a, c = load_file(str(first / "adapter_model.safetensors")), load_file(str(tmp_path / "run3" / "adapter_model.safetensors"))
    assert any(not a[k].equal(c[k]) for k in a)
    assert json.loads((first / "domain_adaptation.json").read_text())["training"]["seed"] == 0
