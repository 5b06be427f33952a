"""Source-free adaptation (hf_transfer.source_free): the three kinds of starting model, what each method may change,
bad input, and a run from the Hub double with no source data anywhere, reloaded by plain transformers + peft."""

from __future__ import annotations

import json
import logging

import pytest
import torch

try:
    from conftest import make_domain, tiny_vit_config
    from hub_fixtures import file_hashes, hub, hub_server, make_adapted_dir, run_fresh_python, unique_repo  # noqa: F401
except ImportError:
    from tests.conftest import make_domain, tiny_vit_config
    from tests.hub_fixtures import (  # noqa: F401  (fixtures)
        file_hashes, hub, hub_server, make_adapted_dir, run_fresh_python, unique_repo,
    )

from hf_transfer.modeling import MissingClassifierError
from hf_transfer.source_free import (
    SourceFreeTrainer,
    TestTimeAdapter,
    adapt,
    load_source_model,
    load_target_splits,
    normalisation_modules,
    wrap_for_method,
)
from hf_transfer.training_args import DomainAdaptationArguments


@pytest.fixture
def checkpoint(tmp_path):
    """A fine-tuned ViT classifier saved as a plain transformers checkpoint, with its processor."""
    from transformers import ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    folder = tmp_path / "vit-classifier"
    ViTForImageClassification(tiny_vit_config()).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


def _args(tmp_path, method, **kwargs):
    defaults = dict(output_dir=str(tmp_path / f"out-{method}"), method=method, max_steps=3, per_device_train_batch_size=4,
                    learning_rate=0.05, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                    use_cpu=True, seed=0)
    defaults.update(kwargs)
    return DomainAdaptationArguments(**defaults)


def _state(model):
    """A CPU copy of the weights (a pipeline moves the model to the GPU where there is one)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _train(tmp_path, source, method, n=12, **kwargs):
    model = wrap_for_method(source, method, seed=0)
    before = _state(model)
    trainer = SourceFreeTrainer(model, _args(tmp_path, method, **kwargs), make_domain(n, shift=1.0, labelled=False),
                                processing_class=source.processor)
    trainer.train()
    return model, trainer, before, _state(model)


def _changed(before, after):
    return sorted(k for k in before if not torch.equal(before[k], after[k]))


# ----------------------------------------------------------------------------- loading
def test_loads_a_checkpoint_and_refuses_a_bare_backbone_or_another_modality(checkpoint, tmp_path):
    from transformers import ViTImageProcessor, ViTModel

    from hf_transfer.modalities import ModalityMismatchError

    source = load_source_model(checkpoint)
    assert source.kind == "transformers" and source.modality == "image" and source.label_names == ["a", "b", "c"]
    bare = tmp_path / "bare"
    ViTModel(tiny_vit_config()).save_pretrained(bare)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(bare)
    with pytest.raises(MissingClassifierError, match=r"no trained classification head: classifier\.bias, classifier\.weight"):
        load_source_model(bare)
    with pytest.raises(ModalityMismatchError, match="the data is text"):
        load_source_model(checkpoint, modality="text")


@pytest.mark.parametrize("kind", ["peft", "hf_transfer"])
def test_an_adapter_is_the_starting_point_of_the_new_one(tmp_path, kind):
    adapted = make_adapted_dir("image", tmp_path)
    if kind == "peft":  # a plain peft repo: no hf_transfer file
        (adapted.output_dir / "domain_adaptation.json").unlink()
        (adapted.output_dir / "domain_discriminator.safetensors").unlink()
    source = load_source_model(adapted.output_dir)
    assert source.kind == kind and source.label_names == ["negative", "neutral", "positive"]
    from hub_fixtures import example_inputs

    model = wrap_for_method(source, "shot").eval()
    with torch.no_grad():
        logits = model(**example_inputs("image", adapted.example_path, source.processor)).logits[0]
    assert torch.allclose(logits, torch.tensor(adapted.local_logits), atol=1e-5)  # the given adapter, unchanged
    assert not torch.allclose(logits, torch.tensor(adapted.base_logits), atol=1e-3)


# ----------------------------------------------------------------------------- what each method changes
@pytest.mark.parametrize("kind", ["checkpoint", "hf_transfer"])
def test_tent_changes_only_the_normalisation_layers(checkpoint, tmp_path, kind):
    folder = checkpoint if kind == "checkpoint" else make_adapted_dir("image", tmp_path).output_dir
    source = load_source_model(folder)
    norms = normalisation_modules(source.model)
    model, _, before, after = _train(tmp_path, source, "tent")
    changed = _changed(before, after)
    assert changed  # it did adapt
    for key in changed:  # and only the adapter's copies of the norm layers' γ, β
        assert ".modules_to_save.default." in key and any(f".{n}.modules_to_save" in key for n in norms), key
        assert key.endswith((".weight", ".bias"))


@pytest.mark.parametrize("kind", ["checkpoint", "hf_transfer"])
def test_shot_never_changes_the_head(checkpoint, tmp_path, kind):
    folder = checkpoint if kind == "checkpoint" else make_adapted_dir("image", tmp_path).output_dir
    model, trainer, before, after = _train(tmp_path, load_source_model(folder), "shot")
    changed = _changed(before, after)
    assert changed and all("lora_" in key for key in changed)
    head = [k for k in before if ".classifier." in k]
    assert head and all(torch.equal(before[k], after[k]) for k in head)
    logged = [entry for entry in trainer.state.log_history if "shot_loss" in entry]
    assert len(logged) == 3


def test_shot_refreshes_pseudo_labels_every_epoch(checkpoint, tmp_path, monkeypatch):
    calls = []
    original = SourceFreeTrainer.refresh_pseudo_labels

    def counted(self):
        calls.append(self.state.global_step)
        return original(self)

    monkeypatch.setattr(SourceFreeTrainer, "refresh_pseudo_labels", counted)
    _train(tmp_path, load_source_model(checkpoint), "shot", n=8, max_steps=5)  # 2 steps per epoch: epochs 0, 1, 2
    assert calls == [0, 2, 4]


def test_sar_recovers_the_initial_parameters_when_its_loss_collapses(checkpoint, tmp_path):
    settings = {"margin": 10.0, "reset_constant": 100.0}  # every row reliable; every average "collapsed"
    model, trainer, before, after = _train(tmp_path, load_source_model(checkpoint), "sar", method_settings=settings)
    assert trainer.resets == 3 and _changed(before, after) == []
    source = load_source_model(checkpoint)
    model, trainer, before, after = _train(tmp_path, source, "sar", method_settings={"margin": 10.0})
    changed = _changed(before, after)
    assert trainer.resets == 0 and changed and all(".modules_to_save.default." in k for k in changed)
    with pytest.raises(ValueError, match="was wrapped for adaptation already"):
        wrap_for_method(source, "sar")
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        SourceFreeTrainer(model, _args(tmp_path, "sar", gradient_accumulation_steps=2), make_domain(4))


# ----------------------------------------------------------------------------- bad input and safety
def test_target_labels_are_dropped_with_a_warning(checkpoint, tmp_path, caplog):
    source = load_source_model(checkpoint)
    with caplog.at_level(logging.WARNING, logger="hf_transfer"):
        trainer = SourceFreeTrainer(wrap_for_method(source, "tent"), _args(tmp_path, "tent"), make_domain(4))
    assert "has labels but method=tent is unsupervised: they are dropped" in caplog.text
    assert all("labels" not in trainer.train_dataset[i] for i in range(4))


def test_source_methods_and_unsafe_output_folders_are_refused(checkpoint, tmp_path):
    from hf_transfer.trainer import DomainAdaptationTrainer

    with pytest.raises(ValueError, match="method 'dann' trains on labelled source data"):
        adapt(checkpoint, make_domain(4), method="dann", output_dir=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="source-free: it adapts a trained model with target data only"):
        DomainAdaptationTrainer(model=_dummy(checkpoint), args=_args(tmp_path, "shot"))
    before = file_hashes(checkpoint)
    with pytest.raises(ValueError, match="adapting never writes there"):
        adapt(checkpoint, make_domain(4), method="tent", output_dir=str(checkpoint / "adapted"))
    assert file_hashes(checkpoint) == before


def test_a_target_of_another_modality_is_refused_before_training(checkpoint, tmp_path):
    from hf_transfer.modalities import ModalityMismatchError
    from hf_transfer.pipeline import ModelArguments, TargetDataArguments

    (tmp_path / "notes.csv").write_text("text,label\nthe quarter went well,a\nlosses widened,b\n")
    with pytest.raises(ModalityMismatchError, match="is a model for image but the target data is text"):
        load_target_splits(ModelArguments(model_name_or_path=str(checkpoint)),
                           TargetDataArguments(dataset=str(tmp_path / "notes.csv"), eval_split=None),
                           load_source_model(checkpoint))


def _dummy(checkpoint):
    return wrap_for_method(load_source_model(checkpoint), "shot")


# ----------------------------------------------------------------------------- saving, reloading, prediction time
def test_saved_adapter_reloads_in_plain_peft_with_the_same_logits(checkpoint, tmp_path):
    from peft import PeftModel
    from transformers import ViTForImageClassification

    result = adapt(checkpoint, make_domain(8, shift=1.0, labelled=False), method="tent",
                   output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, learning_rate=0.1,
                   use_cpu=True, disable_tqdm=True, target_description={"description": "brighter squares"})
    info = json.loads((tmp_path / "out" / "domain_adaptation.json").read_text())
    assert info["method"] == "tent" and info["source_free"]["kind"] == "transformers"
    assert info["source_free"]["adapted_from"] is None and info["base_model"].startswith("../")  # no absolute path
    card = (tmp_path / "out" / "README.md").read_text()
    assert "source-free adaptation of a model from a local folder to brighter squares" in card
    assert "TENT" in card and "Starting model" in card
    pixels = torch.stack([e["pixel_values"] for e in make_domain(3, shift=1.0)])
    result.model.eval()
    with torch.no_grad():
        expected = result.model(pixel_values=pixels).logits
        plain = PeftModel.from_pretrained(ViTForImageClassification.from_pretrained(checkpoint), tmp_path / "out").eval()
        assert torch.allclose(plain(pixel_values=pixels).logits, expected, atol=1e-5)
        untouched = ViTForImageClassification.from_pretrained(checkpoint).eval()(pixel_values=pixels).logits
    assert not torch.allclose(untouched, expected, atol=1e-4)


@pytest.mark.parametrize("episodic", [True, False])
def test_test_time_tent_is_episodic_or_continual(checkpoint, episodic):
    from transformers import ViTForImageClassification

    model = ViTForImageClassification.from_pretrained(checkpoint)
    before = _state(model)
    adapter = TestTimeAdapter(model, method="tent", learning_rate=0.5, episodic=episodic)
    pixels = torch.stack([e["pixel_values"] for e in make_domain(4, shift=1.0)])
    with torch.inference_mode():  # as a pipeline calls it
        out = adapter(pixel_values=pixels)
    changed = _changed(before, _state(model))
    if episodic:
        assert changed == []
    else:
        assert changed and all("layernorm" in key for key in changed)
        with torch.no_grad():
            assert torch.allclose(model.eval()(pixel_values=pixels).logits, out.logits, atol=1e-6)
    with pytest.raises(ValueError, match="not a prediction-time method"):
        TestTimeAdapter(model, method="shot")


def test_test_time_pipeline_adapts_on_every_call(checkpoint):
    import numpy as np
    from PIL import Image
    from transformers import ViTForImageClassification, ViTImageProcessor

    model = ViTForImageClassification.from_pretrained(checkpoint)
    before = _state(model)
    adapter = TestTimeAdapter(model, method="tent", learning_rate=0.5)
    pipe = adapter.pipeline("image-classification", image_processor=ViTImageProcessor.from_pretrained(checkpoint))
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((16, 16, 3)) * 255).astype("uint8")) for _ in range(4)]
    first = pipe(images, batch_size=4)
    after_one = _state(model)
    changed = _changed(before, after_one)
    assert changed and all("layernorm" in key for key in changed)
    assert len(first) == 4 and {p["label"] for p in first[0]} == {"a", "b", "c"}
    pipe(images, batch_size=4)
    assert _changed(after_one, _state(model))  # continual: the next call adapts further


def test_pickled_weights_are_never_loaded(tmp_path):
    from transformers import ViTForImageClassification, ViTImageProcessor

    from hf_transfer.backbones import BackboneError

    folder = tmp_path / "pickled"
    model = ViTForImageClassification(tiny_vit_config())
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    with pytest.raises(BackboneError, match="has no safetensors weights .found pytorch_model.bin.; hf_transfer only loads"):
        load_source_model(folder)


# ----------------------------------------------------------------------------- from the Hub, no source data
@pytest.mark.slow
def test_adapts_a_hub_model_with_no_source_data_pushes_and_reloads_in_a_fresh_process(hub, checkpoint, tmp_path):
    from huggingface_hub import HfApi, ModelCard
    from safetensors.torch import save_file

    base_repo, out_repo = unique_repo("tiny-vit-classifier"), unique_repo("tiny-vit-shot")
    api = HfApi()
    api.create_repo(base_repo)
    api.upload_folder(folder_path=str(checkpoint), repo_id=base_repo)
    api.upload_file(path_or_fileobj=b"not a pickle to load", path_in_repo="pytorch_model.bin", repo_id=base_repo)
    result = adapt(base_repo, make_domain(12, shift=1.0, labelled=False), method="shot",
                   output_dir=str(tmp_path / "adapted"), max_steps=4, per_device_train_batch_size=4, learning_rate=0.05,
                   use_cpu=True, disable_tqdm=True, push_to_hub=out_repo,
                   target_description={"description": "brighter squares"})
    cache = next((hub.home / "hub").glob("models--user--tiny-vit-classifier-*/snapshots/*"))
    cached = file_hashes(cache)
    assert "model.safetensors" in cached and "pytorch_model.bin" not in cached  # never downloaded
    assert result.commit_url and "domain_discriminator.safetensors" not in {
        f.rfilename for f in api.model_info(out_repo).siblings}
    card = ModelCard.load(out_repo)
    assert card.data.base_model == base_repo
    assert f"source-free adaptation of [{base_repo}](https://huggingface.co/{base_repo}) to brighter squares" in card.text
    pixels = torch.stack([e["pixel_values"] for e in make_domain(3, shift=1.0)])
    save_file({"pixel_values": pixels.contiguous()}, str(tmp_path / "inputs.safetensors"))
    result.model.eval()
    with torch.no_grad():
        expected = result.model(pixel_values=pixels).logits.tolist()
    code = f"""
        import json, torch
        from safetensors.torch import load_file
        from peft import PeftModel
        from transformers import AutoModelForImageClassification
        base = AutoModelForImageClassification.from_pretrained("{base_repo}")
        model = PeftModel.from_pretrained(base, "{out_repo}").eval()
        with torch.no_grad():
            logits = model(**load_file("inputs.safetensors")).logits
        print("RESULT:" + json.dumps(logits.tolist()))
    """
    got = run_fresh_python(code, hub.subprocess_env(home=tmp_path / "fresh-home"), cwd=tmp_path)
    assert torch.allclose(torch.tensor(got), torch.tensor(expected), atol=1e-5)
    assert file_hashes(cache) == cached  # nothing was written into the downloaded model's folder
    pushed = json.loads(open(api.hf_hub_download(out_repo, "domain_adaptation.json")).read())
    assert pushed["source_free"]["adapted_from"] == base_repo and pushed["source_domain"] == {}


# ----------------------------------------------------------------------------- the command and the config form
def test_adapt_command_and_a_config_without_source_section(tiny_setup, capsys):
    import yaml

    from hf_transfer.cli import main

    root, _ = tiny_setup
    fast = ["--training.max_steps", "2", "--training.per_device_train_batch_size", "4", "--training.report_to", "none",
            "--training.use_cpu", "true", "--training.disable_tqdm", "true", "--training.save_strategy", "no"]
    code = main(["adapt", str(root / "vit"), "--target", str(root / "target"), "--method", "tent",
                 "--output-dir", str(root / "adapted"), "--target.eval_split", "train", *fast])
    assert code == 0
    out = capsys.readouterr().out  # the Trainer's log lines, then the metrics as indented JSON
    metrics = json.loads(out[out.rindex('{\n  "'):out.index("Adapted model saved")])
    assert set(metrics) >= {"eval_target_accuracy", "eval_target_balanced_accuracy"}
    info = json.loads((root / "adapted" / "domain_adaptation.json").read_text())
    assert info["method"] == "tent" and info["target_domain"]["description"] is None
    config = {"model": {"model_name_or_path": str(root / "vit")},
              "target": {"dataset": str(root / "target"), "eval_split": None, "description": "brighter squares"},
              "training": {"output_dir": str(root / "from-config"), "method": "shot"}}
    (root / "sf.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(root / "sf.yaml"), *fast]) == 0
    info = json.loads((root / "from-config" / "domain_adaptation.json").read_text())
    assert info["method"] == "shot" and info["target_domain"]["description"] == "brighter squares"
    config["training"] = {"output_dir": str(root / "dann"), "method": "dann"}
    (root / "dann.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(root / "dann.yaml"), *fast]) == 2
    assert "method 'dann' trains on labelled source data" in capsys.readouterr().err


# ----------------------------------------------------------------------------- does it adapt
def _contrast_domain(n: int, seed: int, *, target: bool) -> list[dict]:
    """Class ``y`` brightens channel ``y``; the target changes each channel's contrast and offset."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(n):
        label = i % 3
        pixels = torch.randn(3, 16, 16, generator=generator) * 0.5
        pixels[label] += 0.35 + 0.3 * torch.rand(1, generator=generator).item()
        if target:
            pixels = pixels * torch.tensor([1.3, 0.8, 1.0]).view(3, 1, 1) + torch.tensor([0.3, -0.15, 0.0]).view(3, 1, 1)
        examples.append({"pixel_values": pixels, "labels": label})
    return examples


@pytest.mark.slow
def test_shot_recovers_the_class_a_shift_hid_without_source_data(tmp_path):
    from transformers import Trainer, TrainingArguments, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    model = ViTForImageClassification(tiny_vit_config())
    Trainer(model=model, train_dataset=_contrast_domain(600, 1, target=False), args=TrainingArguments(
        output_dir=str(tmp_path / "source"), max_steps=40, per_device_train_batch_size=32, learning_rate=3e-3,
        report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True)).train()
    model.save_pretrained(tmp_path / "shared")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "shared")
    test = _contrast_domain(300, 4, target=True)
    unlabelled = [{"pixel_values": e["pixel_values"]} for e in _contrast_domain(600, 3, target=True)]
    result = adapt(tmp_path / "shared", unlabelled, method="shot", output_dir=str(tmp_path / "shot"), max_steps=100,
                   per_device_train_batch_size=32, learning_rate=3e-3, use_cpu=True, disable_tqdm=True,
                   eval_datasets={"target": test})
    pixels, labels = torch.stack([e["pixel_values"] for e in test]), torch.tensor([e["labels"] for e in test])
    with torch.no_grad():
        before = (ViTForImageClassification.from_pretrained(tmp_path / "shared")(pixel_values=pixels).logits.argmax(-1)
                  == labels).float().mean().item()
    assert before < 0.75  # most of class 1 reads as class 0 on the target
    assert result.metrics["eval_target_accuracy"] > 0.95


def test_a_checkpoint_of_a_source_free_run_resumes(checkpoint, tmp_path):
    source = load_source_model(checkpoint)
    args = _args(tmp_path, "shot", max_steps=4, save_strategy="steps", save_steps=2)
    trainer = SourceFreeTrainer(wrap_for_method(source, "shot", seed=0), args, make_domain(8, labelled=False))
    trainer.train()
    final = _state(trainer.model)
    resumed = SourceFreeTrainer(wrap_for_method(load_source_model(checkpoint), "shot", seed=0), args,
                                make_domain(8, labelled=False))
    resumed.train(resume_from_checkpoint=str(tmp_path / "out-shot" / "checkpoint-2"))
    assert _changed(final, _state(resumed.model)) == []  # steps 3-4 again from step 2's adapter: the same weights
