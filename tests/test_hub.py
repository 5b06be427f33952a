"""Push/load round trips against the Hub double with the real huggingface_hub client."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket

import pytest

try:
    from hub_fixtures import (
        OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, example_inputs, file_hashes, hub, hub_module, hub_server,  # noqa: F401
        make_adapted_dir, patch_hf_hub, run_fresh_python, unique_repo,
    )
except ImportError:
    from tests.hub_fixtures import (  # noqa: F401
        OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, example_inputs, file_hashes, hub, hub_module, hub_server,
        make_adapted_dir, patch_hf_hub, run_fresh_python, unique_repo,
    )

from hf_transfer.cli import add_push_arguments, main_push, push_command
from hf_transfer.hub import (
    HubLoadError,
    HubPushError,
    download_adapted_model,
    load_adapted_model,
    load_for_continued_adaptation,
    push_base_model,
    push_to_hub,
)

KINDS = ("image", "text", "audio", "audio-hubert")  # audio = wav2vec2, which transformers cannot load natively
EXPECTED_FILES = {
    "image": {"preprocessor_config.json"},
    "text": {"tokenizer.json", "tokenizer_config.json"},
    "audio": {"preprocessor_config.json"},
    "audio-hubert": {"preprocessor_config.json"},
}
COMMON_FILES = {".gitattributes", "README.md", "adapter_config.json", "adapter_model.safetensors", "config.json",
                "domain_adaptation.json", "domain_discriminator.safetensors"}


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapted")
    return {kind: make_adapted_dir(kind, root / kind) for kind in KINDS}


@pytest.fixture(scope="module")
def pushed(hub_module, adapted):
    """Every modality pushed once: base model repo + adapter repo."""
    result = {}
    for kind, item in adapted.items():
        base_repo = unique_repo(f"tiny-{kind}-base")
        push_base_model(item.base_dir, base_repo)
        repo = unique_repo(f"tiny-{kind}-dann")
        info = push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo, domain="medical")
        result[kind] = (item, repo, base_repo, info)
    return result


def _logits(model, modality, item, processor):
    import torch

    with torch.no_grad():
        return model(**example_inputs(modality, item.example_path, processor)).logits[0].tolist()


def _close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.mark.parametrize("kind", KINDS)
def test_push_is_one_commit_with_hub_ids_only(hub_module, pushed, kind):
    item, repo, base_repo, info = pushed[kind]
    double = hub_module.double
    files = double.files(repo)
    assert set(files) == COMMON_FILES | EXPECTED_FILES[kind]
    assert len(double.repo(repo).commits) == 2  # the Hub's initial commit + exactly one push
    assert info.oid == double.head(repo)
    adapter_config = json.loads(files["adapter_config.json"])
    assert adapter_config["base_model_name_or_path"] == base_repo
    assert json.loads(files["domain_adaptation.json"])["base_model"] == base_repo
    config = json.loads(files["config.json"])
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert files["adapter_model.safetensors"] == (item.output_dir / "adapter_model.safetensors").read_bytes()
    root = str(item.output_dir.parent.parent)
    for name, content in files.items():
        if name.endswith((".json", ".md")):
            text = content.decode()
            assert root not in text and "/tmp" not in text, f"local path leaked into {name}"
            assert WRITE_TOKEN not in text
    assert "not be used for clinical decisions" in files["README.md"].decode()


FRESH_PROCESS_CHECK = r"""
import json, re, sys
import numpy as np
import torch
import transformers
from huggingface_hub import hf_hub_download
from PIL import Image

cases = json.loads(sys.argv[1])
out = {}
for case in cases:
    readme = open(hf_hub_download(case["repo"], "README.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "hf_transfer" not in b]
    proc_cls = {"image": transformers.AutoImageProcessor, "text": transformers.AutoTokenizer,
                "audio": transformers.AutoFeatureExtractor}[case["modality"]]
    processor = proc_cls.from_pretrained(case["repo"])
    if case["modality"] == "image":
        raw = Image.open(case["example"]).convert("RGB"); inputs = processor(images=raw, return_tensors="pt")
    elif case["modality"] == "text":
        raw = open(case["example"]).read(); inputs = processor(raw, return_tensors="pt")
    else:
        raw = np.load(case["example"]); inputs = processor(raw, sampling_rate=16000, return_tensors="pt")
    result = {}
    for block in blocks:  # the card's own usage snippets: pipeline, AutoModel..., PeftModel
        scope = {}
        exec(block, scope)
        if "classifier" in scope:
            preds = scope["classifier"](raw, top_k=None)
            result["pipeline"] = {p["label"]: p["score"] for p in preds}
        else:
            model = scope["model"].eval()
            with torch.no_grad():
                key = "peft" if "PeftModel" in block else "auto"
                result[key] = model(**inputs).logits[0].tolist()
                result[key + "_type"] = type(model).__name__
    out[case["kind"]] = result
out["hf_transfer_imported"] = any(m == "hf_transfer" or m.startswith("hf_transfer.") for m in sys.modules)
print("RESULT:" + json.dumps(out))
"""


@pytest.mark.slow
def test_fresh_process_loads_pushed_repos_without_hf_transfer(hub_module, pushed, tmp_path):
    cases = [{"kind": k, "modality": pushed[k][0].modality, "repo": pushed[k][1], "example": str(pushed[k][0].example_path)}
             for k in KINDS]
    env = hub_module.subprocess_env(home=tmp_path / "fresh-home")
    code = f"import sys; sys.argv = ['check', {json.dumps(json.dumps(cases))}]\n" + FRESH_PROCESS_CHECK
    result = run_fresh_python(code, env, cwd=tmp_path)
    assert result["hf_transfer_imported"] is False
    for kind in KINDS:
        item = pushed[kind][0]
        got = result[kind]
        assert _close(got["peft"], item.local_logits), (kind, got["peft"], item.local_logits)
        assert not _close(got["peft"], item.base_logits, tol=1e-3), "adapter was not applied"
        assert got["peft_type"] == "PeftModel"
        if kind == "audio":  # wav2vec2: the card must not advertise loading paths that fail
            assert "auto" not in got and "pipeline" not in got
            continue
        assert _close(got["auto"], item.local_logits), (kind, got["auto"], item.local_logits)
        exp = [math.exp(x) for x in item.local_logits]
        expected_scores = {label: v / sum(exp) for label, v in zip(("negative", "neutral", "positive"), exp)}
        assert got["pipeline"].keys() == expected_scores.keys()
        assert all(abs(got["pipeline"][k] - expected_scores[k]) <= 1e-5 for k in expected_scores)


def test_load_adapted_model_matches_local_and_merges(hub_module, pushed):
    item, repo, _, _ = pushed["image"]
    model, processor = load_adapted_model(repo)
    assert not model.training
    assert type(model).__name__ == "PeftModel"
    assert _close(_logits(model, "image", item, processor), item.local_logits)
    merged, processor = load_adapted_model(repo, merge=True)
    assert type(merged).__name__ == "ViTForImageClassification"
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert _close(_logits(merged, "image", item, processor), item.local_logits, tol=1e-4)


def test_load_by_commit_sha_after_a_newer_push(hub, adapted, tmp_path):
    item = adapted["image"]
    base_repo = unique_repo("tiny-image-base")
    push_base_model(item.base_dir, base_repo)
    repo = unique_repo("versions")
    first = push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo)
    newer = make_adapted_dir("image", tmp_path / "v2", seed=1, base_dir=item.base_dir)
    second = push_to_hub(newer.output_dir, repo, base_model_repo_id=base_repo)
    assert first.oid != second.oid and hub.double.head(repo) == second.oid
    old_model, processor = load_adapted_model(repo, revision=first.oid)
    assert _close(_logits(old_model, "image", item, processor), item.local_logits)
    new_model, processor = load_adapted_model(repo)
    assert _close(_logits(new_model, "image", newer, processor), newer.local_logits)
    with pytest.raises(HubLoadError, match="does not exist"):
        load_adapted_model(repo, revision="f" * 40)


def test_continued_adaptation_gets_trainable_adapter_and_discriminator(hub_module, pushed):
    from safetensors.torch import load_file

    item, repo, _, _ = pushed["audio"]
    local_dir = download_adapted_model(repo)
    assert not any(name.endswith((".bin", ".pt", ".py")) for name in os.listdir(local_dir))
    state = load_for_continued_adaptation(repo)
    trainable = [name for name, p in state.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n or n.startswith("domain_loss.") for n in trainable)
    assert state.model.training and any(n.startswith("domain_loss.discriminator.") for n in trainable)
    expected = load_file(str(item.output_dir / "domain_discriminator.safetensors"))
    loaded = state.model.domain_loss.discriminator.state_dict()
    assert loaded.keys() == expected.keys() and all(bool((loaded[k] == expected[k]).all()) for k in expected)
    assert state.info.method == "dann"


def test_private_repo_auth_errors_are_clear(hub, adapted, monkeypatch, caplog):
    item = adapted["image"]
    base_repo = unique_repo("private-base")
    push_base_model(item.base_dir, base_repo, private=True)
    repo = unique_repo("private-adapter")
    push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo, private=True)
    assert hub.double.repo(repo).private
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubLoadError, match="401") as bad:
        load_adapted_model(repo, token="hf_thisTokenIsWrong000000000000")
    assert "hf_thisTokenIsWrong" not in str(bad.value)
    with pytest.raises(HubLoadError, match="private"):
        load_adapted_model(repo, token=OTHER_TOKEN)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubLoadError, match="hf auth login"):
        load_adapted_model(repo)
    with pytest.raises(HubPushError, match="401") as push_bad:
        push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo, token="hf_thisTokenIsWrong000000000000")
    assert "hf_thisTokenIsWrong" not in str(push_bad.value)
    assert WRITE_TOKEN not in caplog.text and "hf_thisTokenIsWrong" not in caplog.text


def test_missing_token_and_missing_files_fail_before_any_request(hub, adapted, tmp_path, monkeypatch):
    item = adapted["text"]
    monkeypatch.delenv("HF_TOKEN")
    before = len(hub.double.requests)
    with pytest.raises(HubPushError, match="hf auth login"):
        push_to_hub(item.output_dir, unique_repo("x"), base_model_repo_id="user/anything")
    broken = tmp_path / "broken"
    shutil.copytree(item.output_dir, broken)
    (broken / "adapter_model.safetensors").unlink()
    with pytest.raises(HubPushError, match="adapter_model.safetensors"):
        push_to_hub(broken, unique_repo("x"), base_model_repo_id="user/anything", token=WRITE_TOKEN)
    with pytest.raises(HubPushError, match="base_model_repo_id"):  # local base path, no Hub id given
        push_to_hub(item.output_dir, unique_repo("x"), token=WRITE_TOKEN)
    assert len(hub.double.requests) == before


def test_unknown_base_model_is_refused(hub, adapted):
    repo = unique_repo("orphan")
    with pytest.raises(HubPushError, match="not on the Hub"):
        push_to_hub(adapted["image"].output_dir, repo, base_model_repo_id="user/does-not-exist")
    assert ("model", repo) not in hub.double.repos


def test_failed_commit_leaves_remote_and_local_unchanged(hub, adapted, tmp_path):
    item = adapted["image"]
    base_repo = unique_repo("base")
    push_base_model(item.base_dir, base_repo)
    repo = unique_repo("atomic")
    push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo)
    remote_before, head_before = hub.double.files(repo), hub.double.head(repo)
    newer = make_adapted_dir("image", tmp_path / "v2", seed=3, base_dir=item.base_dir)
    local_before = file_hashes(newer.output_dir)
    hub.double.fail_next("commit", status=500)
    with pytest.raises(HubPushError, match="not modified"):
        push_to_hub(newer.output_dir, repo, base_model_repo_id=base_repo, commit_message="v2")
    assert hub.double.head(repo) == head_before and hub.double.files(repo) == remote_before
    assert file_hashes(newer.output_dir) == local_before


def test_lfs_upload_path_without_xet(hub, adapted, monkeypatch, tmp_path):
    """HF_HUB_DISABLE_XET=1: safetensors go through the LFS batch API, a PUT, and come back via the CDN."""
    patch_hf_hub(monkeypatch, hub.endpoint, hub.home, disable_xet=True)
    hub.double.lfs_uploads = True
    item = adapted["text"]
    base_repo = unique_repo("lfs-base")
    push_base_model(item.base_dir, base_repo)
    repo = unique_repo("lfs-adapter")
    start = len(hub.double.requests)
    hub.double.fail_next("lfs_upload", status=500)  # first attempt dies mid-upload, before the commit
    with pytest.raises(HubPushError, match="not modified"):
        push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo)
    assert set(hub.double.files(repo)) == {".gitattributes"}
    push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo)
    paths = [path for _, path, _ in hub.double.requests[start:]]
    assert any(p.endswith(".git/info/lfs/objects/batch") for p in paths)
    assert any(p.startswith("/__lfs/upload/") for p in paths)
    assert hub.double.repo(repo).commits[hub.double.head(repo)].files["adapter_model.safetensors"].lfs
    cdn_before = len(hub.double.cdn_requests)
    model, tokenizer = load_adapted_model(repo)
    assert _close(_logits(model, "text", item, tokenizer), item.local_logits)
    assert len(hub.double.cdn_requests) > cdn_before
    assert not any(had_auth for _, _, had_auth in hub.double.cdn_requests)  # token never leaves the Hub origin


def test_pull_request_and_branch_pushes(hub, adapted):
    item = adapted["image"]
    base_repo = unique_repo("base")
    push_base_model(item.base_dir, base_repo)
    repo = unique_repo("collab")
    push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo)
    head = hub.double.head(repo)
    pr = push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo, create_pr=True, include_discriminator=False,
                     commit_message="Propose adapter without discriminator")
    assert pr.pr_url.endswith("/discussions/1") and pr.pr_revision == "refs/pr/1"
    assert hub.double.head(repo) == head  # main untouched
    assert hub.double.head(repo, "refs/pr/1") == pr.oid
    branch = push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo, revision="experiments")
    assert hub.double.head(repo, "experiments") == branch.oid and hub.double.head(repo) == head


def test_name_clashes_and_foreign_namespaces(hub, adapted):
    from huggingface_hub import CommitOperationAdd, HfApi

    item = adapted["image"]
    base_repo = unique_repo("base")
    push_base_model(item.base_dir, base_repo)
    occupied = unique_repo("occupied")
    api = HfApi(token=WRITE_TOKEN)
    api.create_repo(occupied)
    api.create_commit(occupied, [CommitOperationAdd("model.safetensors", b"not an adapter")], commit_message="x")
    with pytest.raises(HubPushError, match="name clash"):
        push_to_hub(item.output_dir, occupied, base_model_repo_id=base_repo)
    theirs = unique_repo("theirs", namespace="other-user")
    HfApi(token=OTHER_TOKEN).create_repo(theirs, private=True)
    with pytest.raises(HubPushError, match="name clash|cannot write"):
        push_to_hub(item.output_dir, theirs, base_model_repo_id=base_repo)
    with pytest.raises(HubPushError, match="cannot write"):
        push_to_hub(item.output_dir, unique_repo("mine"), base_model_repo_id=base_repo, token=READ_TOKEN)
    assert len(hub.double.repo(theirs, "model").commits) == 1


def test_cli_entry_points(hub, adapted, capsys):
    import argparse

    item = adapted["image"]
    base_repo = unique_repo("base")
    push_base_model(item.base_dir, base_repo)
    repo = unique_repo("cli")
    args = add_push_arguments(argparse.ArgumentParser()).parse_args(
        [str(item.output_dir), repo, "--base-model-repo-id", base_repo, "--domain", "finance", "--no-discriminator"]
    )
    assert push_command(args) == 0
    out = capsys.readouterr().out
    assert f"/{repo}/commit/" in out and WRITE_TOKEN not in out
    files = hub.double.files(repo)
    assert "domain_discriminator.safetensors" not in files
    assert "investment" in files["README.md"].decode()
    assert main_push(str(item.output_dir), repo) == 1  # local base, no Hub id
    err = capsys.readouterr().err  # the command line names its own flags, not the Python arguments
    assert "--base-model-repo-id" in err and "--push-base-model" in err
    cli = pytest.importorskip("hf_transfer.cli")
    ns = cli.build_parser().parse_args(["push", str(item.output_dir), repo, "--base-model-repo-id", base_repo,
                                        "--create-pr"])
    assert ns.func(ns, []) == 0
    assert capsys.readouterr().out.strip().endswith("/discussions/1")


def _real_hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.real_hub
@pytest.mark.skipif(
    not (os.environ.get("HF_TOKEN") and os.environ.get("HF_TRANSFER_REAL_HUB") == "1"),
    reason="needs HF_TOKEN and HF_TRANSFER_REAL_HUB=1",
)
def test_real_hub_round_trip(adapted):
    if not _real_hub_reachable():
        pytest.skip("huggingface.co is not reachable")
    from huggingface_hub import HfApi

    api = HfApi()
    if not api.endpoint.startswith("https://huggingface.co"):
        pytest.skip("HF_ENDPOINT points elsewhere")
    user = api.whoami()["name"]
    item = adapted["image"]
    base_repo = unique_repo("hf-transfer-test-base", namespace=user)
    repo = unique_repo("hf-transfer-test-adapter", namespace=user)
    try:
        push_base_model(item.base_dir, base_repo, private=True)
        push_to_hub(item.output_dir, repo, base_model_repo_id=base_repo, private=True)
        model, processor = load_adapted_model(repo)
        assert _close(_logits(model, "image", item, processor), item.local_logits)
    finally:
        for name in (repo, base_repo):
            api.delete_repo(name, missing_ok=True)


def test_engine_saved_model_round_trips_through_the_hub(hub, adapted, tmp_path):
    """The real trainer output format: DomainAdaptationModel.save_pretrained -> push -> load both ways."""
    import torch
    from safetensors.torch import load_file
    from transformers import ViTForImageClassification, ViTImageProcessor

    modeling = pytest.importorskip("hf_transfer.modeling")
    item = adapted["image"]
    torch.manual_seed(7)
    model = modeling.DomainAdaptationModel.from_backbone(
        ViTForImageClassification.from_pretrained(str(item.base_dir)), lora_r=4, lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"], discriminator_hidden_size=16,
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.5)
    model.eval()
    processor = ViTImageProcessor.from_pretrained(str(item.base_dir))
    expected = _logits(model, "image", item, processor)
    out = tmp_path / "engine-out"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    base_repo = unique_repo("engine-base")
    push_base_model(item.base_dir, base_repo)
    repo = unique_repo("engine-dann")
    push_to_hub(out, repo, base_model_repo_id=base_repo)
    assert "local data" not in hub.double.files(repo)["domain_adaptation.json"].decode()

    loaded, loaded_processor = load_adapted_model(repo)
    assert _close(_logits(loaded, "image", item, loaded_processor), expected)
    resumed = modeling.DomainAdaptationModel.from_pretrained(download_adapted_model(repo), is_trainable=True)
    resumed.eval()
    assert _close(_logits(resumed, "image", item, processor), expected)
    local_disc = load_file(str(out / "domain_discriminator.safetensors"))
    resumed_disc = resumed.domain_loss.discriminator.state_dict()
    assert all(torch.equal(resumed_disc[k], v) for k, v in local_disc.items())
