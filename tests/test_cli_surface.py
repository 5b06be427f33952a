"""The command line's own surface, as a newcomer meets it (issue 14): what one run prints, the field help,
overrides, resuming and output folders."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import yaml

from hf_transfer.cli import main, parse_train_arguments


def test_a_run_logs_each_line_once_and_no_deprecation_warning_of_ours(tiny_setup, caplog):
    _, path = tiny_setup
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        assert main(["train", str(path), "--training.max_steps", "1"]) == 0
    trainable = [r for r in caplog.records if "trainable params" in r.getMessage()]
    assert len(trainable) == 1, [r.getMessage() for r in trainable]
    ours = [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]
    assert not ours


def test_help_fields_shows_the_flags_to_type_and_our_own_help(capsys):
    assert main(["train", "--help-fields"]) == 0
    out = capsys.readouterr().out
    for flag in ("--model.model_name_or_path", "--source.eval_split", "--target.dataset", "--training.learning_rate",
                 "--training.overwrite_output_dir", "--pretraining.epochs"):
        assert flag in out, flag
    assert "\n  --model_name_or_path" not in out and "\n  --learning_rate" not in out
    words = " ".join(out.split())  # argparse wraps the help text
    assert "Not directly used by Trainer" not in words
    assert "--training.resume_from_checkpoint RESUME_FROM_CHECKPOINT Resume this run: 'last' (or 'true') for the newest" \
           " complete checkpoint-<step> folder in output_dir" in words


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--training.lerning_rate", "3e-4"],
         "Unknown field training.lerning_rate (on the command line: --training.lerning_rate). Did you mean "
         "training.learning_rate (--training.learning_rate)?"),
        (["--model.learning_rate", "3e-4"],
         "Unknown field model.learning_rate (on the command line: --model.learning_rate). It is a field of 'training' "
         "(--training.learning_rate) and 'pretraining' (--pretraining.learning_rate)."),
        (["--trainng.max_steps", "3"], "Did you mean --training.max_steps?"),
        (["--training.max_steps", "abc"], "Section 'training': argument --training.max_steps: invalid int value: 'abc'"),
        (["--training.max_steps", "null"], "training.max_steps cannot be null: it needs a value (leave it out for the "
                                           "default, -1)."),
    ],
)
def test_a_bad_field_is_named_with_its_section_and_a_close_match(tiny_setup, capsys, override, expected):
    _, path = tiny_setup
    assert main(["train", str(path), *override]) == 2
    err = capsys.readouterr().err
    assert expected in err and "HfArgumentParser" not in err and "usage:" not in err


def test_an_unknown_field_in_the_config_file_says_where(tiny_setup, capsys):
    _, path = tiny_setup
    config = yaml.safe_load(path.read_text())
    config["source"]["eval_splt"] = "test"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 2
    assert f"Unknown field source.eval_splt (in {path}). Did you mean source.eval_split" in capsys.readouterr().err


def test_null_and_none_unset_a_field(tiny_setup):
    _, path = tiny_setup
    model, source, target, training, _ = parse_train_arguments(
        str(path), ["--source.eval_split", "null", "--target.eval_split", "None", "--model.max_length", "null",
                    "--training.hub_model_id", "~", "--training.report_to", "none", "--model.image_augmentation", "none"]
    )
    assert source.eval_split is None and target.eval_split is None
    assert model.max_length is None  # its default (128) is replaced, not kept
    assert training.hub_model_id is None
    # fields with a 'none' value of their own read the word (transformers turns report_to 'none' into [])
    assert training.report_to == [] and model.image_augmentation == "none"
    config = yaml.safe_load(path.read_text())
    config["model"]["max_length"] = None  # YAML null, the same
    path.write_text(yaml.safe_dump(config))
    assert parse_train_arguments(str(path), [])[0].max_length is None


def test_resume_from_the_newest_checkpoint_with_last_or_true(tiny_setup, capsys, caplog):
    tmp_path, path = tiny_setup
    out = tmp_path / "out"
    assert main(["train", str(path), "--training.resume_from_checkpoint", "last"]) == 2
    assert f"resumes from the newest complete checkpoint in output_dir, but {out} holds no checkpoint" in capsys.readouterr().err
    steps = ["--training.save_strategy", "steps", "--training.save_steps", "1"]
    assert main(["train", str(path), *steps, "--training.max_steps", "2"]) == 0
    (out / "checkpoint-9").mkdir()  # cut short: no trainer_state.json, never resumed from
    with caplog.at_level(logging.INFO):
        assert main(["train", str(path), *steps, "--training.max_steps", "3",
                     "--training.resume_from_checkpoint", "true"]) == 0
    assert any(f"resuming from {out / 'checkpoint-2'})" in r.getMessage() for r in caplog.records)
    assert json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


def test_an_existing_output_folder_needs_overwrite_or_resume(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    out = tmp_path / "out"
    steps = ["--training.save_strategy", "steps", "--training.save_steps", "1"]
    assert main(["train", str(path), *steps]) == 0
    assert (out / "checkpoint-2").is_dir()
    capsys.readouterr()
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"output_dir '{out}' already holds files (README.md, adapter_config.json" in err
    assert "--training.overwrite_output_dir true" in err and "--training.resume_from_checkpoint last" in err
    assert main(["train", str(path), "--training.max_steps", "1", "--training.overwrite_output_dir", "true"]) == 0
    assert not (out / "checkpoint-2").exists()  # the old run's checkpoints do not mix with the new run's


def test_train_says_when_each_stage_starts_and_logs_instead_of_printing_dicts(tiny_setup, capsys, caplog):
    tmp_path, path = tiny_setup
    with caplog.at_level(logging.INFO):
        assert main(["train", str(path), "--training.logging_steps", "1", "--target.eval_split", str(tmp_path / "target"),
                     "--model.random_init", "true", "--pretraining.epochs", "1", "--pretraining.batch_size", "4"]) == 0
    stages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Stage ")]
    assert [s.split(":")[0] for s in stages] == ["Stage 1/4", "Stage 2/4", "Stage 3/4", "Stage 4/4"]
    assert "source pretraining" in stages[0] and "adaptation (dann" in stages[1] and "evaluation" in stages[2]
    assert any(r.getMessage().startswith("adaptation step 1/2: loss ") for r in caplog.records)
    out = capsys.readouterr().out
    assert "{'" not in out  # no raw log dict on stdout
    assert "eval_target_accuracy" in json.loads(out[: out.rindex("}") + 1])  # the final metrics, as JSON
    assert main(["train", str(path), "--training.logging_steps", "1", "--training.overwrite_output_dir", "true",
                 "--verbose"]) == 0
    assert "{'loss'" in capsys.readouterr().out  # --verbose: the Trainer's own dicts
