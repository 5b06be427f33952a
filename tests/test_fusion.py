"""Adapter fusion (peft add_weighted_adapter, heads averaged) and routing (mixed-batch adapter_names)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

try:
    from hub_fixtures import example_inputs, hub, hub_server, make_adapted_dir, unique_repo  # noqa: F401
except ImportError:  # pragma: no cover - run from the repository root as a package
    from tests.hub_fixtures import example_inputs, hub, hub_server, make_adapted_dir, unique_repo  # noqa: F401

from hf_transfer.artifacts import RunInfo
from hf_transfer.fusion import AdapterRouter, FusionError, fuse_adapters, read_sources

WEIGHTS = (0.7, 0.3)
SCALING = 8 / 4  # make_adapted_dir: lora_alpha 8, r 4


@pytest.fixture(scope="module")
def two_adapters(tmp_path_factory):
    """Two image adapters (different LoRA and heads) on one tiny ViT base, as two targets would give."""
    root = tmp_path_factory.mktemp("fusion")
    first = make_adapted_dir("image", root / "usps", seed=0)
    second = make_adapted_dir("image", root / "svhn", seed=1, base_dir=first.base_dir)
    return first, second


def _factors(path):
    state = load_file(str(path / "adapter_model.safetensors"))
    modules = sorted({k.rsplit(".lora_", 1)[0] for k in state if ".lora_" in k})
    return state, {m: (state[f"{m}.lora_A.weight"], state[f"{m}.lora_B.weight"]) for m in modules}


def _fuse(two_adapters, tmp_path, combination, **kwargs):
    first, second = two_adapters
    return fuse_adapters([first.output_dir, second.output_dir], tmp_path / combination, weights=WEIGHTS,
                         names=["usps", "svhn"], combination_type=combination, **kwargs)


def test_cat_fusion_is_exactly_the_weighted_sum_of_the_lora_updates(two_adapters, tmp_path):
    fused = _fuse(two_adapters, tmp_path, "cat")
    config = json.loads((fused / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 8  # stacked ranks, scaling 1
    _, fused_factors = _factors(fused)
    (_, a), (_, b) = (_factors(item.output_dir) for item in two_adapters)
    assert set(fused_factors) == set(a) == set(b) and len(a) == 4
    for module, (A, B) in fused_factors.items():
        expected = sum(w * SCALING * (f[module][1] @ f[module][0]) for w, f in zip(WEIGHTS, (a, b)))
        assert torch.allclose(B @ A, expected, atol=1e-5)
        assert not torch.allclose(B @ A, SCALING * a[module][1] @ a[module][0], atol=1e-3)  # both adapters count


def test_linear_fusion_mixes_the_factors_as_peft_documents(two_adapters, tmp_path):
    """linear: (Σ √(w s) B)(Σ √(w s) A): the weighted sum of the updates plus cross terms, which are not zero."""
    fused = _fuse(two_adapters, tmp_path, "linear")
    assert json.loads((fused / "adapter_config.json").read_text())["r"] == 4
    _, fused_factors = _factors(fused)
    (_, a), (_, b) = (_factors(item.output_dir) for item in two_adapters)
    roots = [(w * SCALING) ** 0.5 for w in WEIGHTS]
    for module, (A, B) in fused_factors.items():
        mixed_A = roots[0] * a[module][0] + roots[1] * b[module][0]
        mixed_B = roots[0] * a[module][1] + roots[1] * b[module][1]
        assert torch.allclose(B @ A, mixed_B @ mixed_A, atol=1e-5)
        weighted_sum = sum(w * SCALING * (f[module][1] @ f[module][0]) for w, f in zip(WEIGHTS, (a, b)))
        assert not torch.allclose(B @ A, weighted_sum, atol=1e-3)


def test_fused_head_is_the_weighted_average_and_run_info_lists_the_sources(two_adapters, tmp_path):
    fused = _fuse(two_adapters, tmp_path, "cat")
    state, _ = _factors(fused)
    heads = [load_file(str(item.output_dir / "adapter_model.safetensors")) for item in two_adapters]
    for key in ("base_model.model.classifier.weight", "base_model.model.classifier.bias"):
        assert torch.allclose(state[key], WEIGHTS[0] * heads[0][key] + WEIGHTS[1] * heads[1][key], atol=1e-6)
    info = RunInfo.read(fused)
    assert [s["name"] for s in info.fusion["sources"]] == ["usps", "svhn"]
    assert [s["weight"] for s in info.fusion["sources"]] == list(WEIGHTS)
    assert info.fusion["combination_type"] == "cat" and info.id2label == RunInfo.read(two_adapters[0].output_dir).id2label
    assert not (fused / "domain_discriminator.safetensors").exists()  # discriminators are not fused
    card = (fused / "README.md").read_text()
    assert "## Fused adapters" in card and "| usps |" in card and "| svhn |" in card
    private = str(two_adapters[0].output_dir.parent)  # the fixture records a local target path in each adapter
    assert private in (two_adapters[0].output_dir / "domain_adaptation.json").read_text()
    assert private not in card and private not in json.dumps(info.fusion)


def test_ties_needs_a_density_and_fuses_with_one(two_adapters, tmp_path):
    with pytest.raises(FusionError, match="density"):
        _fuse(two_adapters, tmp_path, "ties")
    fused = _fuse(two_adapters, tmp_path, "dare_linear", density=0.5)
    assert RunInfo.read(fused).fusion["density"] == 0.5


def test_adapters_with_different_labels_or_bases_are_refused(two_adapters, tmp_path):
    first, second = two_adapters
    other = make_adapted_dir("image", tmp_path / "other", seed=2)  # its own base model
    with pytest.raises(FusionError, match="base model"):
        read_sources([first.output_dir, other.output_dir])
    assert [s.name for s in read_sources([first.output_dir, second.output_dir])] == ["image-adapted-0", "image-adapted-1"]
    with pytest.raises(FusionError, match="at least two"):
        read_sources([first.output_dir])
    with pytest.raises(FusionError, match="names must differ"):
        read_sources([first.output_dir, second.output_dir], names=["a", "a"])
    relabelled = tmp_path / "relabelled"
    import shutil

    shutil.copytree(second.output_dir, relabelled)
    info = json.loads((relabelled / "domain_adaptation.json").read_text())
    info["id2label"] = {"0": "cat", "1": "dog", "2": "bird"}
    (relabelled / "domain_adaptation.json").write_text(json.dumps(info))
    with pytest.raises(FusionError, match="label set"):
        read_sources([first.output_dir, relabelled])


@pytest.fixture(scope="module")
def router(two_adapters):
    first, second = two_adapters
    return AdapterRouter.from_pretrained([first.output_dir, second.output_dir], names=["usps", "svhn"])


def _batch(two_adapters):
    from transformers import ViTImageProcessor

    first, second = two_adapters
    processor = ViTImageProcessor.from_pretrained(first.output_dir)
    rows = [example_inputs("image", item.example_path, processor)["pixel_values"] for item in (first, second)]
    return {"pixel_values": torch.cat(rows)}


def test_mixed_batch_gives_each_row_its_own_adapter(two_adapters, router):
    first, second = two_adapters
    logits = router(adapter_names=["usps", "svhn"], **_batch(two_adapters)).logits
    assert torch.allclose(logits[0], torch.tensor(first.local_logits), atol=1e-4)
    assert torch.allclose(logits[1], torch.tensor(second.local_logits), atol=1e-4)
    swapped = router(adapter_names=["svhn", "usps"], **_batch(two_adapters)).logits
    assert not torch.allclose(swapped[0], logits[0], atol=1e-3)


def test_discriminator_scores_are_each_adapters_discriminator_on_its_own_features(two_adapters, router):
    batch = _batch(two_adapters)
    scores = router.route_scores("discriminators", **batch)
    for column, name in enumerate(router.names):
        router.model.set_adapter(name)  # the plain single-adapter forward
        router._features.clear()
        router.model(**batch)
        from hf_transfer.modeling import pool_features

        expected = router.discriminators[name](pool_features(router._features.pop()))
        router._features.clear()
        assert torch.allclose(scores[:, column], expected, atol=1e-4)


def test_routing_follows_a_planted_discriminator(two_adapters, router):
    """Plant the discriminators' last bias: the adapter whose discriminator is surest the input is its target wins."""
    batch = _batch(two_adapters)
    last = {name: router.discriminators[name].net[-1] for name in router.names}
    saved = {name: (layer.weight.clone(), layer.bias.clone()) for name, layer in last.items()}
    try:
        with torch.no_grad():
            for name, layer in last.items():
                layer.weight.zero_()
                layer.bias.fill_(5.0 if name == "svhn" else -5.0)
        assert router.route("discriminators", **batch) == ["svhn", "svhn"]
        with torch.no_grad():
            last["usps"].bias.fill_(6.0)
        assert router.route("discriminators", **batch) == ["usps", "usps"]
        first, _ = two_adapters
        assert torch.allclose(router(scores="discriminators", **batch).logits[0], torch.tensor(first.local_logits), atol=1e-4)
    finally:
        with torch.no_grad():
            for name, layer in last.items():
                layer.weight.copy_(saved[name][0])
                layer.bias.copy_(saved[name][1])


def _domain_images(shift: float, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=generator) * 0.3 + shift


def test_domain_classifier_routes_each_input_to_its_domain(two_adapters, router):
    """A planted two-domain set (dark vs bright images): fitted on unlabelled batches, it routes held-out rows."""
    fit = {"usps": [{"pixel_values": _domain_images(-1.0, 16, 0)}], "svhn": [{"pixel_values": _domain_images(1.0, 16, 1)}]}
    accuracy = router.fit_domain_classifier(fit)
    assert accuracy == {"usps": 1.0, "svhn": 1.0}
    dark, bright = _domain_images(-1.0, 2, 2), _domain_images(1.0, 2, 3)
    mixed = torch.stack([dark[0], bright[0], dark[1], bright[1]])
    assert router.route(**{"pixel_values": mixed}) == ["usps", "svhn", "usps", "svhn"]
    routed = router(pixel_values=mixed).logits
    own = router(adapter_names=["usps", "svhn", "usps", "svhn"], pixel_values=mixed).logits
    assert torch.equal(routed, own)
    with pytest.raises(FusionError, match="not adapter names"):
        router.fit_domain_classifier({"mnist": fit["usps"]})


def test_fused_adapter_round_trips_through_the_hub_and_its_card_lists_its_sources(hub, two_adapters, tmp_path):
    from transformers import ViTImageProcessor

    from hf_transfer.hub import load_adapted_model, push_base_model, push_to_hub

    fused = _fuse(two_adapters, tmp_path, "cat")
    base_repo, repo = unique_repo("tiny-vit-base"), unique_repo("tiny-vit-fused")
    push_base_model(two_adapters[0].base_dir, base_repo)
    push_to_hub(fused, repo, base_model_repo_id=base_repo)
    files = hub.double.files(repo)
    assert "domain_discriminator.safetensors" not in files
    card = files["README.md"].decode()
    assert "## Fused adapters" in card and "| usps |" in card and "| svhn |" in card and "combination: cat" in card
    assert [s["name"] for s in json.loads(files["domain_adaptation.json"])["fusion"]["sources"]] == ["usps", "svhn"]
    assert str(tmp_path) not in card

    processor = ViTImageProcessor.from_pretrained(two_adapters[0].output_dir)
    inputs = example_inputs("image", two_adapters[0].example_path, processor)
    local, _ = load_adapted_model(fused)
    remote, _ = load_adapted_model(repo)
    with torch.no_grad():
        local_logits, remote_logits = local(**inputs).logits, remote(**inputs).logits
    assert torch.allclose(local_logits, remote_logits, atol=1e-5)
    assert not torch.allclose(local_logits, torch.tensor([two_adapters[0].local_logits]), atol=1e-3)  # it is fused


def _split_tree(root, shift: int) -> None:
    """root/{train,test}/<label>/*.png: the fixture's three labels, dark (shift 0) or bright images."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(shift)
    for split, n in (("train", 6), ("test", 3)):
        for k, name in enumerate(("negative", "neutral", "positive")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 40, size=(16, 16, 3)) + shift
                pixels[:, :, k] += 60
                Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(root / split / name / f"{i}.png")


def test_cli_fuses_and_evaluates_fusion_routing_and_own_adapters_on_every_domain(two_adapters, tmp_path, capsys):
    from hf_transfer.cli import main

    first, second = two_adapters
    _split_tree(tmp_path / "usps", 0)
    _split_tree(tmp_path / "svhn", 180)
    out = tmp_path / "fused"
    code = main(["fuse", str(first.output_dir), str(second.output_dir), "--output-dir", str(out),
                 "--names", "usps", "svhn", "--weights", "0.5", "0.5", "--combination", "linear",
                 "--domain", f"usps={tmp_path / 'usps'}", "--domain", f"svhn={tmp_path / 'svhn'}", "--route",
                 "--split", "test"])
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads(printed[: printed.rindex("}") + 1])
    evaluation = result["evaluation"]
    assert set(evaluation) == {"usps", "svhn"}
    for domain, row in evaluation.items():
        assert set(row) == {"fused", "routed", "own", "routing_accuracy"}
        assert row["own"]["num_examples"] == 9
        assert row["routing_accuracy"] == 1.0  # dark vs bright: every input reaches its own adapter
        assert row["routed"]["accuracy"] == row["own"]["accuracy"]  # so routing scores exactly as the own adapter
    info = RunInfo.read(out)
    assert info.fusion["evaluation"]["usps"]["fused"]["accuracy"] == evaluation["usps"]["fused"]["accuracy"]
    assert info.metrics["eval_svhn_accuracy"] == evaluation["svhn"]["fused"]["accuracy"]
    card = (out / "README.md").read_text()
    assert "| Domain | fused | routed | own |" in card
    from huggingface_hub import ModelCard

    names = {r.metric_name: r.metric_value for r in ModelCard(card).data.eval_results}
    assert names["usps accuracy (fused)"] == evaluation["usps"]["fused"]["accuracy"]
    assert names["svhn accuracy (own)"] == evaluation["svhn"]["own"]["accuracy"]


def test_cli_reports_a_bad_domain_and_a_bad_fusion_as_usage_errors(two_adapters, tmp_path, capsys):
    from hf_transfer.cli import main

    first, second = two_adapters
    args = ["fuse", str(first.output_dir), str(second.output_dir), "--output-dir", str(tmp_path / "f")]
    assert main([*args, "--domain", "usps"]) == 2
    assert "--domain takes NAME=DATASET" in capsys.readouterr().err
    assert main([*args, "--combination", "dare_ties"]) == 2
    assert "pass a density" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
