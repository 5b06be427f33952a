"""A folder saved by ``hf-transfer train`` tells the truth and keeps the machine's paths to itself (issue 14):
no absolute path in any saved file, a local base recorded relative to the folder (and still found when the
folder is loaded on the same machine), and a model card that invents no base model, file or version and files
each metric under the domain and split it was measured on."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from hf_transfer.cli import main

try:
    from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
except ImportError:
    from tests.hub_fixtures import hub, hub_server  # noqa: F401


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``hf-transfer train`` from a local base, with evaluation splits and checkpoints (one run for the module)."""
    from tests.conftest import _image_tree, tiny_vit_config
    from transformers import ViTForImageClassification, ViTImageProcessor

    root = tmp_path_factory.mktemp("saved")
    for domain, shift in (("source", 0), ("target", 60)):
        _image_tree(root / domain / "train", ["a", "b", "c"], 3, shift)
        _image_tree(root / domain / "test", ["a", "b", "c"], 2, shift)
    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config()).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    config = {
        "model": {"model_name_or_path": str(root / "vit")},
        "source": {"dataset": str(root / "source"), "eval_split": "test", "description": "plain squares"},
        "target": {"dataset": str(root / "target"), "eval_split": "test", "description": "brighter squares"},
        "training": {"output_dir": str(root / "out"), "max_steps": 2, "per_device_train_batch_size": 4, "lora_r": 4,
                     "discriminator_hidden_size": 8, "report_to": "none", "save_strategy": "steps", "save_steps": 1,
                     "disable_tqdm": True, "dataloader_num_workers": 0},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(root / "config.yaml")]) == 0
    return root


def _saved_folders(root: Path) -> list[Path]:
    out = root / "out"
    return [out, *sorted(out.glob("checkpoint-*"))]


def test_no_saved_file_holds_an_absolute_path(trained):
    folders = _saved_folders(trained)
    assert len(folders) == 3  # the output folder and two checkpoints
    for folder in folders:
        for path in folder.iterdir():
            if path.suffix in (".json", ".md", ".txt"):
                assert str(trained) not in path.read_text(), f"{path.relative_to(trained)} holds a local path"
        args = torch.load(folder / "training_args.bin", weights_only=False)
        assert not os.path.isabs(args.output_dir), args.output_dir
        assert str(trained) not in repr(vars(args)), folder.name


def test_a_local_base_is_recorded_relative_to_the_folder_and_still_loads(trained):
    from hf_transfer.modeling import DomainAdaptationModel

    out = trained / "out"
    for folder, expected in ((out, "../vit"), (out / "checkpoint-1", "../../vit")):
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == expected
        assert json.loads((folder / "domain_adaptation.json").read_text())["base_model"] == expected
    pixels = torch.randn(2, 3, 16, 16)
    model = DomainAdaptationModel.from_pretrained(out)  # found without base_model=, from any working directory
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    # moved together with its base, the folder still loads; saved again, it records the new relative path
    moved = trained / "moved"
    shutil.copytree(out, moved / "run" / "out", ignore=shutil.ignore_patterns("checkpoint-*"))
    shutil.copytree(trained / "vit", moved / "run" / "vit")
    again = DomainAdaptationModel.from_pretrained(moved / "run" / "out")
    with torch.no_grad():
        assert torch.equal(again(pixel_values=pixels).logits, logits)
    again.save_pretrained(moved / "resaved")
    assert json.loads((moved / "resaved" / "adapter_config.json").read_text())["base_model_name_or_path"] == "../run/vit"
    # without its base next to it, loading says where it looked
    shutil.copytree(out, moved / "alone", ignore=shutil.ignore_patterns("checkpoint-*"))
    with pytest.raises(FileNotFoundError, match=r"recorded as '../vit'"):
        DomainAdaptationModel.from_pretrained(moved / "alone")


def _card(folder: Path):
    from huggingface_hub import ModelCard

    return ModelCard((folder / "README.md").read_text())


def _index(card) -> dict[tuple[str, str | None], dict[str, float]]:
    """model-index as {(dataset name, split): {metric name: value}}, read from the card's YAML."""
    found: dict[tuple[str, str | None], dict[str, float]] = {}
    for entry in card.data.to_dict()["model-index"][0]["results"]:
        key = (entry["dataset"]["name"], entry["dataset"].get("split"))
        found.setdefault(key, {}).update({m["name"]: m["value"] for m in entry["metrics"]})
    return found


def test_the_card_invents_no_base_model_file_or_version(trained):
    from hf_transfer import __version__
    from hf_transfer.artifacts import installed_versions
    from hf_transfer.cards import card_code_blocks

    for folder in _saved_folders(trained):
        card = _card(folder)
        text = card.text
        assert card.data.base_model is None
        assert "unknown base model" not in text and "huggingface.co/vit" not in text and "../vit" not in text
        assert "a base model that is not on the Hub" in text
        assert not any("from_pretrained(\"vit" in block or "load_adapted_model" in block for block in card_code_blocks(card.content))
        assert "DomainAdaptationModel.from_pretrained" in text and "--push-base-model" in text
        assert not (folder / "config.json").exists() and "`config.json`" not in text  # no claim of a file it lacks
        assert f"- hf_transfer: {__version__}\n" in text and "unknown" not in text.split("## Framework versions")[1]
        assert "Recorded when the model was trained" in text
        info = json.loads((folder / "domain_adaptation.json").read_text())
        assert info["hf_transfer_version"] == __version__ and info["framework_versions"] == installed_versions()


def test_model_index_files_each_metric_under_its_domain_and_evaluation_split(trained):
    info = json.loads((trained / "out" / "domain_adaptation.json").read_text())
    index = _index(_card(trained / "out"))
    assert set(index) == {("Source domain: local data", "test"), ("Target domain: local data", "test")}
    target = index[("Target domain: local data", "test")]
    assert target == {"Target Accuracy (dann)": info["metrics"]["eval_target_accuracy"],
                      "Target Macro-F1 (dann)": info["metrics"]["eval_target_f1"]}
    assert all(name.startswith("Source") for name in index[("Source domain: local data", "test")])
    assert "| **Target** (unlabelled during training) | — | — | train (evaluated on test) |" in _card(trained / "out").text


def test_a_pushed_card_names_the_base_and_holds_the_files_it_claims(trained, hub):
    from hf_transfer.cli import main as cli_main

    hub.double.publish("org/tiny-vit", {p.name: p.read_bytes() for p in (trained / "vit").iterdir()}, repo_type="model")
    assert cli_main(["push", str(trained / "out"), "user/squares-dann", "--base-model-repo-id", "org/tiny-vit"]) == 0
    files = hub.double.files("user/squares-dann")
    from huggingface_hub import ModelCard

    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == "org/tiny-vit" and "huggingface.co/org/tiny-vit" in card.text
    assert "config.json" in files and "the base model's `config.json`" in card.text
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "org/tiny-vit"
    assert ("Target domain: local data", "test") in _index(card)


def test_a_timm_adapter_trained_at_image_size_reloads_at_that_size(tmp_path):
    """timm keeps preprocessing in config.json, which an adapter folder lacked: a reload took the base's size."""
    from tests.conftest import _image_tree
    from tests.test_backbones import save_timm_resnet
    from transformers import AutoImageProcessor

    from hf_transfer.hub import load_adapted_model
    from hf_transfer.source_free import load_source_model

    for domain, shift in (("source", 0), ("target", 60)):
        _image_tree(tmp_path / domain / "train", ["a", "b", "c"], 2, shift)
    torch.manual_seed(0)
    save_timm_resnet(tmp_path / "timm")  # its own input size is 32
    config = {
        "model": {"model_name_or_path": str(tmp_path / "timm"), "image_size": 24},
        "source": {"dataset": str(tmp_path / "source")},
        "target": {"dataset": str(tmp_path / "target")},
        "training": {"output_dir": str(tmp_path / "out"), "max_steps": 1, "per_device_train_batch_size": 4,
                     "lora_r": 2, "discriminator_hidden_size": 8, "report_to": "none", "save_strategy": "no",
                     "disable_tqdm": True, "shift_report": "none"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    out = tmp_path / "out"
    saved = json.loads((out / "config.json").read_text())
    assert saved["pretrained_cfg"]["input_size"] == [3, 24, 24] and "_name_or_path" not in saved
    assert saved["label_names"] == ["a", "b", "c"]  # timm's own form of the label mapping
    _, processor = load_adapted_model(out)
    for reloaded in (processor, load_source_model(str(out)).processor, AutoImageProcessor.from_pretrained(out)):
        assert tuple(reloaded.data_config["input_size"]) == (3, 24, 24)
