import json

import numpy as np
import pytest

from hf_transfer.demo import DemoSettings, make_digit_domains, run_demo, shift_to_target


def test_demo_domains_are_disjoint_shifted_and_split():
    domains = make_digit_domains(seed=0)
    sizes = [len(domains.source_train), len(domains.source_test), len(domains.target_train), len(domains.target_test)]
    assert sum(sizes) == 1797 and min(sizes) > 100
    source = np.stack([e["pixel_values"].numpy() for e in domains.source_train])
    target = np.stack([e["pixel_values"].numpy() for e in domains.target_train])
    # source is grey (equal channels), the target is coloured and brighter in the background
    assert np.allclose(source[:, 0], source[:, 1]) and not np.allclose(target[:, 0], target[:, 1])
    assert target.mean() > source.mean() + 0.1
    assert {e["labels"] for e in domains.target_test} == set(range(10))


def test_paper_ink_shift_is_a_per_image_colour_change_that_keeps_the_shape():
    rng = np.random.default_rng(0)
    digits = np.repeat(rng.random((20, 1, 16, 16)).astype(np.float32), 3, axis=1)
    shifted = shift_to_target(digits, seed=1, paper=(0.0, 0.6), ink=(0.7, 1.0))
    assert shifted.shape == digits.shape and shifted.min() >= 0.0 and shifted.max() <= 1.0
    # every image gets its own tint: channel means differ across images and within an image
    channel_means = shifted.mean(axis=(2, 3))
    assert channel_means.std(axis=0).min() > 0.05 and not np.allclose(channel_means[:, 0], channel_means[:, 1])
    # ink stays brighter than paper, so the shape survives: standardising each image channel
    # (what a mean-removing LoRA update + LayerNorm can learn) gives back the source exactly
    def standardise(x):
        return (x - x.mean(axis=(2, 3), keepdims=True)) / x.std(axis=(2, 3), keepdims=True)

    np.testing.assert_allclose(standardise(shifted), standardise(digits), atol=1e-4)
    # deterministic per seed, different across seeds
    np.testing.assert_array_equal(shifted, shift_to_target(digits, seed=1))
    assert not np.allclose(shifted, shift_to_target(digits, seed=2))


def test_demo_runs_end_to_end_and_writes_adapter_and_card(tmp_path, capsys):
    settings = DemoSettings(hidden_size=32, num_layers=1, pretrain_epochs=1, adapt_steps=3, batch_size=16)
    results = run_demo(output_dir=tmp_path, seed=0, settings=settings)
    printed = capsys.readouterr().out
    assert "| dann" in printed and "| source_only" in printed and "target" in printed
    # each stage says when it starts; the Trainer's log dicts are not printed raw; it ends with the table, the shift
    # (A-distance before and after, where the pictures are) and a one-line verdict
    for stage in ("[1/3]", "[2/3] LoRA source_only", "[3/3] LoRA dann"):
        assert stage in printed, stage
    assert "{'" not in printed
    lines = printed.rstrip().splitlines()
    assert lines[-5].startswith("| dann ") and lines[-2] == ""
    gain = 100 * results["target_gain"]
    assert lines[-1].startswith("Verdict: DANN ") and f"({gain:+.1f} points: target accuracy" in lines[-1]
    for method in ("source_only", "dann"):  # the printed table holds the returned numbers
        r = results[method]
        assert f"| {method:<11} | {r['source_accuracy']:10.3f} | {r['source_f1']:9.3f} |" in printed
    assert results["target_gain"] == pytest.approx(results["dann"]["target_accuracy"] - results["source_only"]["target_accuracy"])
    adapter = tmp_path / "dann"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "domain_discriminator.safetensors").exists()
    info = json.loads((adapter / "domain_adaptation.json").read_text())
    assert info["baseline"]["method"] == "source_only"
    card = (adapter / "README.md").read_text()
    assert "domain-adaptation" in card and str(tmp_path) not in card
    assert json.loads((tmp_path / "demo_results.json").read_text())["seed"] == 0
    # Just before the verdict: the A-distance before and after adaptation, and where the pictures are.
    shift = results["shift"]
    assert info["shift"]["a_distance_before"] == shift["a_distance_before"]
    last = printed.strip().splitlines()[-4:-2]
    assert last[0].startswith("Proxy A-distance") and f"{shift['a_distance_before']:.3f} before adaptation" in last[0]
    assert last[1].startswith("Pictures: ") or "matplotlib is not installed" in last[1]
    for picture in shift["pictures"]:
        assert picture.endswith(".png") and picture.split("/")[-1] in card
