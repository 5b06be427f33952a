"""benchmarks/selection.py: who each rule picks from a sweep's selection.json, and the regret/gain table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def selection():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    return load_script("selection")


def _candidate(name, method, status, entropy, snd, accuracy):
    return {"name": name, "values": {"training.domain_loss_weight": 0.3, "training.method": method}, "status": status,
            "scores": {"entropy": entropy, "snd": snd}, "metrics": {"eval_target_accuracy": accuracy}}


def test_each_rule_picks_by_its_own_direction_and_never_a_collapsed_candidate(selection):
    payload = {
        "validator": "ensemble", "members": ["entropy", "snd"], "chosen": "c02",
        "candidates": [
            _candidate("c01", "source_only", "finished", 0.9, 0.10, 0.60),
            _candidate("c02", "dann", "finished", 0.5, 0.30, 0.70),
            _candidate("c03", "mcc", "finished", 0.2, 0.20, 0.75),  # lowest entropy (lower is better)
            _candidate("c04", "mmd", "collapsed", 0.0, 0.90, 0.95),  # best on both, and the oracle, but collapsed
        ],
    }
    picks = selection.picks_of_one_sweep(payload, "eval_target_accuracy")
    assert {rule: p["candidate"] for rule, p in picks.items()} == {
        "source_only": "c01", "entropy": "c03", "snd": "c02", "ensemble": "c02", "oracle": "c04"}
    assert picks["entropy"]["score"] == 0.75 and picks["entropy"]["label"] == "mcc/0.3"


def test_regret_and_gain_are_means_over_seeds(selection):
    per_seed = {
        0: {"source_only": {"candidate": "a", "score": 0.6}, "ensemble": {"candidate": "b", "score": 0.7},
            "oracle": {"candidate": "c", "score": 0.8}},
        1: {"source_only": {"candidate": "a", "score": 0.5}, "ensemble": {"candidate": "c", "score": 0.9},
            "oracle": {"candidate": "c", "score": 0.9}},
    }
    table = selection.summarise(per_seed)
    assert table["ensemble"]["score"][0] == pytest.approx(0.8)
    assert table["ensemble"]["regret"][0] == pytest.approx(0.05)  # (0.1 + 0.0) / 2
    assert table["ensemble"]["gain"][0] == pytest.approx(0.25)  # (0.1 + 0.4) / 2
    assert table["oracle"]["regret"] == (pytest.approx(0.0), pytest.approx(0.0))
    text = selection.markdown("digits", "eval_target_accuracy", table, 12)
    assert "| **ensemble** (the sweep's choice) | 80.0 ± 10.0 | +5.0 ± 5.0 | +25.0 ± 15.0 | b, c |" in text


def test_the_default_grid_weights_only_the_methods_that_read_the_weight(selection):
    from hf_transfer.alignment import available_methods, get_method
    from hf_transfer.sweep import grid_candidates, load_grids

    unweighted, weighted = selection.default_grid("medical")
    assert weighted["training"]["domain_loss_weight"] == [0.1, 0.3, 1.0]
    assert {"dann", "cdan", "mmd"} <= set(weighted["training"]["method"])
    assert {"source_only", "mcc"} <= set(unweighted["training"]["method"])
    assert not {"shot", "tent", "sar"} & {*unweighted["training"]["method"], *weighted["training"]["method"]}
    assert unweighted["model"]["image_augmentation"] == weighted["model"]["image_augmentation"] == ["flip", "stain"]
    candidates = grid_candidates(load_grids(selection.default_grid("medical")))
    with_source = [m for m in available_methods() if get_method(m).needs_source]
    n_weighted = len(weighted["training"]["method"])
    assert len(candidates) == 2 * (len(with_source) - n_weighted + 3 * n_weighted)
    assert len({json.dumps(c.values, sort_keys=True) for c in candidates}) == len(candidates)
    assert selection.default_grid("finance", ["source_only", "mcc"]) == [{"training": {"method": ["source_only", "mcc"]}}]
    assert selection.headline_metric("medical") == "eval_target_balanced_accuracy"


def test_backbones_from_an_earlier_run_are_found_per_seed_or_refused(selection, tmp_path):
    saved = tmp_path / "work" / "digits" / "seed1" / "source_only" / "source-pretrained"
    saved.mkdir(parents=True)
    (saved / "model.safetensors").write_bytes(b"")
    assert selection.seed_backbone(str(tmp_path / "work"), "digits", 1) == [
        "--model.model_name_or_path", str(saved), "--model.random_init", "false", "--pretraining.epochs", "0"]
    assert selection.seed_backbone(None, "digits", 1) == []
    with pytest.raises(SystemExit, match="no source-pretrained backbone for seed 2"):
        selection.seed_backbone(str(tmp_path / "work"), "digits", 2)


def test_the_cost_of_a_sweep_is_its_cpu_time_in_single_runs(selection):
    rows = [{"status": "finished", "cpu_seconds": 100.0}, {"status": "collapsed", "cpu_seconds": 120.0},
            {"status": "finished", "cpu_seconds": 80.0}, {"status": "pruned", "cpu_seconds": 30.0},
            {"status": "pruned", "cpu_seconds": 20.0}]
    assert selection.sweep_cost({"candidates": rows}) == pytest.approx(350.0 / 100.0)  # median of the full ones
    assert selection.sweep_cost({"candidates": [*rows, {"status": "finished"}]}) is None  # an older record: no times
    assert selection.sweep_cost({"candidates": rows[3:]}) is None  # nothing trained to the end: no yardstick


def test_ensv_picks_the_candidate_that_agrees_most_among_the_eligible(selection):
    rows = [_candidate("c01", "source_only", "finished", 0.9, 0.1, 0.60),
            _candidate("c02", "dann", "finished", 0.5, 0.3, 0.70),
            _candidate("c03", "mmd", "collapsed", 0.0, 0.9, 0.95)]
    for row, agreement in zip(rows, (0.8, 0.9, None)):
        row["ensv"] = agreement
    payload = {"validator": "ensemble", "members": ["entropy"], "chosen": "c02", "candidates": rows}
    assert selection.picks_of_one_sweep(payload, "eval_target_accuracy")["ensv"]["candidate"] == "c02"
    rows[0]["ensv"] = None  # an eligible candidate without predictions: no EnsV row rather than a partial one
    assert "ensv" not in selection.picks_of_one_sweep(payload, "eval_target_accuracy")


def test_backfilled_predictions_are_the_trainers_own_and_a_mismatch_is_refused(selection, tmp_path):
    """An older sweep's candidate re-run on the target eval split gives the probabilities its training run saved."""
    import numpy as np
    import yaml
    from safetensors.numpy import load_file

    from hf_transfer.sweep import run_sweep
    from tests.selection_data import domains_and_vit

    vit = domains_and_vit(tmp_path, train=8, test=4, target_shift=40)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"model_name_or_path": str(vit)},
        "source": {"dataset": str(tmp_path / "source"), "eval_split": "test"},
        "target": {"dataset": str(tmp_path / "target"), "eval_split": "test"},
        "training": {"max_steps": 3, "per_device_train_batch_size": 8, "lora_r": 4, "discriminator_hidden_size": 8,
                     "learning_rate": 0.05, "report_to": "none", "save_strategy": "no", "disable_tqdm": True,
                     "shift_report": "none", "validators": ["entropy"]},
    }))
    out = tmp_path / "sweep"
    run_sweep(config, {"training": {"method": ["dann"]}}, output_dir=out, pruner="none", progress=None)
    saved = out / "candidates" / "c00" / "target_predictions.safetensors"
    original = load_file(saved)["probabilities"]
    saved.unlink()  # as a candidate of an older sweep
    assert selection.backfill_predictions(out, config, [], seed=0) == []
    assert np.allclose(load_file(saved)["probabilities"], original, atol=1e-5)

    saved.unlink()
    table = json.loads((out / "selection.json").read_text())
    table["candidates"][0]["metrics"]["eval_target_accuracy"] += 0.01  # not what this model scores
    (out / "selection.json").write_text(json.dumps(table))
    assert selection.backfill_predictions(out, config, [], seed=0) == ["c00"] and not saved.exists()
