"""benchmarks/run_recipe.py and collect_results.py: how methods are built and how results are summarised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_transfer.data import DomainDataArguments
from tests.benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runner():
    return load_script("run_recipe")


def test_target_oracle_trains_on_the_target_train_split_and_others_never_do(runner):
    target = DomainDataArguments(dataset="/d/usps", split="train", eval_split="test", input_column="text")
    oracle = runner.method_overrides("target_oracle", target)
    pairs = dict(zip(oracle[::2], oracle[1::2]))
    assert pairs["--source.dataset"] == "/d/usps" and pairs["--source.split"] == "train"
    assert pairs["--source.eval_split"] == "test" and pairs["--source.input_column"] == "text"
    assert pairs["--training.method"] == "source_only"
    assert "--source.center_crop" not in pairs  # no crop anywhere (text/audio recipes): nothing to undo
    cropped_source = DomainDataArguments(dataset="/d/pbc", center_crop=0.45)
    uncropped = dict(zip(*[iter(runner.method_overrides("target_oracle", target, cropped_source))] * 2))
    assert uncropped["--source.center_crop"] == "1.0"  # the target's framing, not the source's crop
    cropped = runner.method_overrides("target_oracle", DomainDataArguments(dataset="/d/t", center_crop=0.7))
    assert dict(zip(cropped[::2], cropped[1::2]))["--source.center_crop"] == "0.7"
    for method in ("source_only", "dann", "source_only_stain"):
        overrides = runner.method_overrides(method, target)
        assert "--source.dataset" not in overrides
    assert "stain" in runner.method_overrides("source_only_stain", target)
    stain_dann = dict(zip(*[iter(runner.method_overrides("dann_stain", target))] * 2))
    assert stain_dann == {"--training.method": "dann", "--model.image_augmentation": "stain"}
    mcc = dict(zip(*[iter(runner.method_overrides("mcc", target))] * 2))
    assert mcc == {"--training.method": "mcc", "--training.mcc_loss_weight": "1.0"}  # MCC alone, no adversary
    assert dict(zip(*[iter(runner.method_overrides("dann_mcc", target))] * 2))["--training.method"] == "dann"
    assert dict(zip(*[iter(runner.method_overrides("mcc_stain", target))] * 2))["--model.image_augmentation"] == "stain"
    cdan = dict(zip(*[iter(runner.method_overrides("cdan", target))] * 2))
    assert cdan == {"--training.method": "cdan", "--training.mcc_loss_weight": "0"}  # CDAN alone, even in an MCC recipe
    speed = dict(zip(*[iter(runner.method_overrides("dann_speed", target))] * 2))
    assert speed == {"--training.method": "dann", "--model.audio_augmentation": "speed"}
    baselines = dict(runner.COMPARISONS)  # each augmented method is compared with the same augmentation
    assert baselines["dann_speed"] == "source_only_speed" and baselines["cdan_stain"] == "source_only_stain"
    rotation = dict(zip(*[iter(runner.method_overrides("dann_rotation", target))] * 2))
    assert rotation == {"--training.method": "dann", "--training.task_loss_weights": "rotation=1.0"}
    assert baselines["dann_rotation"] == "dann" and baselines["source_only_rotation"] == "source_only"


def test_summary_is_mean_and_population_std_over_seeds(runner):
    runs = [
        {"method": "dann", "seed": s, "seconds": 10.0 * (s + 1),
         "metrics": {"eval_target_accuracy": acc, "eval_target_f1": acc - 0.1, "eval_source_accuracy": 0.9}}
        for s, acc in enumerate((0.6, 0.8))
    ] + [{"method": "source_only", "seed": 0, "seconds": 5.0,
          "metrics": {"eval_target_accuracy": 0.5, "eval_source_accuracy": 0.95}}]
    table = runner.summarise(runs, ["source_only", "dann"])
    assert table["dann"]["target_accuracy"] == pytest.approx((0.7, 0.1))
    assert table["dann"]["max_seconds"] == 20.0 and "target_balanced_accuracy" not in table["dann"]
    text = runner.markdown("digits", table, "abc1234", [0, 1])
    assert "commit `abc1234`" in text and "| dann | 70.0 ± 10.0 |" in text
    assert "DANN − source-only on the target (points): accuracy +20.0" in text  # DANN 0.70 vs 0.50


def test_stain_augmented_dann_is_compared_with_stain_augmented_source_only(runner):
    runs = [
        {"method": m, "seed": 0, "seconds": 1.0, "metrics": {"eval_target_accuracy": acc, "eval_source_accuracy": 0.9}}
        for m, acc in (("source_only", 0.2), ("source_only_stain", 0.6), ("dann_stain", 0.7))
    ]
    text = runner.markdown("medical", runner.summarise(runs, ["source_only", "source_only_stain", "dann_stain"]), "c", [0])
    assert "source-only + stain augmentation − source-only on the target (points): accuracy +40.0" in text
    assert ("DANN + stain augmentation − source-only + stain augmentation on the target (points): accuracy +10.0"
            in text)


def test_collect_results_replaces_only_the_marked_block(tmp_path, monkeypatch):
    collect = load_script("collect_results")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "speech.md").write_text("SPEECH TABLE\n")
    (tmp_path / "benchmarks" / "results" / "digits.md").write_text("DIGITS TABLE\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{collect.START}\nold\n{collect.END}\noutro\n")
    monkeypatch.setattr(collect, "ROOT", tmp_path)
    assert collect.main() == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert text.index("DIGITS TABLE") < text.index("SPEECH TABLE")  # fixed order


def test_source_validation_picks_the_largest_weight_that_keeps_source_accuracy(runner):
    def run(acc):
        return {"metrics": {"eval_source_accuracy": acc}}

    # weight 1.0 wrecks the source (0.60 vs 0.84): rejected; 0.3 is within 2 points: chosen over 0.1
    assert runner.select_by_source_validation({1.0: run(0.60), 0.3: run(0.83), 0.1: run(0.84)}, 0.84) == 0.3
    assert runner.select_by_source_validation({1.0: run(0.84), 0.3: run(0.83), 0.1: run(0.84)}, 0.84) == 1.0
    # none keeps it: fall back to the gentlest weight
    assert runner.select_by_source_validation({1.0: run(0.5), 0.3: run(0.6), 0.1: run(0.7)}, 0.84) == 0.1


def test_commit_is_dirty_only_for_code_changes(runner, tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("# r\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "digits.md").write_text("t\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    clean = runner._commit()
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "README.md").write_text("# prose changed\n")
    (tmp_path / "benchmarks" / "results" / "digits.md").write_text("new table\n")
    assert runner._commit() == clean  # prose and results do not change what the runs measure
    (tmp_path / "code.py").write_text("x = 2\n")
    assert runner._commit() == clean + "-dirty"


def test_the_pretrained_configs_write_their_own_results_and_a_missing_backbone_names_the_converter(
    runner, tmp_path, monkeypatch
):
    assert runner.results_stem("digits") == "digits" and runner.results_stem("digits", "pretrained") == "digits_pretrained"
    with pytest.raises(SystemExit, match="--config is one of local, pretrained"):
        runner.config_path("digits", "nope")
    monkeypatch.setenv("HF_TRANSFER_BACKBONES", str(tmp_path))
    with pytest.raises(SystemExit, match="offline_backbones.py whisper-tiny.en .*whisper-tiny.en-1s --clip-seconds 1"):
        runner.check_offline_backbone("speech", "pretrained")
    (tmp_path / "whisper-tiny.en-1s").mkdir()
    (tmp_path / "whisper-tiny.en-1s" / "config.json").write_text("{}")
    runner.check_offline_backbone("speech", "pretrained")  # present: no error
    runner.check_offline_backbone("speech", "local")  # no offline backbone involved


def test_a_listed_results_stem_gets_its_title_and_config(runner):
    runs = [{"method": "source_only", "seed": 0, "seconds": 60.0, "metrics": {"eval_target_accuracy": 0.5}}]
    text = runner.markdown("speech_pretrained", runner.summarise(runs, ["source_only"]), "c", [0])
    assert text.startswith("**speech, on a real pretrained encoder: Whisper tiny.en, 1 s clips** "
                           "(`recipes/speech/pretrained.yaml`; seeds 0; commit `c`;")
    assert runner.markdown("digits", runner.summarise(runs, ["source_only"]), "c", [0]).startswith("**digits** (seeds 0;")


def test_appended_results_name_each_commit_once(runner):
    assert runner.merged_commits("7fb8f47, 7938d86", "7938d86") == "7fb8f47, 7938d86"
    assert runner.merged_commits("7fb8f47", "77b3596") == "7fb8f47, 77b3596"
    assert runner.merged_commits(None, "77b3596") == "77b3596"


def test_a_named_table_has_its_own_files_and_title(runner, tmp_path):
    runs = [{"method": m, "seed": 0, "seconds": 60.0, "metrics": {"eval_target_accuracy": a}}
            for m, a in (("dann", 0.9), ("dann_rotation", 0.8))]
    (tmp_path / "digits_rotation.json").write_text(json.dumps({"commit": "c", "seeds": [0], "runs": runs}))
    assert runner.main(["digits", "--data-root", "unused", "--out", str(tmp_path), "--name", "rotation",
                        "--summarise-only"]) == 0
    text = (tmp_path / "digits_rotation.md").read_text()
    assert text.startswith("**digits, with and without the self-supervised rotation task** "
                           "(`recipes/digits/local.yaml`; seeds 0;")
    assert "DANN + rotation task" in text and not (tmp_path / "digits.md").exists()


def test_a_finished_run_is_read_back_instead_of_trained_again(runner, tmp_path):
    calls = []

    def train():
        calls.append(1)
        return {"metrics": {"eval_target_accuracy": 0.5 + len(calls)}, "seconds": 1.0}

    settings = ["--training.method", "dann"]
    first = runner.cached_run(tmp_path / "run", train, settings)
    again = runner.cached_run(tmp_path / "run", train, settings)
    assert len(calls) == 1 and first["metrics"] == again["metrics"] == {"eval_target_accuracy": 1.5}
    assert again["resumed"] is True and "resumed" not in first
    assert runner.cached_run(tmp_path / "other", train, settings)["metrics"] == {"eval_target_accuracy": 2.5}


def test_a_folder_holding_a_run_with_other_settings_is_an_error_not_a_reused_result(runner, tmp_path):
    runner.cached_run(tmp_path / "run", lambda: {"metrics": {}}, ["--training.domain_loss_weight", "1.0"])
    with pytest.raises(SystemExit, match=r"other settings \(differing: 0.1 1.0\).*another --work-dir"):
        runner.cached_run(tmp_path / "run", lambda: {"metrics": {}}, ["--training.domain_loss_weight", "0.1"])


def test_an_interrupted_run_leaves_nothing_to_resume_from(runner, tmp_path):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.cached_run(tmp_path / "run", interrupted, [])
    assert not (tmp_path / "run" / runner.RUN_RESULT).exists()


def _table(tmp_path, name, seeds, commit, methods=("dann", "source_only"), overrides=()):
    runs = [{"method": m, "seed": s, "seconds": 10.0, "metrics": {"eval_target_accuracy": 0.5 + s / 10}}
            for s in seeds for m in methods]
    payload = {"recipe": "digits", "config": "local", "commit": commit, "seeds": list(seeds),
               "overrides": list(overrides), "note": "old note", "summary": {}, "runs": runs}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(payload))
    return path


def test_tables_of_separate_seeds_combine_into_one_and_each_run_keeps_its_commit(runner, tmp_path):
    both = runner.combined_tables([_table(tmp_path, "s1", [1], "bbb"), _table(tmp_path, "s0", [0], "aaa")],
                                  "digits", "local", note="on a GPU")
    assert both["seeds"] == [0, 1] and both["commit"] == "bbb, aaa"
    assert {(r["method"], r["seed"], r["commit"]) for r in both["runs"]} == {
        ("dann", 1, "bbb"), ("source_only", 1, "bbb"), ("dann", 0, "aaa"), ("source_only", 0, "aaa")}
    assert "summary" not in both and both["note"] == "on a GPU"  # the tables' own notes are not carried over
    assert runner.summarise(both["runs"], ["dann"])["dann"]["target_accuracy"][0] == pytest.approx(0.55)


def test_tables_that_differ_overlap_or_leave_a_seed_out_do_not_combine(runner, tmp_path):
    s0 = _table(tmp_path, "s0", [0], "aaa")
    with pytest.raises(SystemExit, match="holds digits --config local runs, not speech --config local"):
        runner.combined_tables([s0], "speech", "local")
    with pytest.raises(SystemExit, match="overrides"):
        runner.combined_tables([s0, _table(tmp_path, "w", [1], "aaa", overrides=["--training.seed", "1"])], "digits",
                               "local")
    with pytest.raises(SystemExit, match="dann seed 0 is in both"):
        runner.combined_tables([s0, _table(tmp_path, "again", [0], "aaa")], "digits", "local")
    with pytest.raises(SystemExit, match="source_only has no run for seed.s. 1"):
        runner.combined_tables([s0, _table(tmp_path, "s1", [1], "aaa", methods=("dann",))], "digits", "local")
