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
