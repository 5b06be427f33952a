"""benchmarks/run_source_free.py on tiny synthetic data: a saved source-only run, shared as a Hub download would
be, reloaded to the same target scores, then adapted by a source-free method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench():
    return load_script("run_source_free")


def test_source_only_run_is_shared_reloaded_and_adapted(bench, tiny_setup):
    from hf_transfer.config import parse_train_arguments
    from hf_transfer.pipeline import run_training

    root, config = tiny_setup
    extra = ["--target.eval_split", "train", "--training.shift_report", "none"]
    saved = root / "work" / "seed0" / "source_only"
    trained = run_training(*parse_train_arguments(str(config), extra + [
        "--training.method", "source_only", "--training.output_dir", str(saved)]))
    shared = bench.share_folder(saved, root / "work" / "seed0" / "source_only_shared")
    assert "training_args.bin" not in {p.name for p in shared.iterdir()}
    assert json.loads((shared / "adapter_config.json").read_text())["base_model_name_or_path"] == str(root / "vit")

    start = bench.evaluate_start(config, shared, 0, root / "work" / "seed0", extra)
    assert start["metrics"]["eval_target_accuracy"] == pytest.approx(trained["eval_target_accuracy"], abs=1e-9)
    assert start["metrics"]["eval_target_loss"] == pytest.approx(trained["eval_target_loss"], abs=1e-5)
    result = bench.run_method(config, shared, "tent", 0, root / "work" / "seed0", extra)
    assert {"eval_target_accuracy", "eval_target_balanced_accuracy"} <= set(result["metrics"])
    info = json.loads((root / "work" / "seed0" / "sf_tent" / "domain_adaptation.json").read_text())
    assert info["method"] == "tent" and info["source_free"]["kind"] == "hf_transfer"
    assert info["training"]["learning_rate"] == 0.001  # TENT's own override over the recipe's


def test_run_recipe_sends_source_free_methods_to_this_script():
    runner = load_script("run_recipe")
    with pytest.raises(ValueError, match="run benchmarks/run_source_free.py"):
        runner.method_overrides("shot", target=None)


def test_pretrained_config_without_its_backbone_stops_before_any_work(bench, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TRANSFER_BACKBONES", raising=False)
    work = tmp_path / "work"
    with pytest.raises(SystemExit, match="offline_backbones.py efficientnet-lite0"):
        bench.main(["digits", "--config", "pretrained", "--backbones", str(tmp_path / "none"), "--data-root",
                    str(tmp_path / "raw"), "--work-dir", str(work), "--out", str(tmp_path / "out")])
    assert not work.exists()  # nothing prepared, nothing trained


def test_the_table_compares_each_method_with_the_reloaded_source_only_and_shows_the_source_runs(bench, tmp_path):
    runner = load_script("run_recipe")

    def run(method, seed, accuracy):
        return {"method": method, "seed": seed, "seconds": 60.0, "metrics": {"eval_target_accuracy": accuracy}}

    payload = {"commit": "c", "seeds": [0, 1], "runs": [run("source_only", 0, 0.5), run("source_only", 1, 0.7),
                                                         run("shot", 0, 0.7), run("shot", 1, 0.8)],
               "with_source": [run("mcc (with source)", 0, 0.9), run("mcc (with source)", 1, 0.9)]}
    text = bench.write_table(runner, tmp_path, "speech_pretrained", payload)
    assert text.startswith("**speech, on a real pretrained encoder: Whisper tiny.en, 1 s clips, source-free")
    assert "| mcc (with source) | 90.0 ± 0.0 |" in text
    assert "SHOT (source-free) − source-only on the target (points): accuracy +15.0." in text
    saved = json.loads((tmp_path / "speech_pretrained_source_free.json").read_text())
    assert saved["summary"]["shot"]["target_accuracy"] == pytest.approx([0.75, 0.05])
    assert (tmp_path / "speech_pretrained_source_free.md").read_text() == text


def test_with_source_rows_come_from_several_results_files_first_file_first(bench, tmp_path):
    def results(path, rows):
        path.write_text(json.dumps({"runs": [{"method": m, "seed": s, "metrics": {}} for m, s in rows]}))
        return path

    first = results(tmp_path / "a.json", [("mmd", 0), ("source_only", 0), ("mmd", 5)])
    second = results(tmp_path / "b.json", [("mmd", 0), ("dann_mcc", 0), ("shot", 0)])
    rows = bench.with_source_rows([first, second, tmp_path / "missing.json"], seeds=[0])
    assert [r["method"] for r in rows] == ["mmd (with source)", "dann_mcc (with source)"]


def test_an_appended_file_keeps_the_overrides_of_every_method_it_holds(bench):
    kept = [{"method": "source_only", "seed": 0}, {"method": "tent", "seed": 0}]  # from an earlier invocation
    added = [{"method": "source_only", "seed": 1}, {"method": "sar", "seed": 1}, {"method": "shot", "seed": 1}]
    assert bench.method_overrides_of(kept + added) == {
        "tent": bench.METHOD_OVERRIDES["tent"], "sar": bench.METHOD_OVERRIDES["sar"], "shot": []}
