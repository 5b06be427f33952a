import json
from pathlib import Path

import pytest
import torch
from transformers import ViTForImageClassification

from hf_transfer.modeling import (
    DISCRIMINATOR_WEIGHTS_NAME,
    DomainAdaptationModel,
    MissingClassifierError,
    find_classifier,
    pool_features,
)
from tests.conftest import build_model, make_domain, tiny_vit_config


def _batch(n_source=4, n_target=4):
    source, target = make_domain(n_source), make_domain(n_target, shift=1.0)
    pixels = torch.stack([e["pixel_values"] for e in source + target])
    labels = torch.tensor([e["labels"] for e in source] + [-100] * n_target)
    domains = torch.tensor([0] * n_source + [1] * n_target)
    return pixels, labels, domains


def test_only_lora_classifier_and_discriminator_are_trainable():
    model = build_model()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    for name in trainable:
        assert "lora_" in name or "modules_to_save" in name or name.startswith("domain_loss.discriminator")
    assert any(name.startswith("domain_loss.discriminator") for name in trainable)
    assert any("modules_to_save" in name and "classifier" in name for name in trainable)
    assert "trainable params" in model.trainable_parameters_summary()


def test_target_labels_never_reach_the_classification_loss():
    model = build_model()
    pixels, labels, domains = _batch()
    out = model(pixel_values=pixels, labels=labels, domain_labels=domains)
    expected = torch.nn.functional.cross_entropy(out.logits[:4], labels[:4])
    assert torch.allclose(out.classification_loss, expected)
    # Changing target pixels changes the domain loss but not the classification loss of the source rows
    # only through the logits of labelled rows; a target row with a (leaked) label would change it.
    leaked = labels.clone()
    leaked[4:] = 0
    leaky = model(pixel_values=pixels, labels=leaked, domain_labels=domains)
    assert not torch.allclose(leaky.classification_loss, out.classification_loss)


def test_all_unlabelled_batch_gives_zero_classification_loss_in_graph():
    model = build_model()
    pixels, _, domains = _batch()
    out = model(pixel_values=pixels, labels=torch.full((8,), -100), domain_labels=domains)
    assert out.classification_loss.item() == 0.0
    out.loss.backward()  # graph intact: the discriminator still gets a gradient
    assert torch.count_nonzero(model.domain_loss.discriminator.net[0].weight.grad) > 0


def test_source_only_weight_zero_keeps_discriminator_in_graph():
    model = build_model(objective="source_only")
    pixels, labels, domains = _batch()
    out = model(pixel_values=pixels, labels=labels, domain_labels=domains)
    assert torch.allclose(out.loss, out.classification_loss)
    out.loss.backward()
    grads = [p.grad for p in model.domain_loss.discriminator.parameters()]
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in grads)  # used, but untouched


def test_features_are_what_enters_the_classifier():
    model = build_model()
    pixels, _, _ = _batch()
    captured = {}
    classifier = model.backbone.get_submodule(model.classifier_name)
    handle = classifier.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0].detach()))
    features = model.extract_features(pixel_values=pixels)
    handle.remove()
    assert torch.equal(features, captured["x"])
    assert features.shape == (8, 32)


def test_the_peft_model_used_on_its_own_keeps_no_features():
    """``model.model`` (the PeftModel) run directly, e.g. for inference, must not hold a tensor per call."""
    model = build_model()
    pixels, labels, domains = _batch()
    model(pixel_values=pixels, labels=labels, domain_labels=domains)
    with torch.no_grad():
        for _ in range(3):
            model.model(pixel_values=pixels)
    assert model._features == []


def test_save_and_reload_give_identical_logits(tmp_path):
    torch.manual_seed(0)
    base = ViTForImageClassification(tiny_vit_config())
    base.save_pretrained(tmp_path / "base")
    model = build_model(ViTForImageClassification.from_pretrained(tmp_path / "base"))
    with torch.no_grad():  # move the adapter away from its identity init
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    model.eval()
    pixels, _, _ = _batch()
    with torch.no_grad():
        before = model(pixel_values=pixels).logits
        disc_before = model.domain_loss.discriminator(model.extract_features(pixel_values=pixels))
    model.save_pretrained(tmp_path / "adapter")

    saved = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors", DISCRIMINATOR_WEIGHTS_NAME, "domain_adaptation.json"} <= set(saved)
    assert not any(name.startswith(".tmp") for name in saved)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "../base"  # relative to the saved folder, never absolute
    assert json.loads((tmp_path / "adapter" / "domain_adaptation.json").read_text())["base_model"] == "../base"
    assert str(tmp_path) not in (tmp_path / "adapter" / "README.md").read_text()  # hf_transfer's card, not peft's

    reloaded = DomainAdaptationModel.from_pretrained(
        tmp_path / "adapter", base_model=ViTForImageClassification.from_pretrained(tmp_path / "base")
    )
    with torch.no_grad():
        after = reloaded(pixel_values=pixels).logits
        disc_after = reloaded.domain_loss.discriminator(reloaded.extract_features(pixel_values=pixels))
    assert torch.equal(before, after)
    assert torch.allclose(disc_before, disc_after)


def test_missing_classifier_is_a_clear_error():
    from transformers import ViTModel

    model = ViTModel(tiny_vit_config())
    with pytest.raises(MissingClassifierError, match="AutoModelFor"):
        find_classifier(model)


def test_pool_features_shapes():
    assert pool_features(torch.ones(2, 5)).shape == (2, 5)
    assert pool_features(torch.ones(2, 5, 1, 1)).shape == (2, 5)
    assert pool_features(torch.arange(24.0).view(2, 3, 4))[0].tolist() == [0.0, 1.0, 2.0, 3.0]


FIXTURE = Path(__file__).parent / "fixtures" / "saved_v0_1"


@pytest.mark.parametrize("name", ["dann", "cdan", "mcc"])
def test_folders_saved_by_version_0_1_load_with_the_same_logits(name):
    from safetensors.torch import load_file

    expected = load_file(str(FIXTURE / "expected_logits.safetensors"))
    base = ViTForImageClassification.from_pretrained(FIXTURE / "base")
    model = DomainAdaptationModel.from_pretrained(FIXTURE / name, base_model=base)
    with torch.no_grad():
        logits = model(pixel_values=expected["pixel_values"]).logits
    torch.testing.assert_close(logits, expected[f"{name}_logits"], rtol=0, atol=1e-6)
    plain = ViTForImageClassification.from_pretrained(FIXTURE / "base").eval()
    assert not torch.allclose(logits, plain(pixel_values=expected["pixel_values"]).logits, atol=1e-3)  # adapted
