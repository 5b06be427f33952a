"""One error path for the command line (issue 14): every expected failure exits non-zero with one paragraph on
stderr that says what is wrong, where, and how to fix it; ``--debug`` / ``HF_TRANSFER_DEBUG=1`` add the traceback."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import soundfile as sf

from hf_transfer.cli import main

try:
    from hub_fixtures import hub, hub_server, patch_datasets_hub, patch_hf_hub  # noqa: F401  (fixtures)
except ImportError:
    from tests.hub_fixtures import hub, hub_server, patch_datasets_hub, patch_hf_hub  # noqa: F401

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _error(capsys) -> str:
    """The command's stderr, checked to be one error paragraph (plus the --debug hint) and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("hf-transfer ")]
    assert len(lines) == 1, err
    assert "(run again with --debug, or HF_TRANSFER_DEBUG=1, to see the traceback)" in err
    return lines[0]


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    patch_hf_hub(monkeypatch, UNREACHABLE, tmp_path / "hf_home")
    patch_datasets_hub(monkeypatch, UNREACHABLE)


def test_a_class_folder_domain_takes_its_eval_split_as_a_folder_path(tiny_setup, capsys):
    """What recipes/examples/image_folder.yaml does: eval_split names a class folder of its own."""
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--training.max_steps", "1", "--target.eval_split", str(tmp_path / "source")]) == 0
    info = json.loads((tmp_path / "out" / "domain_adaptation.json").read_text())
    assert info["target_domain"]["eval_split"] == "held-out files"  # a path never reaches the card
    assert "eval_target_accuracy" in info["metrics"]
    capsys.readouterr()
    missing = str(tmp_path / "nowhere_test")
    assert main(["train", str(path), "--target.eval_split", missing, "--training.overwrite_output_dir", "true"]) == 2
    assert f"{missing} is not a folder" in _error(capsys)


def test_a_missing_relative_path_is_not_found_as_a_path_nor_as_a_hub_id(tiny_setup, hub, capsys, monkeypatch):
    tmp_path, path = tiny_setup
    patch_datasets_hub(monkeypatch, hub.endpoint)
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(path), "--target.dataset", "data/hospital_b"]) == 2
    message = _error(capsys)
    assert f"target.dataset 'data/hospital_b' was not found: tried as a path ({tmp_path}/data/hospital_b does not " \
           f"exist), and tried as a Hub dataset id ({hub.endpoint} has no dataset 'data/hospital_b'" in message


def test_an_unreachable_hub_is_named_at_once_without_a_retry_storm(tiny_setup, unreachable_hub, capsys, caplog,
                                                                   monkeypatch):
    tmp_path, path = tiny_setup
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    assert main(["train", str(path), "--target.dataset", "data/hospital_b"]) == 1
    assert time.monotonic() - start < 10  # datasets alone retries for about 25 s
    message = _error(capsys)
    assert "tried as a path" in message and f"could not reach the Hugging Face Hub at {UNREACHABLE} (offline?)" in message
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_offline_mode_is_said_as_such(tiny_setup, capsys, monkeypatch):
    """The test session runs with HF_HUB_OFFLINE=1: a name that is no local path is looked up in the cache only."""
    tmp_path, path = tiny_setup
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(path), "--target.dataset", "data/hospital_b"]) == 1
    message = _error(capsys)
    assert f"tried as a path ({tmp_path}/data/hospital_b does not exist) and as a Hub dataset id" in message
    assert "HF_HUB_OFFLINE is set" in message


def test_a_non_finite_loss_is_one_paragraph_with_what_was_saved(tiny_setup, capsys):
    _, path = tiny_setup
    code = main(["train", str(path), "--training.learning_rate", "1e38", "--training.max_grad_norm", "0",
                 "--training.max_steps", "4"])
    assert code == 1
    message = _error(capsys)
    assert "Non-finite loss (NaN/inf) at step 2" in message and "No checkpoint of this run exists yet" in message
    assert "Saved work:" in message and "holds no checkpoint" in message


def test_a_push_to_an_unreachable_endpoint_names_it(tiny_setup, unreachable_hub, capsys):
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--training.max_steps", "1"]) == 0
    capsys.readouterr()
    assert main(["push", str(tmp_path / "out"), "user/squares", "--base-model-repo-id", "org/base"]) == 1
    message = _error(capsys)
    assert f"could not reach the Hugging Face Hub at {UNREACHABLE} (offline?)" in message
    assert "the remote repository was not modified" in message


def test_the_push_error_for_a_local_base_names_the_command_line_flags(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--training.max_steps", "1"]) == 0
    capsys.readouterr()
    assert main(["push", str(tmp_path / "out"), "user/squares"]) == 1
    err = capsys.readouterr().err
    assert "--base-model-repo-id <namespace>/<name>" in err and "--push-base-model" in err
    assert "base_model_repo_id=" not in err and "hf_transfer.hub.push_base_model" not in err


def test_ctrl_c_says_saved_work_is_intact_and_how_to_resume(tiny_setup, capsys, monkeypatch):
    import hf_transfer.trainer as trainer_module

    tmp_path, path = tiny_setup
    real_step = trainer_module.DomainAdaptationTrainer.training_step

    def interrupted_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 2:  # checkpoints 1 and 2 are saved
            signal.raise_signal(signal.SIGINT)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.DomainAdaptationTrainer, "training_step", interrupted_at_step_3)
    run = ["train", str(path), "--training.max_steps", "4", "--training.save_strategy", "steps",
           "--training.save_steps", "1"]
    # a shell's background job (`pytest &`) starts with SIGINT ignored; Ctrl-C in a terminal raises KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(run)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"hf-transfer train: interrupted. Saved work is intact: {tmp_path / 'out'} holds 2 complete checkpoint(s), "
            "the newest checkpoint-2; resume with the same command and --training.resume_from_checkpoint last.") in err
    monkeypatch.setattr(trainer_module.DomainAdaptationTrainer, "training_step", real_step)
    assert main([*run, "--training.resume_from_checkpoint", "last"]) == 0
    state = json.loads((tmp_path / "out" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_an_empty_target_folder_shows_the_expected_layout(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    (tmp_path / "empty").mkdir()
    assert main(["train", str(path), "--target.dataset", str(tmp_path / "empty")]) == 2
    message = _error(capsys)
    assert f"'{tmp_path / 'empty'}' (target.dataset '{tmp_path / 'empty'}') holds no images, audio or data files" in message
    assert f"{tmp_path / 'empty'}/<class name>/<file>" in message and "/train/<class name>/" in message


def test_evaluate_checks_the_modality_before_the_labels(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--training.max_steps", "1"]) == 0
    for name in ("a", "b", "zz"):  # "zz" is no class of the model: the labels would not match either
        (tmp_path / "audio" / name).mkdir(parents=True)
        sf.write(tmp_path / "audio" / name / "0.wav", np.zeros(1600, dtype=np.float32), 16000)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "out"), str(tmp_path / "audio")]) == 2
    message = _error(capsys)
    assert "is an image model (image-classification), but" in message and "holds audio data" in message
    assert "labels" not in message


def test_debug_shows_the_traceback_too(tiny_setup, capsys, monkeypatch):
    tmp_path, path = tiny_setup
    (tmp_path / "empty").mkdir()
    assert main(["train", str(path), "--target.dataset", str(tmp_path / "empty"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "holds no images, audio or data files" in err
    monkeypatch.setenv("HF_TRANSFER_DEBUG", "1")
    assert main(["train", str(path), "--target.dataset", str(tmp_path / "empty")]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
