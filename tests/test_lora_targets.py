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
