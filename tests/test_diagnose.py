"""``hf-transfer diagnose`` before training: identical domains vs a planted shift, from the API and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from hf_transfer.cli import main
from hf_transfer.diagnostics import diagnose
from tests.conftest import tiny_vit_config
from tests.selection_data import image_tree


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    from transformers import ViTForImageClassification, ViTImageProcessor

    root = tmp_path_factory.mktemp("diagnose")
    image_tree(root / "source", 40, 0, seed=0)
    image_tree(root / "same", 40, 0, seed=1)  # the same distribution, other images
    image_tree(root / "shifted", 40, 120, seed=2)  # every pixel much brighter
    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config(num_labels=2)).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    return root


def test_identical_domains_read_close_and_a_planted_shift_far(domains):
    same = diagnose(domains / "vit", str(domains / "source"), str(domains / "same"), permutations=100)
    shifted = diagnose(domains / "vit", str(domains / "source"), str(domains / "shifted"), permutations=100)
    assert same.num_source == same.num_target == 80
    assert same.a_distance < 0.5 and same.mmd_p_value > 0.05 and same.level == "small"
    assert shifted.a_distance > 1.5 and shifted.mmd_p_value < 0.05 and shifted.level == "large"
    assert shifted.mmd > 10 * abs(same.mmd)
    assert same.source_label_mix == [0.5, 0.5]  # the source's labels; the target is read unlabelled
    assert len(shifted.target_predicted_mix) == 2  # the checkpoint's head knows the classes a, b


def test_the_cli_prints_the_verdict_and_writes_json(domains, tmp_path, capsys):
    report = tmp_path / "diagnosis.json"
    assert main(["diagnose", "--model", str(domains / "vit"), "--source", str(domains / "source"), "--target",
                 str(domains / "shifted"), "--max-examples", "30", "--permutations", "20", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Proxy A-distance" in out and "Adaptation is likely to matter" in out
    saved = json.loads(report.read_text())
    assert saved["num_source"] == 30 and saved["level"] == "large" and saved["likely_to_matter"] is True
    assert main(["diagnose", "--model", str(domains / "vit"), "--source", str(tmp_path / "missing"), "--target",
                 str(domains / "same")]) == 2
