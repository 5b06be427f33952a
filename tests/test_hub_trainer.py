"""The Trainer's own push_to_hub=True, and the demo's adapter pushed with one command and loaded without hf_transfer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

try:
    from conftest import build_model, make_domain, train_args
    from hub_fixtures import WRITE_TOKEN, hub, hub_server, run_fresh_python, unique_repo  # noqa: F401
except ImportError:
    from tests.conftest import build_model, make_domain, train_args
    from tests.hub_fixtures import WRITE_TOKEN, hub, hub_server, run_fresh_python, unique_repo  # noqa: F401

from huggingface_hub import ModelCard

from hf_transfer.hub import push_base_model
from hf_transfer.trainer import DomainAdaptationTrainer


def _commit_titles(double, repo_id: str) -> list[str]:
    return [commit.title for commit in double.repo(repo_id).commits.values()]


def _index_values(card: ModelCard) -> list[float]:
    return [m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]]


@pytest.fixture
def base_on_hub(hub, tmp_path):
    """A tiny ViT base saved locally (what training records) and pushed to the double (what the card names)."""
    from transformers import ViTForImageClassification, ViTImageProcessor

    try:
        from conftest import tiny_vit_config
    except ImportError:
        from tests.conftest import tiny_vit_config

    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    ViTForImageClassification(tiny_vit_config()).save_pretrained(base_dir)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(base_dir)
    repo = unique_repo("tiny-vit-base")
    push_base_model(base_dir, repo)
    return base_dir, repo


def _trainer(tmp_path, base_dir, **args):
    from transformers import ViTForImageClassification, ViTImageProcessor

    model = build_model(ViTForImageClassification.from_pretrained(base_dir))
    return DomainAdaptationTrainer(
        model=model,
        args=train_args(tmp_path, **args),
        source_dataset=make_domain(16, seed=1),
        target_dataset=make_domain(16, shift=2.0, seed=2, labelled=False),
        eval_datasets={"source": make_domain(6, seed=3), "target": make_domain(6, shift=2.0, seed=4)},
        processing_class=ViTImageProcessor(size={"height": 16, "width": 16}),
    )


def test_trainer_push_to_hub_pushes_each_save_and_the_final_model_as_single_commits(hub, base_on_hub, tmp_path):
    base_dir, base_repo = base_on_hub
    repo = unique_repo("trainer-push")
    trainer = _trainer(
        tmp_path, base_dir, push_to_hub=True, hub_model_id=repo, hub_base_model_repo_id=base_repo,
        hub_card_domain="medical", save_strategy="steps", save_steps=2, max_steps=4,
    )
    assert trainer.hub_model_id == repo
    assert ("model", repo) not in hub.double.repos  # nothing is created before the first push
    trainer.train()
    assert _commit_titles(hub.double, repo)[-2:] == ["Training in progress, step 2", "Training in progress, step 4"]
    metrics = trainer.evaluate()
    trainer.save_model()  # with push_to_hub=True the Trainer pushes on save_model
    titles = _commit_titles(hub.double, repo)
    assert titles[-1] == "Model save" and len(titles) == 4  # .gitattributes at creation, then one commit per push

    files = hub.double.files(repo)
    assert {"adapter_config.json", "adapter_model.safetensors", "domain_discriminator.safetensors",
            "domain_adaptation.json", "preprocessor_config.json", "README.md"} <= set(files)
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == base_repo
    for name, content in files.items():
        assert str(tmp_path).encode() not in content, f"local path leaked into {name}"
        assert WRITE_TOKEN.encode() not in content, f"token leaked into {name}"
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == base_repo and card.data.library_name == "peft"
    assert "clinical" in card.text.lower()  # the medical section's intended-use warning
    assert any(abs(v - metrics["eval_target_accuracy"]) < 1e-9 for v in _index_values(card))


def test_trainer_push_resolves_namespace_and_end_strategy_pushes_once(hub, base_on_hub, tmp_path):
    base_dir, base_repo = base_on_hub
    name = unique_repo("short").split("/")[1]
    trainer = _trainer(
        tmp_path, base_dir, push_to_hub=True, hub_model_id=name, hub_base_model_repo_id=base_repo,
        hub_strategy="end", save_strategy="steps", save_steps=2, hub_include_discriminator=False,
    )
    assert trainer.hub_model_id == f"user/{name}"  # namespace from whoami
    trainer.train()
    assert ("model", f"user/{name}") not in hub.double.repos  # hub_strategy="end": no checkpoint pushes
    info = trainer.push_to_hub(commit_message="final adapter")
    assert _commit_titles(hub.double, f"user/{name}")[-1] == "final adapter" and info.oid
    assert "domain_discriminator.safetensors" not in hub.double.files(f"user/{name}")


def test_trainer_push_without_a_hub_base_fails_clearly_and_leaves_no_repo(hub, base_on_hub, tmp_path):
    from hf_transfer.hub import HubPushError

    base_dir, _ = base_on_hub
    repo = unique_repo("no-base")
    trainer = _trainer(tmp_path, base_dir, push_to_hub=True, hub_model_id=repo, max_steps=1)
    trainer.train()
    with pytest.raises(HubPushError, match="base_model_repo_id"):
        trainer.push_to_hub()
    assert ("model", repo) not in hub.double.repos
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()  # the local save happened


FRESH_DEMO_CHECK = """
import json, sys
import numpy as np, torch
from transformers import AutoModelForImageClassification, pipeline
repo, inputs_path = sys.argv[1], sys.argv[2]
model = AutoModelForImageClassification.from_pretrained(repo).eval()
with torch.no_grad():
    logits = model(pixel_values=torch.from_numpy(np.load(inputs_path))).logits
print("RESULT:" + json.dumps({"logits": logits.tolist(), "labels": model.config.id2label,
                              "hf_transfer_imported": "hf_transfer" in sys.modules}))
"""


@pytest.mark.slow
def test_demo_adapter_pushed_with_one_command_loads_in_plain_transformers(hub, tmp_path):
    from hf_transfer.demo import DemoSettings, make_digit_domains, run_demo
    from hf_transfer.modeling import DomainAdaptationModel

    settings = DemoSettings(hidden_size=32, num_layers=1, pretrain_epochs=1, adapt_steps=3, batch_size=16)
    results = run_demo(output_dir=tmp_path / "demo", seed=0, settings=settings)
    adapter_dir = tmp_path / "demo" / "dann"
    repo, base_repo = unique_repo("digits-dann"), unique_repo("digits-vit-base")

    env = hub.subprocess_env(home=tmp_path / "cli-home")
    proc = subprocess.run(
        [sys.executable, "-m", "hf_transfer", "push", str(adapter_dir), repo,
         "--base-model-repo-id", base_repo, "--push-base-model"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"/{repo}/commit/" in proc.stdout and WRITE_TOKEN not in proc.stdout + proc.stderr

    domains = make_digit_domains(seed=0)
    pixels = torch.stack([e["pixel_values"] for e in domains.target_test[:8]])
    np.save(tmp_path / "inputs.npy", pixels.numpy())
    local = DomainAdaptationModel.from_pretrained(adapter_dir).eval()
    with torch.no_grad():
        local_logits = local(pixel_values=pixels).logits

    code = f"import sys; sys.argv = ['check', {repo!r}, {str(tmp_path / 'inputs.npy')!r}]\n" + FRESH_DEMO_CHECK
    got = run_fresh_python(code, hub.subprocess_env(home=tmp_path / "fresh-home"), cwd=tmp_path)
    assert got["hf_transfer_imported"] is False
    remote_logits = torch.tensor(got["logits"])
    assert torch.allclose(remote_logits, local_logits, atol=1e-5)
    assert torch.equal(remote_logits.argmax(-1), local_logits.argmax(-1))
    assert got["labels"]["3"] == local.config.id2label[3]

    card = ModelCard(hub.double.files(repo)["README.md"].decode())
    assert card.data.base_model == base_repo and card.data.library_name == "peft"
    assert {"domain-adaptation", "dann", "lora"} <= set(card.data.tags)
    values = _index_values(card)
    assert any(abs(v - results["dann"]["target_accuracy"]) < 1e-9 for v in values)
    assert any(abs(v - results["source_only"]["target_accuracy"]) < 1e-9 for v in values)
    assert str(tmp_path) not in card.content
