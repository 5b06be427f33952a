import pytest
import torch
from torch import nn

from hf_transfer.lora_targets import discover_lora_targets, is_lora_policy


def _names_matching(model, targets):
    return {n for n, _ in model.named_modules() if n and any(n == t or n.endswith("." + t) for t in targets)}


def test_vit_targets_are_the_attention_projections_of_the_loaded_model(tiny_vit):
    targets = discover_lora_targets(tiny_vit, exclude=["classifier"])
    matched = _names_matching(tiny_vit, targets)
    attention_linears = {
        n for n, m in tiny_vit.named_modules() if isinstance(m, nn.Linear) and ".attention." in f".{n}."
    }
    assert matched == attention_linears
    assert "classifier" not in matched


def test_targets_follow_module_renames():
    """A model whose attention layers use other names gets those names, not a hard-coded list."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = nn.ModuleDict({"wq": nn.Linear(4, 4), "wv": nn.Linear(4, 4)})
            self.mlp = nn.Linear(4, 4)

    model = nn.Sequential(Block(), Block())
    model.classifier = nn.Linear(4, 2)
    targets = discover_lora_targets(model, exclude=["classifier"])
    assert targets == ["wq", "wv"]


def test_bert_targets_disambiguate_shared_leaf_names():
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    )
    targets = discover_lora_targets(model, exclude=["classifier"])
    matched = _names_matching(model, targets)
    assert all(".attention." in n for n in matched)
    assert len(matched) == 2 * 4  # query, key, value, attention output per layer
    assert not any(n.endswith("intermediate.dense") or n.endswith("layer.0.output.dense") for n in matched)


def test_conv_policy_and_grouped_conv_rank_rule():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=4), nn.Conv2d(8, 8, 3, groups=8))
    model.fc = nn.Linear(8, 2)
    assert discover_lora_targets(model, rank=4, exclude=["fc"]) == ["0", "1"]
    assert discover_lora_targets(model, rank=8, exclude=["fc"]) == ["0", "1", "2"]


def test_combined_policy_adds_patch_embedding(tiny_vit):
    targets = discover_lora_targets(tiny_vit, "attention+conv", exclude=["classifier"])
    assert "projection" in targets and "q_proj" in targets
    assert is_lora_policy("attention+conv") and not is_lora_policy("q_proj")


def test_unknown_policy_and_nothing_found():
    with pytest.raises(ValueError, match="Unknown LoRA target policy"):
        discover_lora_targets(nn.Linear(2, 2), "everything")
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="No LoRA target found"):
        discover_lora_targets(model)


def test_conv_policy_reaches_wav2vec2s_convolutional_feature_encoder():
    """wav2vec2's feature encoder is nn.Conv1d: ``conv`` must find it (it once matched only nn.Conv2d), and
    peft's LoRA must train it. The grouped positional conv (groups=4 here) is skipped at rank 2."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
        conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4,
        num_labels=3, classifier_proj_size=8,
    )
    model = Wav2Vec2ForSequenceClassification(config)
    targets = discover_lora_targets(model, "attention+conv", rank=2, exclude=["projector", "classifier"])
    assert {"0.conv", "1.conv", "q_proj", "k_proj", "v_proj", "out_proj"} <= set(targets)  # not pos_conv_embed.conv
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=targets, modules_to_save=["projector", "classifier"]))
    lora_convs = [n for n, m in peft_model.named_modules() if n.endswith("conv_layers.0.conv")]
    assert lora_convs and hasattr(peft_model.get_submodule(lora_convs[0]), "lora_A")
    assert not hasattr(peft_model.get_submodule("base_model.model.wav2vec2.encoder.pos_conv_embed.conv"), "lora_A")
    peft_model(torch.randn(2, 400)).logits.sum().backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "conv_layers.0.conv.lora_B" in n]
    assert grads and grads[0] is not None and grads[0].abs().sum() > 0


def test_a_combined_policy_warns_about_a_part_that_finds_nothing(tiny_vit, caplog):
    model = nn.Sequential(nn.Linear(2, 2))
    with caplog.at_level("WARNING", logger="hf_transfer.lora_targets"):
        assert discover_lora_targets(model, "all-linear+conv") == ["0"]
    assert "'conv' part finds nothing in Sequential" in caplog.text


# ------------------------------------------------------------------------------------------------
# Depthwise-separable CNNs (EfficientNet, MobileNet) and Whisper's encoder


@pytest.fixture(scope="module")
def efficientnet_lite0():
    """timm's tf_efficientnet_lite0 inside a TimmWrapper, as load_backbone returns it (random weights, 3 classes)."""
    pytest.importorskip("timm")
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    torch.manual_seed(0)
    return TimmWrapperForImageClassification(TimmWrapperConfig(architecture="tf_efficientnet_lite0", num_labels=3))


def test_auto_puts_lora_on_efficientnets_pointwise_convs_at_any_rank(efficientnet_lite0):
    from hf_transfer.backbones import classification_head_modules

    model = efficientnet_lite0
    head = classification_head_modules(model)
    assert head == ["timm_model.classifier"]
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    pointwise = {n for n, m in convs.items() if m.kernel_size == (1, 1) and m.groups == 1}
    depthwise = {n for n, m in convs.items() if m.groups == m.in_channels > 1}
    assert pointwise and depthwise and pointwise | depthwise | {"timm_model.conv_stem"} == set(convs)
    for rank in (4, 8, 32):
        matched = _names_matching(model, discover_lora_targets(model, rank=rank, exclude=head))
        assert matched == pointwise, rank  # conv_pw, conv_pwl and conv_head; never depthwise, stem or head
    assert _names_matching(model, discover_lora_targets(model, "pointwise", exclude=head)) == pointwise
    # ``conv`` adds the stem, and at r=32 the one depthwise conv with 32 channels: rank-dependent targets.
    conv_32 = _names_matching(model, discover_lora_targets(model, "conv", rank=32, exclude=head))
    assert conv_32 - pointwise == {"timm_model.conv_stem", "timm_model.blocks.0.0.conv_dw"}


def test_lora_on_efficientnet_trains_the_pointwise_convs_and_merges(efficientnet_lite0):
    import copy

    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(efficientnet_lite0)
    targets = discover_lora_targets(model, rank=4, exclude=["timm_model.classifier"])
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                  modules_to_save=["timm_model.classifier"]))
    adapted = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and isinstance(m.base_layer, nn.Conv2d)]
    assert len(adapted) == len(_names_matching(efficientnet_lite0, targets))
    assert not any("conv_dw" in n or "conv_stem" in n for n in adapted)
    peft_model.train()
    out = peft_model(pixel_values=torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    out.logits.sum().backward()
    lora_b = {n: p.grad for n, p in peft_model.named_parameters() if "lora_B" in n}
    assert lora_b and all(g is not None and g.abs().sum() > 0 for g in lora_b.values()), [n for n, g in lora_b.items()
                                                                                         if g is None or not g.abs().sum()]
    assert not any(p.requires_grad for n, p in peft_model.named_parameters() if "bn" in n and "lora" not in n)
    peft_model.merge_and_unload()  # no LoRA on a grouped conv, so merging works


def test_auto_on_a_hybrid_adds_pointwise_convs_to_attention():
    """A model with attention and depthwise-separable conv blocks (MobileViT-like) adapts both."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.conv_pw = nn.Conv2d(8, 8, 1)
            self.attn = nn.ModuleDict({"qkv": nn.Linear(8, 24), "proj": nn.Linear(8, 8)})

    model = nn.Sequential(nn.Conv2d(3, 8, 3), Block())
    model.classifier = nn.Linear(8, 2)
    assert discover_lora_targets(model, exclude=["classifier"]) == ["conv_pw", "proj", "qkv"]
    assert discover_lora_targets(model, "attention", exclude=["classifier"]) == ["proj", "qkv"]


def test_pointwise_policy_on_plain_cnns_and_auto_unchanged_there():
    """Without depthwise convs ``auto`` is still ``conv`` (ResNets keep every ungrouped conv); ``pointwise`` takes 1×1 only."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1), nn.Conv1d(8, 8, 1), nn.Conv2d(8, 8, 1, groups=2))
    model.fc = nn.Linear(8, 2)
    assert discover_lora_targets(model, exclude=["fc"]) == ["0", "1", "2", "3"]
    assert discover_lora_targets(model, "pointwise", exclude=["fc"]) == ["1", "2"]
    assert is_lora_policy("pointwise") and is_lora_policy("attention+pointwise")


def _tiny_whisper_classifier():
    from transformers import WhisperConfig, WhisperForAudioClassification

    config = WhisperConfig(
        num_mel_bins=16, d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=32, max_source_positions=10, max_target_positions=8, vocab_size=8,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, num_labels=3,
    )
    torch.manual_seed(0)
    return WhisperForAudioClassification(config)


def test_whisper_encoder_gets_attention_and_never_its_conv_stem(caplog):
    """WhisperEncoder.forward reads ``self.conv1.stride``: a peft LoRA wrapper there would crash the forward."""
    from peft import LoraConfig, get_peft_model

    from hf_transfer.backbones import classification_head_modules

    model = _tiny_whisper_classifier()
    head = classification_head_modules(model)
    attention = {f"encoder.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
    assert _names_matching(model, discover_lora_targets(model, rank=4, exclude=head)) == attention
    with caplog.at_level("INFO", logger="hf_transfer.lora_targets"):
        targets = discover_lora_targets(model, "attention+conv", rank=4, exclude=head)
    assert _names_matching(model, targets) == attention
    assert "LoRA skips encoder.conv1: its parent reads its stride" in caplog.text

    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=targets, modules_to_save=head))
    features = torch.randn(2, 16, 20, generator=torch.Generator().manual_seed(0))  # mel bins × 2·max_source_positions
    peft_model(input_features=features).logits.sum().backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if "lora_B" in n}
    assert len(grads) == len(attention) and all(g is not None and g.abs().sum() > 0 for g in grads.values())

    # What the skip prevents: LoRA forced onto the stem breaks the forward pass.
    forced = get_peft_model(_tiny_whisper_classifier(), LoraConfig(r=4, target_modules=["conv1"], modules_to_save=head))
    with pytest.raises(AttributeError, match="stride"):
        forced(input_features=features)
