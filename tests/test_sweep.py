"""``hf-transfer sweep``: a tiny grid, a planted collapsed candidate, the choice, bad input and resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

optuna = pytest.importorskip("optuna")

from hf_transfer.artifacts import RunInfo  # noqa: E402
from hf_transfer.cli import main  # noqa: E402
from hf_transfer.sweep import grid_candidates, load_grid, load_grids, run_sweep  # noqa: E402
from tests.conftest import tiny_vit_config  # noqa: E402
from tests.selection_data import image_tree  # noqa: E402

# learning_rate 0 leaves the planted head as it is: it predicts class "a" for everything, confidently — the lowest
# entropy and the highest SND of the grid, so it would win on those validators if it were not excluded.
GRID = {"training": {"learning_rate": [0.0, 0.05], "method": ["source_only", "dann"]}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import ViTForImageClassification, ViTImageProcessor

    root = tmp_path_factory.mktemp("sweep")
    for seed, (domain, shift) in enumerate((("source", 0), ("target", 40))):
        image_tree(root / domain / "train", 8, shift, seed)
        image_tree(root / domain / "test", 4, shift, seed + 10)
    torch.manual_seed(0)
    vit = ViTForImageClassification(tiny_vit_config(num_labels=2))
    with torch.no_grad():  # a head that says "a" whatever it sees, until training moves it
        vit.classifier.weight.zero_()
        vit.classifier.bias.copy_(torch.tensor([4.0, 0.0]))
    vit.save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    config = {
        "model": {"model_name_or_path": str(root / "vit")},
        "source": {"dataset": str(root / "source"), "eval_split": "test"},
        "target": {"dataset": str(root / "target"), "eval_split": "test"},
        "training": {
            "output_dir": str(root / "sweep"), "max_steps": 3, "per_device_train_batch_size": 8, "lora_r": 4,
            "discriminator_hidden_size": 8, "domain_loss_weight": 0.1, "report_to": "none", "save_strategy": "no",
            "logging_steps": 1, "disable_tqdm": True, "shift_report": "metrics",
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return root, path


def test_bad_grids_and_validators_fail_before_any_run(setup, tmp_path):
    root, config = setup
    out = tmp_path / "never"
    cases = [
        ({"training": {"domain_los_weight": [0.1]}},
         r"unknown field 'training.domain_los_weight'.*did you mean 'training.domain_loss_weight'"),
        ({"trainig": {"method": ["dann"]}}, r"unknown section 'trainig' \(did you mean 'training'\?\)"),
        ({}, "The grid is empty"),
        ({"training": {"method": []}}, "'training.method' lists no values"),
        ({"training": {"output_dir": ["x"]}}, "cannot set 'training.output_dir'"),
        ({"training": {"method": [["dann"]]}}, "each value must be one number, string or boolean"),
        ({"training": {"method": ["dann", "dnn"]}}, r"Candidate c01 \(method=dnn\).*dnn"),
    ]
    for grid, message in cases:
        with pytest.raises(ValueError, match=message):
            run_sweep(config, grid, output_dir=out, progress=None)
    with pytest.raises(ValueError, match=r"Unknown validator 'sdn'; the known validators are \[.*'snd'"):
        run_sweep(config, GRID, output_dir=out, validator="sdn", progress=None)
    with pytest.raises(ValueError, match="Unknown validator 'entrpy'"):
        run_sweep(config, GRID, output_dir=out, validators=["entrpy", "snd"], progress=None)
    without_target_eval = yaml.safe_load(config.read_text())
    del without_target_eval["target"]["eval_split"]
    with pytest.raises(ValueError, match="set target.eval_split"):
        run_sweep(without_target_eval, GRID, output_dir=out, progress=None)
    assert not (out / "candidates").exists()  # nothing was trained
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("training:\n  methd: [dann]\n")
    assert main(["sweep", str(config), "--grid", str(grid_file), "--output-dir", str(out)]) == 2
    assert load_grid({"model": {"image_augmentation": "flip"}}) == {"model.image_augmentation": ["flip"]}


def test_a_list_of_grids_is_their_union_without_repeats(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(
        "- training: {method: [source_only, mcc]}\n"
        "- training: {method: [dann, cdan], domain_loss_weight: [0.1, 1.0]}\n"
        "- training: {method: [mcc]}\n"  # already in the first grid: not trained twice
    )
    candidates = grid_candidates(load_grids(grid_file))
    assert [c.label() for c in candidates] == [
        "method=source_only", "method=mcc",
        "method=dann, domain_loss_weight=0.1", "method=dann, domain_loss_weight=1.0",
        "method=cdan, domain_loss_weight=0.1", "method=cdan, domain_loss_weight=1.0",
    ]
    assert [c.name for c in candidates] == [f"c{i:02d}" for i in range(6)]
    assert load_grids({"training": {"method": "dann"}}) == [{"training.method": ["dann"]}]
    with pytest.raises(ValueError, match="The grid list is empty"):
        load_grids([])
    with pytest.raises(ValueError, match=r"Grid 1 of the list: .*unknown field 'training.methd'"):
        load_grids([{"training": {"method": ["dann"]}}, {"training": {"methd": ["mcc"]}}])
    with pytest.raises(ValueError, match="Grid 0 of the list must map sections to fields"):
        load_grids(["dann"])


def test_sweep_excludes_the_collapsed_candidate_picks_by_the_validator_and_resumes(setup, tmp_path, capsys):
    root, config = setup
    out = tmp_path / "sweep"
    lines: list[str] = []

    def interrupt_at_the_third(line: str) -> None:
        lines.append(line)
        if line.startswith("[sweep 3/4]") and line.endswith("training..."):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, GRID, output_dir=out, pruner="none", progress=interrupt_at_the_third)
    finished = sorted(p.parent.name for p in out.glob("candidates/*/candidate.json"))
    assert len(finished) == 2
    stamps = {name: (out / "candidates" / name / "domain_adaptation.json").stat().st_mtime_ns for name in finished}

    # Resume from the command line, choosing by entropy: the two finished candidates are skipped, not retrained.
    capsys.readouterr()
    assert main(["sweep", str(config), "--grid", _grid_file(tmp_path), "--output-dir", str(out), "--pruner", "none",
                 "--validator", "entropy"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already finished, skipped") + printed.count("already collapsed, skipped") == 2
    for name, stamp in stamps.items():
        assert (out / "candidates" / name / "domain_adaptation.json").stat().st_mtime_ns == stamp

    table = json.loads((out / "selection.json").read_text())
    rows = {row["name"]: row for row in table["candidates"]}
    assert len(rows) == 4
    collapsed = [name for name, row in rows.items() if row["status"] == "collapsed"]
    finished = [name for name, row in rows.items() if row["status"] == "finished"]
    # the planted candidates (learning_rate 0) are the collapsed ones, with the reason
    assert sorted(collapsed) == sorted(n for n, r in rows.items() if r["values"]["training.learning_rate"] == 0.0)
    assert all("predicts one class for 100% of the target" in rows[n]["reason"] for n in collapsed)
    assert finished, "no candidate learned the task in 3 steps"
    # ... and they would have won on entropy: excluding them is what keeps the choice honest
    assert min(rows, key=lambda n: rows[n]["scores"]["entropy"]) in collapsed
    pick = min(finished, key=lambda n: rows[n]["scores"]["entropy"])
    assert table["chosen"] == pick and table["validator"] == "entropy"

    markdown = (out / "selection.md").read_text()
    assert "target accuracy (oracle, not used for the choice)" in markdown
    assert f"| {pick} **← chosen** |" in markdown and markdown.count("| collapsed |") == len(collapsed)
    chosen = out / "chosen"
    info = RunInfo.read(chosen)
    assert info.selection["candidate"] == pick and info.selection["validator"] == "entropy"
    assert set(info.selection["excluded"]) == set(collapsed)
    assert (chosen / "adapter_model.safetensors").read_bytes() == (
        out / "candidates" / pick / "adapter_model.safetensors").read_bytes()
    card = (chosen / "README.md").read_text()
    assert f"candidate `{pick}`" in card and "chosen by **entropy**" in card and "without reading any target label" in card
    assert "Its settings: `training.learning_rate=0.05`" in card

    # The Python API on the finished folder trains nothing and, by the ensemble, picks an eligible candidate.
    result = run_sweep(config, GRID, output_dir=out, pruner="none", progress=None)
    assert result.chosen in finished and result.validator == "ensemble"
    assert all(c.status in ("finished", "collapsed") for c in result.candidates)

    # EnsV: every candidate kept its target probabilities; the eligible ones are compared, the collapsed left out.
    from safetensors.numpy import load_file

    probabilities = {n: load_file(out / "candidates" / n / "target_predictions.safetensors")["probabilities"]
                     for n in finished}
    assert all(p.shape == (8, 2) and np.allclose(p.sum(1), 1.0) for p in probabilities.values())
    pseudo = np.mean(list(probabilities.values()), axis=0).argmax(1)
    agreement = {n: float(np.mean(p.argmax(1) == pseudo)) for n, p in probabilities.items()}
    rows = {row["name"]: row for row in json.loads((out / "selection.json").read_text())["candidates"]}
    assert {n: rows[n]["ensv"] for n in finished} == pytest.approx(agreement)
    assert all(rows[n]["ensv"] is None for n in collapsed)
    assert "| ensv |" in (out / "selection.md").read_text()
    assert not (out / "chosen" / "target_predictions.safetensors").exists()  # not part of the shared adapter
    by_ensv = run_sweep(config, GRID, output_dir=out, pruner="none", progress=None, validator="ensv")
    assert by_ensv.chosen == max(finished, key=lambda n: agreement[n])
    assert "EnsV" in RunInfo.read(out / "chosen").selection["validator_description"]


def _grid_file(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(GRID))
    return str(path)


def test_a_pruned_sweep_computes_only_the_watched_validator_during_training_and_records_the_cost(setup, tmp_path):
    from hf_transfer.sweep import _saved_training_args

    root, config = setup
    out = tmp_path / "pruned"
    sections = yaml.safe_load(config.read_text())
    del sections["training"]["shift_report"]  # left at its default: the candidates skip the shift report
    result = run_sweep(sections, {"training": {"method": ["dann"], "learning_rate": [0.05]}}, output_dir=out, pruner="median",
                       progress=None,
                       validators=["entropy", "snd", "dev"],
                       overrides=["--training.eval_strategy", "steps", "--training.eval_steps", "1"])
    candidate = out / "candidates" / "c00"
    args = _saved_training_args(candidate)
    assert args.validators == ["entropy", "snd", "dev"] and args.validators_during_training == ["snd"]
    assert args.shift_report == "none" and not list(candidate.glob("*.png"))
    record = json.loads((candidate / "candidate.json").read_text())
    assert set(record["intermediate"]) == {"1", "2", "3"}  # the pruner's validator at every evaluation step
    assert set(record["scores"]) == {"entropy", "snd", "dev"}  # the evaluation after training computes them all
    assert record["seconds"] > 0 and record["cpu_seconds"] > 0
    assert result.candidates[0].cpu_seconds == record["cpu_seconds"]


def test_the_candidates_keep_the_shift_report_the_user_chose(setup):
    from hf_transfer.sweep import _sets_shift_report

    _, config = setup  # its training section sets shift_report: metrics
    assert _sets_shift_report(str(config), [])
    plain = config.parent / "plain.yaml"
    sections = yaml.safe_load(config.read_text())
    del sections["training"]["shift_report"]
    plain.write_text(yaml.safe_dump(sections))
    assert not _sets_shift_report(str(plain), ["--training.max_steps", "2"])
    assert _sets_shift_report(str(plain), ["--training.shift_report", "pictures"])
    assert _sets_shift_report(str(plain), ["--training.shift_report=metrics"])
