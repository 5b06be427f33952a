"""After training: the A-distance before/after in the run info, PNG pictures linked from the card and pushed."""

from __future__ import annotations

import json
import re

import pytest
import yaml

try:
    from hub_fixtures import hub, hub_server, unique_repo  # noqa: F401
except ImportError:
    from tests.hub_fixtures import hub, hub_server, unique_repo  # noqa: F401

from hf_transfer.cli import main
from hf_transfer.diagnostics import report as report_module
from hf_transfer.diagnostics.report import shift_report
from hf_transfer.trainer import DomainAdaptationTrainer
from tests.conftest import build_model, make_domain, train_args
from tests.selection_data import domains_and_vit

PICTURES = {"embedding": "shift_embedding.png", "training_curves": "training_curves.png",
            "confusion_matrices": "confusion_matrices.png"}


def test_train_writes_pictures_linked_from_the_card_and_the_push_uploads_them(hub, tmp_path):
    pytest.importorskip("matplotlib")
    from hf_transfer.hub import push_base_model, push_to_hub

    domains_and_vit(tmp_path, train=6, test=3, target_shift=60)
    config = {
        "model": {"model_name_or_path": str(tmp_path / "vit")},
        "source": {"dataset": str(tmp_path / "source"), "eval_split": "test"},
        "target": {"dataset": str(tmp_path / "target"), "eval_split": "test"},
        "training": {"output_dir": str(tmp_path / "out"), "max_steps": 3, "per_device_train_batch_size": 6,
                     "learning_rate": 0.01, "lora_r": 4, "discriminator_hidden_size": 8, "report_to": "none",
                     "save_strategy": "no", "logging_steps": 1, "disable_tqdm": True},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    out = tmp_path / "out"
    info = json.loads((out / "domain_adaptation.json").read_text())
    assert info["pictures"] == PICTURES
    shift = info["shift"]
    assert shift["num_source"] == shift["num_target"] == 6
    assert shift["a_distance_before"] > 1.5  # the planted shift (+60 on every pixel) is plain to the probe
    for name in PICTURES.values():
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    card = (out / "README.md").read_text()
    assert f"**{shift['a_distance_before']:.3f} before adaptation, {shift['a_distance_after']:.3f} after**" in card
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)) == set(PICTURES.values())  # relative links

    base_repo, repo = unique_repo("tiny-vit-base"), unique_repo("tiny-vit-pictures")
    push_base_model(tmp_path / "vit", base_repo)
    push_to_hub(out, repo, base_model_repo_id=base_repo)
    files = hub.double.files(repo)
    pushed_card = files["README.md"].decode()
    for name in PICTURES.values():
        assert files[name] == (out / name).read_bytes()
        assert f"]({name})" in pushed_card  # the link resolves inside the repo
    assert json.loads(files["domain_adaptation.json"])["shift"] == shift


def test_without_matplotlib_a_one_line_notice_and_the_numbers_still(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report_module, "matplotlib_available", lambda: False)
    model = build_model()
    trainer = DomainAdaptationTrainer(
        model=model, args=train_args(tmp_path, max_steps=2), source_dataset=make_domain(12, seed=1),
        target_dataset=make_domain(12, shift=2.0, seed=2, labelled=False),
    )
    trainer.train()
    capsys.readouterr()
    report = shift_report(trainer)  # no eval splits: the training domains, the target without labels
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == [report_module.MATPLOTLIB_NOTICE]
    assert report.pictures == {} and report.notice == report_module.MATPLOTLIB_NOTICE
    assert model.run_info.pictures is None and model.run_info.shift["a_distance_before"] == report.a_distance_before
    assert report.num_source == report.num_target == 12
    assert not list((tmp_path / "out").glob("*.png"))
    assert "before adaptation" in report.format()
    assert shift_report(trainer, mode="none") is None
    # too few rows to measure anything: a warning, never a failed run
    assert shift_report(trainer, source=make_domain(1, seed=3), target=make_domain(1, seed=4)) is None
