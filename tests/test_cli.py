import json
import shutil

import pytest
import torch
import yaml

from hf_transfer.cli import build_parser, main, parse_train_arguments
from tests.conftest import _image_tree


def test_yaml_config_and_dotted_overrides_are_parsed_by_hfargumentparser(tiny_setup):
    _, path = tiny_setup
    model, source, target, training, _ = parse_train_arguments(
        str(path), ["--training.max_steps", "7", "--training.method=source_only", "--model.trust_remote_code", "false"]
    )
    assert training.max_steps == 7 and training.method == "source_only"
    assert model.trust_remote_code is False
    assert source.description == "plain squares"
    with pytest.raises(ValueError, match="--section.field"):
        parse_train_arguments(str(path), ["max_steps", "3"])
    with pytest.raises(ValueError, match="Unknown section"):
        parse_train_arguments(str(path), ["--optim.lr", "3"])


def test_train_then_evaluate_from_the_command_line(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--training.max_steps", "2"]) == 0
    out = tmp_path / "out"
    for name in ("adapter_model.safetensors", "domain_discriminator.safetensors", "preprocessor_config.json"):
        assert (out / name).exists(), name
    meta = json.loads((out / "domain_adaptation.json").read_text())
    assert meta["target_domain"]["description"] == "brighter squares"
    assert meta["target_domain"]["dataset"] is None  # local paths are not dataset ids
    capsys.readouterr()
    assert main(["evaluate", str(out), str(tmp_path / "target")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_examples"] == 12
    # the same number, computed independently: reload the adapter and classify the 12 target images
    from PIL import Image
    from transformers import ViTForImageClassification, ViTImageProcessor

    from hf_transfer.modeling import DomainAdaptationModel

    model = DomainAdaptationModel.from_pretrained(out, base_model=ViTForImageClassification.from_pretrained(tmp_path / "vit"))
    processor = ViTImageProcessor.from_pretrained(out)
    files = sorted((tmp_path / "target").glob("*/*.png"))
    pixels = processor([Image.open(f).convert("RGB") for f in files], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        predictions = model(pixel_values=pixels).logits.argmax(-1).tolist()
    truth = [model.config.label2id[f.parent.name] for f in files]
    assert result["accuracy"] == pytest.approx(sum(p == t for p, t in zip(predictions, truth)) / len(files))


def test_evaluate_applies_a_row_filter_like_the_domain_did(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--training.max_steps", "1"]) == 0
    capsys.readouterr()
    target = str(tmp_path / "target")
    assert main(["evaluate", str(tmp_path / "out"), target, "--filter-column", "label", "--filter-values", "b", "c"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 8  # 4 images per class, class a left out
    # The same without a filter: a folder that lacks one of the model's classes (ids beyond its own count).
    shutil.copytree(tmp_path / "target", tmp_path / "target_bc", ignore=shutil.ignore_patterns("a"))
    assert main(["evaluate", str(tmp_path / "out"), str(tmp_path / "target_bc")]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 8
    assert main(["evaluate", str(tmp_path / "out"), target, "--filter-column", "label", "--filter-values", "z"]) == 2
    assert "No row of" in capsys.readouterr().err
    # --label-names renames class ids 0..K-1 (here the folders a, b, c): names the model lacks are an error.
    assert main(["evaluate", str(tmp_path / "out"), target, "--label-names", "x", "y", "z"]) == 2
    assert "labels ['x', 'y', 'z'] the model does not know" in capsys.readouterr().err


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    assert main(["train", str(bad)]) == 2
    assert "Unknown config section" in capsys.readouterr().err


def test_help_lists_subcommands():
    help_text = build_parser().format_help()
    for command in ("train", "evaluate", "demo", "push"):
        assert command in help_text


def test_config_expands_environment_variables(tiny_setup, monkeypatch):
    from hf_transfer.cli import expand_env

    tmp_path, path = tiny_setup
    config = yaml.safe_load(path.read_text())
    config["source"]["dataset"] = "${HFT_TEST_DATA}/source"
    config["target"]["dataset"] = "${HFT_TEST_TARGET:-" + str(tmp_path / "target") + "}"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("HFT_TEST_DATA", str(tmp_path))
    monkeypatch.delenv("HFT_TEST_TARGET", raising=False)
    _, source, target, _, _ = parse_train_arguments(str(path), [])
    assert source.dataset == str(tmp_path / "source") and target.dataset == str(tmp_path / "target")
    monkeypatch.delenv("HFT_TEST_DATA")
    with pytest.raises(ValueError, match="HFT_TEST_DATA is not set"):
        parse_train_arguments(str(path), [])
    assert expand_env({"a": ["${HFT_NOPE:-x}", 3]}) == {"a": ["x", 3]}


def test_random_init_backbone_is_source_pretrained_then_adapted(tiny_setup):
    """pretraining.epochs > 0: full fine-tuning on the source, saved, then LoRA from that checkpoint."""
    from safetensors.torch import load_file

    tmp_path, path = tiny_setup
    vit = tmp_path / "vit"
    (vit / "model.safetensors").unlink()  # architecture only: config.json + preprocessor
    overrides = ["--model.random_init", "true", "--model.image_augmentation", "flip",
                 "--pretraining.epochs", "2", "--pretraining.batch_size", "4", "--pretraining.learning_rate", "0.01"]
    _, _, _, _, pretraining = parse_train_arguments(str(path), overrides)
    assert pretraining.epochs == 2 and pretraining.output_subdir == "source-pretrained"
    assert main(["train", str(path), *overrides]) == 0
    out = tmp_path / "out"
    pretrained = out / "source-pretrained"
    assert (pretrained / "model.safetensors").is_file() and (pretrained / "preprocessor_config.json").is_file()
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "./source-pretrained"  # inside output_dir, relative to it
    # the pretrained weights moved away from a fresh random init of the same config
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    fresh = ViTForImageClassification(ViTConfig.from_pretrained(vit)).state_dict()
    trained = load_file(str(pretrained / "model.safetensors"))
    key = "vit.embeddings.patch_embeddings.projection.weight"
    assert not torch.allclose(fresh[key], trained[key])


@pytest.mark.slow
def test_pretraining_stage_can_use_its_own_image_augmentation(tiny_setup, monkeypatch):
    """pretraining.image_augmentation replaces model.image_augmentation for the pretraining stage only."""
    import hf_transfer.pipeline as pipeline
    import hf_transfer.trainer as trainer_module

    tmp_path, path = tiny_setup
    seen = {}
    real_pretrain = pipeline._pretrain_backbone

    def spy_pretrain(backbone, ready, *args):
        seen["pretraining"] = _augmentation_kind(ready["source"])
        return real_pretrain(backbone, ready, *args)

    real_init = trainer_module.DomainAdaptationTrainer.__init__

    def spy_init(self, *args, **kwargs):
        seen["adaptation"] = _augmentation_kind(kwargs["source_dataset"])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_pretrain_backbone", spy_pretrain)
    monkeypatch.setattr(trainer_module.DomainAdaptationTrainer, "__init__", spy_init)
    common = ["--model.image_augmentation", "flip", "--pretraining.epochs", "1", "--pretraining.batch_size", "4"]
    assert main(["train", str(path), *common, "--pretraining.image_augmentation", "stain"]) == 0
    assert seen == {"pretraining": "stain", "adaptation": "flip"}
    # unset: the stage follows model.image_augmentation (a second run into the same output folder must say so)
    assert main(["train", str(path), *common, "--training.overwrite_output_dir", "true"]) == 0
    assert seen == {"pretraining": "flip", "adaptation": "flip"}
    with pytest.raises(ValueError, match="pretraining.image_augmentation must be one of"):
        parse_train_arguments(str(path), ["--pretraining.image_augmentation", "sepia"])


def _augmentation_kind(dataset) -> str | None:
    augment = dataset.format["format_kwargs"]["transform"].augment
    return None if augment is None else augment.kind


def test_random_init_without_weights_refuses_pickles_only_when_loading(tiny_setup):
    from hf_transfer.backbones import BackboneError, load_backbone

    tmp_path, _ = tiny_setup
    (tmp_path / "vit" / "model.safetensors").unlink()
    backbone = load_backbone(str(tmp_path / "vit"), label_names=["a", "b"], random_init=True)
    assert backbone.model.config.num_labels == 2
    with pytest.raises(BackboneError, match="has no safetensors weights; hf_transfer only loads safetensors"):
        load_backbone(str(tmp_path / "vit"), label_names=["a", "b"])


@pytest.mark.slow
def test_resuming_reuses_the_source_pretrained_backbone(tiny_setup):
    """A resumed run must adapt the same pretrained backbone, not pretrain a new one."""
    tmp_path, path = tiny_setup
    (tmp_path / "vit" / "model.safetensors").unlink()
    overrides = ["--model.random_init", "true", "--pretraining.epochs", "1", "--pretraining.batch_size", "4",
                 "--training.save_strategy", "steps", "--training.save_steps", "1", "--training.max_steps", "2"]
    assert main(["train", str(path), *overrides]) == 0
    weights = tmp_path / "out" / "source-pretrained" / "model.safetensors"
    before = (weights.stat().st_mtime_ns, weights.read_bytes())
    checkpoint = tmp_path / "out" / "checkpoint-1"
    assert checkpoint.is_dir()
    assert main(["train", str(path), *overrides, "--training.resume_from_checkpoint", str(checkpoint)]) == 0
    assert (weights.stat().st_mtime_ns, weights.read_bytes()) == before
    assert not list((tmp_path / "out" / "source-pretrained").glob(".tmp-save-*"))


def test_model_path_relative_to_the_config_file(tmp_path, monkeypatch):
    from hf_transfer.cli import load_config

    (tmp_path / "recipe" / "backbone").mkdir(parents=True)
    config = tmp_path / "recipe" / "local.yaml"
    config.write_text("model:\n  model_name_or_path: backbone\n")
    monkeypatch.chdir(tmp_path)  # "backbone" does not exist here, only next to the config
    assert load_config(config)["model"]["model_name_or_path"] == str((tmp_path / "recipe" / "backbone").resolve())
    config.write_text("model:\n  model_name_or_path: google/vit-base-patch16-224\n")
    assert load_config(config)["model"]["model_name_or_path"] == "google/vit-base-patch16-224"


def test_eval_splits_use_the_training_source_label_ids(tiny_setup, monkeypatch):
    """An eval split with an extra class (the oracle on Tecom) must not shift the other classes' ids."""
    import hf_transfer.trainer as trainer_module
    from hf_transfer.pipeline import run_training

    tmp_path, path = tiny_setup
    _image_tree(tmp_path / "split" / "train", ["b", "c"], 3, 0)
    _image_tree(tmp_path / "split" / "test", ["a", "b", "c"], 2, 0)  # "a" is unknown to the training source
    captured = {}
    original = trainer_module.DomainAdaptationTrainer.__init__

    def spy(self, *args, **kwargs):
        captured.update(kwargs["eval_datasets"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.DomainAdaptationTrainer, "__init__", spy)
    source = ["--source.dataset", str(tmp_path / "split"), "--source.split", "train", "--source.eval_split", "test"]
    target = ["--target.dataset", str(tmp_path / "split"), "--target.split", "train"]
    run_training(*parse_train_arguments(str(path), [*source, *target, "--model.allow_extra_target_labels", "true"]))
    # sorted folder names would give a=0, b=1, c=2; the model's ids are b=0, c=1 and "a" is unlabelled (-100)
    assert sorted(row["labels"] for row in captured["source"]) == [-100, -100, 0, 0, 1, 1]


def test_source_center_crop_is_recorded_and_evaluate_accepts_it(tiny_setup, capsys):
    tmp_path, path = tiny_setup
    assert main(["train", str(path), "--source.center_crop", "0.5"]) == 0
    meta = json.loads((tmp_path / "out" / "domain_adaptation.json").read_text())
    assert meta["source_domain"]["center_crop"] == 0.5 and "center_crop" not in meta["target_domain"]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "out"), str(tmp_path / "source"), "--center-crop", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 12
    assert main(["train", str(path), "--source.center_crop", "2"]) == 2
    assert "center_crop must be in (0, 1]" in capsys.readouterr().err


def test_train_with_cdan_saves_a_conditional_discriminator(tiny_setup):
    """`--training.method cdan` builds the conditioned discriminator, and evaluate reloads it."""
    tmp_path, path = tiny_setup
    overrides = ["--training.method", "cdan", "--training.cdan_entropy_conditioning", "false"]
    assert main(["train", str(path), *overrides]) == 0
    meta = json.loads((tmp_path / "out" / "domain_adaptation.json").read_text())
    assert meta["method"] == "cdan"
    assert meta["conditioning"]["map"] == "multilinear" and meta["conditioning"]["entropy_conditioning"] is False
    assert meta["discriminator"]["feature_dim"] == 32 * 3  # tiny ViT hidden size × 3 classes
    card = (tmp_path / "out" / "README.md").read_text()  # hf_transfer's card, not peft's generic one
    assert "CDAN" in card and "Conditioning:" in card and str(tmp_path) not in card
    assert main(["evaluate", str(tmp_path / "out"), str(tmp_path / "target")]) == 0
