"""``hf-transfer sweep --backend ray``: the same sweep as Ray Tune trials, and a trial Ray stops recorded as pruned."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

pytest.importorskip("optuna")

from hf_transfer.sweep_candidates import CANDIDATE_RECORD, Candidate, CandidateResult  # noqa: E402
from hf_transfer.sweep_ray import _result_of  # noqa: E402
from tests.test_sweep import GRID, setup  # noqa: E402,F401  (the tiny ViT, its data and config)


def test_a_trial_ray_stopped_is_recorded_as_pruned_with_its_curve(tmp_path):
    pandas = pytest.importorskip("pandas")
    candidate = Candidate(index=1, values={"training.method": "dann"})
    history = pandas.DataFrame({"eval_target_snd": [0.4, 0.2], "step": [1, 2]})
    trial = SimpleNamespace(error=None, metrics={"eval_target_snd": 0.2, "step": 2}, metrics_dataframe=history)
    result = _result_of(candidate, tmp_path, trial, "eval_target_snd")
    assert result.status == "pruned" and result.intermediate == {"1": 0.4, "2": 0.2}
    assert "stopped by Ray Tune at step 2" in result.reason
    # recorded, so that a resumed sweep keeps it pruned rather than training it again
    assert CandidateResult.read(tmp_path / "candidates" / "c01" / CANDIDATE_RECORD).status == "pruned"
    # a trial that never reported and left no record failed
    lost = _result_of(Candidate(index=2, values={}), tmp_path, SimpleNamespace(error=None, metrics={}), "m")
    assert lost.status == "failed" and not (tmp_path / "candidates" / "c02" / CANDIDATE_RECORD).exists()


def test_the_schedulers_match_the_optuna_pruners():
    pytest.importorskip("ray.tune")
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    from hf_transfer.sweep_ray import ray_scheduler

    for pruner, kind in (("median", MedianStoppingRule), ("halving", ASHAScheduler), ("none", FIFOScheduler)):
        scheduler = ray_scheduler(pruner, n_startup_trials=2, max_steps=30)
        assert isinstance(scheduler, kind)
        # what Tuner does with TuneConfig(metric=..., mode=...): a scheduler with a metric of its own is refused
        assert scheduler.set_search_properties("eval_target_snd", "max"), pruner


@pytest.mark.slow
def test_the_ray_backend_trains_every_candidate_excludes_the_collapsed_and_picks(setup, tmp_path):  # noqa: F811
    ray = pytest.importorskip("ray")
    from hf_transfer.sweep import run_sweep

    root, config = setup
    out = tmp_path / "sweep"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2)
    try:
        result = run_sweep(config, GRID, output_dir=out, pruner="median", validator="entropy", backend="ray",
                           progress=None)
    finally:
        ray.shutdown()
    table = json.loads((out / "selection.json").read_text())
    rows = {row["name"]: row for row in table["candidates"]}
    assert len(rows) == 4 and all((out / "candidates" / n / CANDIDATE_RECORD).is_file() for n in rows)
    collapsed = sorted(n for n, r in rows.items() if r["status"] == "collapsed")
    assert collapsed == sorted(n for n, r in rows.items() if r["values"]["training.learning_rate"] == 0.0)
    finished = [n for n, r in rows.items() if r["status"] == "finished"]
    assert finished and result.chosen == min(finished, key=lambda n: rows[n]["scores"]["entropy"])
    assert (out / "chosen" / "adapter_model.safetensors").is_file()


def test_without_ray_or_with_bad_resources_the_sweep_says_what_to_do(setup, tmp_path, monkeypatch, capsys):  # noqa: F811
    from hf_transfer.cli import main
    from hf_transfer.sweep import SweepError, run_sweep

    root, config = setup
    grid = tmp_path / "grid.yaml"
    grid.write_text("training:\n  method: [source_only]\n")
    assert main(["sweep", str(config), "--grid", str(grid), "--backend", "ray", "--resources-per-candidate",
                 "[1]"]) == 2
    assert "--resources-per-candidate takes a JSON object" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SweepError, match=r'pip install "ray\[tune\]"'):
        run_sweep(config, GRID, output_dir=tmp_path / "out", backend="ray", progress=None)
    assert not (tmp_path / "out" / "candidates").exists()  # nothing trained
    with pytest.raises(ValueError, match="backend must be one of"):
        run_sweep(config, GRID, output_dir=tmp_path / "out", backend="dask", progress=None)
