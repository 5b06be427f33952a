"""Model cards: valid Hub metadata, honest results, per-domain limitations, nothing local leaks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_transfer.cards import build_model_card, card_code_blocks, native_adapter_loading
from hf_transfer.privacy import LOCAL_DATA

try:
    from hub_double import validate_card_metadata
except ImportError:
    from tests.hub_double import validate_card_metadata

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "hf_abcdefghijklmnopqrstuvwxyz012345"


def run_info(tmp_path: Path, **overrides) -> dict:
    info = {
        "hf_transfer_version": "0.1.0",
        "method": "dann",
        "base_model": str(tmp_path / "checkpoints" / "vit"),
        "task": "image-classification",
        "modality": "image",
        "id2label": {"0": "benign", "1": "malignant"},
        "label2id": {"benign": 0, "malignant": 1},
        "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
        "discriminator": {"feature_dim": 768, "hidden_size": 256, "num_layers": 2, "dropout": 0.1},
        "grl": {"schedule": "dann", "gamma": 10.0, "max_lambda": 1.0, "domain_loss_weight": 0.5},
        "source_domain": {"dataset": "org/derm-hospital-a", "config": "default", "split": "train",
                          "description": "dermoscopy images from hospital A", "license": "cc-by-nc-4.0"},
        "target_domain": {"dataset": str(tmp_path / "hospital_b"), "split": "test",
                          "description": f"phone photos copied to {tmp_path}/b by {os.path.expanduser('~')}",
                          "token_used": SECRET},
        "metrics": {"eval_source_accuracy": 0.93, "eval_source_f1": 0.92, "eval_target_accuracy": 0.81,
                    "eval_target_f1": 0.78},
        "baseline": {"method": "source_only", "metrics": {"eval_source_accuracy": 0.94, "eval_source_f1": 0.93,
                                                          "eval_target_accuracy": 0.66, "eval_target_f1": 0.6}},
        "training": {"max_steps": 500, "learning_rate": 2e-4, "per_device_train_batch_size": 16, "seed": 42},
    }
    info.update(overrides)
    return info


def test_metadata_round_trips_and_satisfies_hub_validation(tmp_path):
    card = build_model_card(run_info(tmp_path), repo_id="org/derm-dann", domain="medical", base_model="google/vit-base")
    reparsed = ModelCard(card.content)
    assert reparsed.data.to_dict() == card.data.to_dict()
    data = reparsed.data
    assert data.base_model == "google/vit-base" and data.library_name == "peft"
    assert data.pipeline_tag == "image-classification"
    assert data.datasets == ["org/derm-hospital-a"]  # the local target dataset is not a Hub id
    assert {"domain-adaptation", "dann", "lora", "hf-transfer", "image", "medical"} <= set(data.tags)
    assert data.license == "unknown"
    assert data.source_domain["dataset"] == "org/derm-hospital-a"
    assert data.target_domain["dataset"] == LOCAL_DATA
    assert validate_card_metadata(card.content) == []
    results = data.eval_results
    assert len(results) == 8  # 2 domains x (accuracy, macro-F1) x (this model, source-only baseline)
    for result in results:
        assert result.task_type == "image-classification"
        assert result.dataset_name and result.dataset_type and result.metric_type in ("accuracy", "f1")
        assert isinstance(result.metric_value, float)
    target_acc = [r for r in results if r.metric_type == "accuracy" and r.dataset_name.startswith("Target")]
    assert sorted(r.metric_value for r in target_acc) == [0.66, 0.81]
    assert all(r.metric_args == {"average": "macro"} for r in results if r.metric_type == "f1")


def test_no_local_paths_usernames_or_tokens(tmp_path):
    card = build_model_card(run_info(tmp_path), repo_id="org/derm-dann", domain="medical")
    content = card.content
    assert str(tmp_path) not in content and "/tmp" not in content
    assert os.path.expanduser("~") + "/" not in content
    assert SECRET not in content
    assert "base_model:" not in content  # a local base without a Hub id is omitted, never written
    assert "phone photos copied to local data" in content


def test_results_table_and_body_sections(tmp_path):
    content = build_model_card(run_info(tmp_path), repo_id="org/m", domain="medical").content
    assert "| Target | Accuracy | 0.8100 | 0.6600 | +0.1500 |" in content
    assert "| Source | Accuracy | 0.9300 | 0.9400 | -0.0100 |" in content
    assert "dermoscopy images from hospital A" in content and "cc-by-nc-4.0" in content
    assert "r=8, lora_alpha=16" in content
    assert "Objective: classification loss + 0.5 × dann (class_weighting=False)" in content  # a format-1 run info
    assert "Labels (2): benign, malignant." in content
    assert "must not be used for clinical decisions" in content


@pytest.mark.parametrize(
    "domain, present, absent",
    [
        ("medical", "must not be used for clinical decisions", "investment advice"),
        ("finance", "not investment advice", "clinical decisions"),
        ("speech", "accent, dialect", "clinical decisions"),
        ("generic", "General use.", "investment advice"),
    ],
)
def test_domain_sections(tmp_path, domain, present, absent):
    content = build_model_card(run_info(tmp_path), repo_id="org/m", domain=domain).content
    assert present in content and absent not in content


def test_unknown_domain_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="domain"):
        build_model_card(run_info(tmp_path), repo_id="org/m", domain="legal")


def test_source_only_run_and_missing_keys_degrade_gracefully(tmp_path):
    info = run_info(tmp_path, method="source_only")
    del info["baseline"]
    card = build_model_card(info, repo_id="org/m", base_model="org/base")
    assert "source-only" in card.data.tags and "dann" not in card.data.tags
    assert "Source-only baseline" not in card.content and "Domain discriminator:" not in card.content
    bare = build_model_card({}, repo_id="org/bare")
    assert "No evaluation results were recorded" in bare.content
    assert bare.data.eval_results is None and validate_card_metadata(bare.content) == []


def test_card_from_output_dir_reads_run_info_and_adapter_config(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base", "r": 4,
                                                         "lora_alpha": 8, "target_modules": ["query"]}))
    (out / "domain_adaptation.json").write_text(json.dumps({"task": "text-classification", "modality": "text",
                                                            "method": "dann", "metrics": {"eval_target_f1": 0.5}}))
    card = build_model_card(out, repo_id="org/text-dann", domain="finance")
    assert card.data.base_model == "org/base" and card.data.pipeline_tag == "text-classification"
    assert "AutoModelForSequenceClassification" in card.content and "r=4, lora_alpha=8" in card.content
    assert [r.metric_value for r in card.data.eval_results] == [0.5]


def test_usage_snippets_follow_what_transformers_can_load(tmp_path):
    vit = build_model_card(run_info(tmp_path, model_type="vit"), repo_id="org/m", base_model="org/base")
    blocks = card_code_blocks(vit)
    assert len(blocks) == 4 and all("org/m" in b for b in blocks)
    assert any("pipeline(" in b for b in blocks) and any("PeftModel.from_pretrained" in b for b in blocks)
    for block in blocks:
        compile(block, "<card>", "exec")
    assert native_adapter_loading("vit", "image-classification")
    assert not native_adapter_loading("wav2vec2", "audio-classification")
    speech = build_model_card(run_info(tmp_path, model_type="wav2vec2", task="audio-classification", modality="audio"),
                              repo_id="org/a", base_model="org/base", domain="speech")
    speech_blocks = card_code_blocks(speech)
    assert not any("pipeline(" in b for b in speech_blocks) and len(speech_blocks) == 2
    assert "override" in speech.content


def test_mcc_and_iwdan_runs_say_what_they_did(tmp_path):
    mcc = build_model_card(run_info(tmp_path, method="mcc", mcc={"weight": 1.0, "temperature": 2.5}), repo_id="org/m")
    assert "mcc" in mcc.data.tags and "dann" not in mcc.data.tags
    assert "Minimum Class Confusion (MCC) on the unlabelled target" in mcc.content
    assert "Objective: classification loss + 1 × mcc (temperature=2.5)" in mcc.content
    assert "Domain discriminator:" not in mcc.content and "unlabelled during training" in mcc.content
    assert validate_card_metadata(mcc.content) == []

    grl = {"schedule": "dann", "gamma": 10.0, "max_lambda": 1.0, "domain_loss_weight": 1.0, "class_weighting": True}
    both = build_model_card(run_info(tmp_path, grl=grl, mcc={"weight": 0.5, "temperature": 2.5}), repo_id="org/m")
    assert {"dann", "iwdan", "mcc"} <= set(both.data.tags)
    assert "class-weighted (IWDAN), plus Minimum Class Confusion (MCC)" in both.content
    assert "| IWDAN + MCC (this model) |" in both.content and "class_weighting=True" in both.content

    plain = build_model_card(run_info(tmp_path, mcc={"weight": 0.0, "temperature": 2.5}), repo_id="org/m")
    assert "mcc" not in plain.data.tags and "Minimum Class Confusion" not in plain.content


def test_cdan_runs_name_the_conditioning(tmp_path):
    conditioning = {"feature_dim": 384, "num_classes": 2, "map": "multilinear", "randomized_dim": 1024, "seed": 0,
                    "entropy_conditioning": True}
    cdan = build_model_card(run_info(tmp_path, method="cdan", conditioning=conditioning), repo_id="org/m")
    assert "cdan" in cdan.data.tags and "dann" not in cdan.data.tags
    assert "conditional domain-adversarial training (CDAN+E)" in cdan.content
    assert "| CDAN+E (this model) |" in cdan.content and "Domain discriminator:" in cdan.content
    assert "Conditioning: multilinear map (features ⊗ predictions); entropy conditioning on" in cdan.content
    assert validate_card_metadata(cdan.content) == []

    grl = {"schedule": "dann", "gamma": 10.0, "max_lambda": 1.0, "domain_loss_weight": 1.0, "class_weighting": True}
    plain = dict(conditioning, map="randomized", entropy_conditioning=False)
    weighted = build_model_card(run_info(tmp_path, method="cdan", conditioning=plain, grl=grl), repo_id="org/m")
    assert {"cdan", "iwcdan"} <= set(weighted.data.tags) and "layer, class-weighted (IWCDAN)" in weighted.content
    assert "randomized multilinear map (features ⊗ predictions, 1024 dimensions); entropy conditioning off" in weighted.content
    dann = build_model_card(run_info(tmp_path), repo_id="org/m")
    assert "Conditioning:" not in dann.content
