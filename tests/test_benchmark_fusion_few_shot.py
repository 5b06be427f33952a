"""benchmarks/run_multi_source.py, run_few_shot.py and fusion_benchmark.py: the runs they build and the tables they
write (the real runs are the lead's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_transfer.data import DomainDataArguments
from tests.benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def multi():
    return load_script("run_multi_source")


@pytest.fixture(scope="module")
def few():
    return load_script("run_few_shot")


@pytest.fixture(scope="module")
def fusion():
    return load_script("fusion_benchmark")


def test_multi_source_runs_are_each_source_alone_pooled_and_balanced(multi):
    domains = {name: {"dataset": f"/d/{name}", "eval_split": "test", "description": name} for name in ("a", "b", "c")}
    domains["target"] = {"dataset": "/d/t", "eval_split": "test"}
    configs = multi.run_configs("speech", domains)
    assert list(configs) == ["single_a", "single_b", "single_c", "pooled", "multi"]
    assert configs["single_b"]["source"]["dataset"] == "/d/b" and "sources" not in configs["single_b"]
    for run, pooled in (("pooled", True), ("multi", False)):
        assert [s["dataset"] for s in configs[run]["sources"]] == ["/d/a", "/d/b", "/d/c"]
        assert "source" not in configs[run] and configs[run]["training"]["pool_sources"] is pooled
    assert configs["multi"]["target"]["dataset"] == "/d/t"
    assert Path(configs["multi"]["model"]["model_name_or_path"]).is_absolute()  # the recipe's backbone folder
    assert multi.pretraining_key("multi") == multi.pretraining_key("pooled") != multi.pretraining_key("single_a")


def test_multi_source_on_a_pretrained_config_keeps_its_backbone_and_settings(multi):
    domains = {name: {"dataset": f"/d/{name}", "eval_split": "test"} for name in ("a", "b", "target")}
    configs = multi.run_configs("speech", domains, "pretrained")
    assert "HF_TRANSFER_BACKBONES" in configs["multi"]["model"]["model_name_or_path"]  # expanded when parsed
    assert configs["single_a"]["training"]["max_steps"] == multi.recipe_config("speech", "pretrained")["training"][
        "max_steps"] != multi.recipe_config("speech")["training"]["max_steps"]
    assert "pretraining" not in configs["pooled"]  # the real encoder is not pretrained on the source again


def test_multi_source_summary_compares_with_the_best_single_source_and_the_pool(multi):
    table = {"single_a": {"target_accuracy": (0.5, 0.0)}, "single_b": {"target_accuracy": (0.6, 0.0)},
             "pooled": {"target_accuracy": (0.65, 0.0)}, "multi": {"target_accuracy": (0.7, 0.0)}}
    for entry in table.values():
        entry["max_seconds"] = 60
    assert multi.best_single(table) == "single_b"
    runs = [{"method": "multi", "seed": 0, "metrics": {"eval_source_1_accuracy": 0.9, "eval_source_2_accuracy": 0.8,
                                                        "eval_source_accuracy": 0.85}}]
    text = multi.markdown("speech", table, runs, "abc", [0], "dann", ["a", "b"])
    assert "multi − single_b on the target (points): accuracy +10.0." in text
    assert "multi − pooled on the target (points): accuracy +5.0." in text
    assert "source 1 90.0, source 2 80.0" in text


def test_the_multi_source_title_names_the_weight_the_runs_used(multi):
    assert multi.method_label("dann", ["--training.domain_loss_weight", "0.1", "--training.seed", "0"]) == (
        "dann, domain-loss weight 0.1")
    assert multi.method_label("dann", [*multi.DEFAULT_OVERRIDES["finance"], "--training.domain_loss_weight", "0.3"]) == (
        "dann, domain-loss weight 0.3")  # the user's override after the recipe's default
    assert multi.method_label("mcc", []) == "mcc"


def test_cr_and_mpqa_get_a_seeded_stratified_split(multi, tmp_path, capsys):
    lines = [f"{i % 2} sentence number {i}" for i in range(20)]
    (tmp_path / "cr.all").write_text("\n".join([*lines[:5], "0 ", *lines[5:]]) + "\n")  # CR has labels alone
    paths = multi.write_sentence_splits(tmp_path / "cr.all", tmp_path / "out", "cr", seed=0)
    assert "cr.all: 1 labelled line(s) without a sentence skipped" in capsys.readouterr().out
    train = paths["train"].read_text().splitlines()
    test = paths["test"].read_text().splitlines()
    assert train[0] == "text,label" and len(train) - 1 == 16 and len(test) - 1 == 4
    assert sum(row.endswith(",positive") for row in test) == 2  # stratified
    again = multi.write_sentence_splits(tmp_path / "cr.all", tmp_path / "again", "cr", seed=0)
    assert again["test"].read_text() == paths["test"].read_text()


def test_few_shot_runs_label_k_per_class_and_the_baseline_trains_on_the_k_shots_alone(few):
    target = DomainDataArguments(dataset="/d/usps", split="train", eval_split="test")
    mme = dict(zip(*[iter(few.few_shot_overrides("mme", 5, target))] * 2))
    assert mme["--training.method"] == "mme" and mme["--training.target_labels_per_class"] == "5"
    assert "--source.dataset" not in mme  # the recipe's own source
    baseline = dict(zip(*[iter(few.few_shot_overrides("finetune", 5, target))] * 2))
    assert baseline["--training.method"] == "source_only" and baseline["--source.dataset"] == "/d/usps"
    assert baseline["--source.split"] == "train" and baseline["--source.examples_per_class"] == "5"
    assert "--training.target_labels_per_class" not in baseline
    assert few.ordered(["finetune", "mme", "dann"]) == ["mme", "dann", "finetune"]
    with pytest.raises(ValueError, match="Unknown few-shot method"):
        few.few_shot_overrides("tent", 5, target)
    table = {"mme_k5": {"target_accuracy": (0.8, 0.0)}, "finetune_k5": {"target_accuracy": (0.7, 0.0)}}
    assert few.gain_lines(table, [5], ["mme", "finetune"]) == [
        "", "K = 5: mme_k5 − finetune_k5 on the target (points): accuracy +10.0."]


def test_few_shot_on_a_pretrained_config_without_its_backbone_stops_before_any_work(few, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TRANSFER_BACKBONES", raising=False)
    with pytest.raises(SystemExit, match="offline_backbones.py efficientnet-lite0"):
        few.main(["medical", "--config", "pretrained", "--backbones", str(tmp_path / "none"), "--data-root",
                  str(tmp_path / "raw"), "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "work").exists()


def test_the_few_shot_table_compares_each_method_with_fine_tuning_on_the_k_labels(few, tmp_path):
    runner = load_script("run_recipe")
    runs = [{"method": f"{m}_k5", "seed": 0, "seconds": 60.0, "shots": 5, "metrics": {"eval_target_accuracy": a}}
            for m, a in (("mme", 0.8), ("finetune", 0.7))]
    payload = {"commit": "c", "seeds": [0], "shots": [5], "runs": runs}
    text = few.write_table(runner, tmp_path, "medical_pretrained_few_shot", payload, ["mme", "finetune"])
    assert text.startswith("**medical, on a real pretrained backbone: EfficientNet-Lite0 (ImageNet), 64 px, a few")
    assert "K = 5: mme_k5 − finetune_k5 on the target (points): accuracy +10.0." in text
    assert (tmp_path / "medical_pretrained_few_shot.md").read_text() == text


def test_a_few_shot_table_keeps_the_k_an_earlier_invocation_measured_with_its_commit(few, tmp_path):
    def run(method, shots, accuracy, commit=None):
        row = {"method": f"{method}_k{shots}", "seed": 0, "seconds": 60.0, "shots": shots,
               "metrics": {"eval_target_accuracy": accuracy}}
        return {**row, "commit": commit} if commit else row

    earlier = {"recipe": "digits", "commit": "old", "seeds": [0], "shots": [5], "overrides": [],
               "runs": [run("mme", 5, 0.9), run("source_only", 5, 0.85), run("finetune", 5, 0.8)]}
    now = {"recipe": "digits", "commit": "new", "seeds": [0], "shots": [1, 5], "overrides": [],
           "runs": [run(m, k, 0.5 + k / 100, "new") for k in (1, 5) for m in ("mme", "finetune")]}
    both = few.merged(earlier, {**now, "shots": [1], "runs": now["runs"][:2]})
    assert both["shots"] == [1, 5]
    assert {(r["method"], r["commit"]) for r in both["runs"]} == {
        ("mme_k1", "new"), ("finetune_k1", "new"), ("mme_k5", "old"), ("source_only_k5", "old"), ("finetune_k5", "old")}
    assert few.merged(earlier, now)["runs"] == now["runs"]  # a K measured again replaces the earlier one
    with pytest.raises(SystemExit, match="seeds"):
        few.merged(earlier, {**now, "seeds": [0, 1]})

    assert few.methods_of(both) == ["mme", "source_only", "finetune"]
    text = few.write_table(load_script("run_recipe"), tmp_path, "digits_few_shot", both, few.methods_of(both))
    assert "commits `new` (K = 1), `old` (K = 5)" in text
    assert "| source_only_k5 |" in text and "source_only_k1" not in text  # a method not run at K = 1 has no row
    assert "K = 1: mme_k1 − finetune_k1 on the target (points): accuracy +0.0." in text


def _write(path: Path, payload: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return str(path)


def test_few_shot_tables_run_side_by_side_combine_into_one_with_a_note(few, tmp_path):
    def table(shots, seed, accuracy):
        runs = [{"method": f"{m}_k{shots}", "seed": seed, "seconds": 9.0, "shots": shots,
                 "metrics": {"eval_target_accuracy": accuracy + (m == "mme") / 10}} for m in ("mme", "finetune")]
        return _write(tmp_path / f"k{shots}_s{seed}" / "digits_few_shot.json",
                      {"recipe": "digits", "config": "local", "commit": "abc", "seeds": [seed], "shots": [shots],
                       "overrides": [], "runs": runs})

    parts = [table(k, s, 0.6 + s / 10) for k in (5, 1) for s in (0, 1)]
    assert few.main(["digits", "--data-root", "unused", "--out", str(tmp_path / "out"), "--combine", *parts,
                     "--note", "Measured on one GPU."]) == 0
    text = (tmp_path / "out" / "digits_few_shot.md").read_text()
    assert "seeds 0, 1; commit `abc`" in text and text.rstrip().endswith("Measured on one GPU.")
    assert text.index("| mme_k1 |") < text.index("| mme_k5 |")  # K in order, whatever order the tables came in
    assert "| finetune_k5 | 65.0 ± 5.0 |" in text and "mme_k5 − finetune_k5 on the target (points): accuracy +10.0" in text
    payload = json.loads((tmp_path / "out" / "digits_few_shot.json").read_text())
    assert payload["shots"] == [1, 5] and payload["note"] == "Measured on one GPU."
    with pytest.raises(SystemExit, match="holds digits --config local runs, not speech --config local"):
        few.main(["speech", "--data-root", "unused", "--out", str(tmp_path / "out"), "--combine", *parts])


def test_multi_source_tables_run_side_by_side_combine_in_the_sources_order(multi, tmp_path):
    def table(run, seed, accuracy):
        return _write(tmp_path / f"{run}_s{seed}" / "finance_multi_source.json", {
            "recipe": "finance", "config": "local", "commit": "abc", "seeds": [seed], "method": "dann",
            "sources": ["sst2", "cr"], "overrides": ["--training.domain_loss_weight", "0.1"],
            "runs": [{"method": run, "seed": seed, "seconds": 30.0, "metrics": {"eval_target_accuracy": accuracy}}]})

    accuracy = {"multi": 0.8, "pooled": 0.6, "single_cr": 0.7, "single_sst2": 0.5}
    parts = [table(run, seed, a + seed / 100) for run, a in accuracy.items() for seed in (0, 1)]
    assert multi.main(["finance", "--data-root", "unused", "--out", str(tmp_path / "out"), "--combine", *parts,
                       "--note", "Measured on one GPU."]) == 0
    text = (tmp_path / "out" / "finance_multi_source.md").read_text()
    assert text.startswith("**finance multi-source (dann, domain-loss weight 0.1)**") and "seeds 0, 1;" in text
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["| method", "| single_sst2", "| single_cr", "| pooled", "| multi"]
    assert "multi − single_cr on the target (points): accuracy +10.0." in text
    assert text.rstrip().endswith("Measured on one GPU.")


def test_the_fusion_table_gives_each_domain_its_gap_to_its_own_adapter(fusion, tmp_path):
    runs = [{"seed": seed, "rows": {"george": {"own": own, "fused_cat": own - 0.02, "routing_accuracy_x": 0.9},
                                    "source": {"fused_cat": 0.8}}}
            for seed, own in ((0, 0.9), (1, 0.8))]
    table = fusion.summarise(runs)
    assert table["george"]["fused_cat"]["gap_to_own"] == pytest.approx(-0.02)
    assert "gap_to_own" not in table["george"]["routing_accuracy_x"] and "gap_to_own" not in table["source"]["fused_cat"]
    text = fusion.markdown(table, [0, 1], ["george", "nicolas"], "abc")
    assert "| | george | source |" in text
    assert "| fused_cat | 83.0 ± 5.0 (-2.0) | 80.0 ± 0.0 |" in text
    assert "| own | 85.0 ± 5.0 | – |" in text  # the source has no own adapter
    payload = {"summary": table, "seeds": [0, 1], "targets": ["george", "nicolas"], "commit": "abc"}
    (tmp_path / "fusion_speech.json").write_text(__import__("json").dumps(payload))
    assert fusion.main(["--summarise-only", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fusion_speech.md").read_text() == text


def test_the_fusion_table_on_a_pretrained_config_names_its_encoder_and_file(fusion, tmp_path, monkeypatch):
    runs = [{"seed": 0, "rows": {"george": {"own": 0.9, "fused_cat": 0.85}}}]
    text = fusion.markdown(fusion.summarise(runs), [0], ["george", "nicolas"], "abc", "pretrained")
    assert text.startswith("**speech, on a real pretrained encoder: Whisper tiny.en, 1 s clips, adapter fusion")
    assert "(`recipes/speech/pretrained.yaml`; seeds 0;" in text
    payload = {"summary": fusion.summarise(runs), "seeds": [0], "targets": ["george", "nicolas"], "commit": "abc",
               "config": "pretrained"}
    (tmp_path / "fusion_speech_pretrained.json").write_text(__import__("json").dumps(payload))
    assert fusion.main(["--summarise-only", "--config", "pretrained", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fusion_speech_pretrained.md").read_text() == text
    monkeypatch.delenv("HF_TRANSFER_BACKBONES", raising=False)
    with pytest.raises(SystemExit, match="offline_backbones.py whisper-tiny.en"):  # before any data is prepared
        fusion.main(["--config", "pretrained", "--backbones", str(tmp_path / "none"), "--data-root",
                     str(tmp_path / "raw"), "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path)])
    assert not (tmp_path / "work").exists()
