"""Multi-source adaptation end to end: the ``sources:`` config, per-source evaluation, the card, the Hub double."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

try:
    from hub_fixtures import hub, hub_server, unique_repo  # noqa: F401
except ImportError:
    from tests.hub_fixtures import hub, hub_server, unique_repo  # noqa: F401

from hf_transfer.config import parse_train_arguments
from tests.conftest import tiny_vit_config

CLASSES = ["a", "b", "c"]


def _folder(root, shift, classes=CLASSES, n=3):
    rng = np.random.default_rng(shift + len(classes))
    for split in ("train", "test"):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, size=(16, 16, 3))
                pixels[:, :, label] += 150
                Image.fromarray(np.clip(pixels + shift, 0, 255).astype("uint8")).save(root / split / name / f"{i}.png")
    return str(root)


def _config(tmp_path, *, second_classes=CLASSES, **training):
    from transformers import ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config()).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "vit")
    config = {
        "model": {"model_name_or_path": str(tmp_path / "vit")},
        "sources": [
            {"dataset": _folder(tmp_path / "s1", 0), "eval_split": "test", "description": "plain squares"},
            {"dataset": _folder(tmp_path / "s2", 30, second_classes), "eval_split": "test",
             "description": "dimmed squares"},
        ],
        "target": {"dataset": _folder(tmp_path / "t", 70), "eval_split": "test", "description": "bright squares"},
        "training": {
            "output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 2, "lora_r": 4,
            "discriminator_hidden_size": 8, "report_to": "none", "save_strategy": "no", "disable_tqdm": True,
            "shift_report": "none", "validators": "none", "use_cpu": True, **training,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_sources_list_parses_into_one_arguments_object_per_source_and_overrides_reach_each(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"model_name_or_path": "m"},
        "sources": [{"dataset": "a", "description": "A"}, {"dataset": "b", "description": "B", "max_examples": 5}],
        "target": {"dataset": "t"}, "training": {"output_dir": str(tmp_path / "o"), "report_to": "none"},
    }))
    _, sources, *_ = parse_train_arguments(str(path), ["--source.split", "dev"])
    assert [(s.dataset, s.description, s.split, s.max_examples) for s in sources] == [
        ("a", "A", "dev", None), ("b", "B", "dev", 5)]
    bad = yaml.safe_load(path.read_text())
    bad["source"] = {"dataset": "x"}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="both 'source' and 'sources'"):
        parse_train_arguments(str(path), [])
    del bad["source"]
    bad["sources"][1].pop("description")
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"sources\[1\] .* has no description"):
        parse_train_arguments(str(path), [])
    bad["sources"][1] = {"dataset": "b", "description": "B", "nonsense": 1}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="Unknown field source.nonsense"):
        parse_train_arguments(str(path), [])


def test_a_class_missing_from_one_source_is_an_error_naming_that_source(tmp_path):
    from hf_transfer.pipeline import run_training

    args = parse_train_arguments(str(_config(tmp_path, second_classes=["a", "b"])), [])
    with pytest.raises(ValueError, match=r"sources\[1\] \(dimmed squares\) does not have the classes of sources\[0\]"):
        run_training(*args)


@pytest.fixture
def multi_source_run(tmp_path):
    from hf_transfer.pipeline import run_training

    args = parse_train_arguments(str(_config(tmp_path)), [])
    metrics = run_training(*args)
    return tmp_path, metrics


def test_training_on_two_sources_evaluates_each_and_the_card_lists_them(multi_source_run, hub):
    from hf_transfer.hub import download_adapted_model, push_base_model, push_to_hub
    from hf_transfer.modeling import DomainAdaptationModel

    tmp_path, metrics = multi_source_run
    for split in ("source", "source_1", "source_2", "target"):
        assert f"eval_{split}_accuracy" in metrics
    out = tmp_path / "out"
    info = json.loads((out / "domain_adaptation.json").read_text())
    assert info["discriminator"]["num_domains"] == 3  # 2 sources + the target
    assert [d["description"] for d in info["source_domains"]] == ["plain squares", "dimmed squares"]
    assert info["training"]["num_sources"] == 2
    card = (out / "README.md").read_text()
    assert "| **Source 1** (labelled) |" in card and "| plain squares |" in card and "| dimmed squares |" in card
    assert "Source 2 (dimmed squares) Accuracy (dann)" in card  # the per-source model-index entry
    assert "adapted from **2 source domains** to a" in card

    base_repo, repo = unique_repo("vit-base"), unique_repo("multi-source-dann")
    push_base_model(tmp_path / "vit", base_repo)
    push_to_hub(out, repo, base_model_repo_id=base_repo)
    pushed_card = hub.double.files(repo)["README.md"].decode()
    assert "**Source 2** (labelled)" in pushed_card and "| dimmed squares |" in pushed_card
    loaded = DomainAdaptationModel.from_pretrained(download_adapted_model(repo))
    assert loaded.domain_loss.discriminator.num_domains == 3
    local = DomainAdaptationModel.from_pretrained(out)
    pixels = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values=pixels).logits, local(pixel_values=pixels).logits, atol=1e-5)
    for name, value in local.domain_loss.discriminator.state_dict().items():
        assert torch.equal(loaded.domain_loss.discriminator.state_dict()[name], value)


def test_pooled_sources_train_one_binary_discriminator_and_still_report_each_source(tmp_path):
    from hf_transfer.pipeline import run_training

    metrics = run_training(*parse_train_arguments(str(_config(tmp_path, pool_sources=True)), []))
    info = json.loads((tmp_path / "out" / "domain_adaptation.json").read_text())
    assert "num_domains" not in info["discriminator"] and info["training"]["pooled_sources"] is True
    assert {"eval_source_1_accuracy", "eval_source_2_accuracy", "eval_target_accuracy"} <= set(metrics)


def test_the_trainer_refuses_a_discriminator_that_does_not_match_the_number_of_domains(tmp_path):
    from hf_transfer.data.pairing import MultiSource
    from hf_transfer.trainer import DomainAdaptationTrainer
    from tests.conftest import build_model, make_domain, train_args

    sources = MultiSource([make_domain(6, seed=1), make_domain(6, seed=2)])
    target = make_domain(6, shift=1.0, seed=3, labelled=False)
    with pytest.raises(ValueError, match=r"need a discriminator over 3 domains.*num_domains=3"):
        DomainAdaptationTrainer(model=build_model(), args=train_args(tmp_path), source_dataset=sources,
                                target_dataset=target)
    with pytest.raises(ValueError, match="tells 4 domains apart but the training data has 2"):
        DomainAdaptationTrainer(model=build_model(num_domains=4), args=train_args(tmp_path),
                                source_dataset=make_domain(6), target_dataset=target)
    with pytest.raises(ValueError, match="does not take several sources"):
        build_model(objective="cdan", num_domains=3)
    trainer = DomainAdaptationTrainer(model=build_model(num_domains=3), args=train_args(tmp_path, max_steps=2),
                                      source_dataset=sources, target_dataset=target)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "domain_accuracy" in h]
    assert len(logged) == 2  # 4 items × (2 sources + 1 target) = 12 rows, each domain 4
    assert all(h["domain_accuracy"] * 12 == pytest.approx(round(h["domain_accuracy"] * 12), abs=1e-4) for h in logged), logged
