import json
import math
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from hf_transfer.trainer import DomainAdaptationTrainer, NonFiniteLossError
from hf_transfer.training_args import DomainAdaptationArguments
from tests.conftest import CHECKPOINTING, build_model, make_domain, train_args


def _trainer(tmp_path, model=None, source=None, target=None, **kwargs):
    eval_datasets = kwargs.pop("eval_datasets", None)
    callbacks = kwargs.pop("callbacks", None)
    return DomainAdaptationTrainer(
        model=model or build_model(),
        args=train_args(tmp_path, **kwargs),
        source_dataset=source if source is not None else make_domain(24, seed=1),
        target_dataset=target if target is not None else make_domain(16, shift=2.0, seed=2, labelled=False),
        eval_datasets=eval_datasets,
        callbacks=callbacks,
    )


def _trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_training_logs_domain_metrics_and_lambda_through_the_trainer(tmp_path):
    trainer = _trainer(tmp_path, max_steps=5)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "domain_loss" in h]
    assert len(logged) == 5
    for entry in logged:
        assert {"loss", "classification_loss", "domain_loss", "domain_accuracy", "grl_lambda"} <= set(entry)
        assert entry["domain_accuracy"] * 8 == pytest.approx(round(entry["domain_accuracy"] * 8))  # k of 8 rows right
    lambdas = [h["grl_lambda"] for h in logged]
    expected = [2 / (1 + math.exp(-10 * s / 5)) - 1 for s in range(5)]
    assert lambdas == pytest.approx(expected, abs=1e-6)


def test_per_domain_evaluation_metrics(tmp_path):
    source_eval = make_domain(9, seed=5)
    target_eval = make_domain(9, shift=2.0, seed=6)
    trainer = _trainer(tmp_path, max_steps=2, eval_datasets={"source": source_eval, "target": target_eval})
    trainer.train()
    metrics = trainer.evaluate()
    from sklearn.metrics import f1_score

    model = trainer.model.eval()
    for domain, examples in (("source", source_eval), ("target", target_eval)):
        with torch.no_grad():
            logits = model(pixel_values=torch.stack([e["pixel_values"] for e in examples])).logits
        labels = torch.tensor([e["labels"] for e in examples])
        predictions = logits.argmax(-1)
        assert metrics[f"eval_{domain}_accuracy"] == pytest.approx((predictions == labels).float().mean().item())
        assert metrics[f"eval_{domain}_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))


def test_source_only_leaves_the_backbone_untouched_by_the_domain_loss(tmp_path):
    """source_only and dann with λ=0 and weight 0 are the same run; dann with weight > 0 differs."""
    runs = {}
    for name, kwargs in {
        "source_only": dict(method="source_only"),
        "dann_w0": dict(method="dann", domain_loss_weight=0.0),
        "dann": dict(method="dann"),
    }.items():
        trainer = _trainer(tmp_path / name, max_steps=3, max_grad_norm=0.0, **kwargs)
        trainer.train()
        runs[name] = {n: p for n, p in _trainable(trainer.model).items() if "lora_" in n}
    for name in runs["source_only"]:
        assert torch.equal(runs["source_only"][name], runs["dann_w0"][name])
    assert any(not torch.equal(runs["source_only"][n], runs["dann"][n]) for n in runs["dann"])


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    big = _trainer(tmp_path / "big", max_steps=1, per_device_train_batch_size=4, gradient_accumulation_steps=1, max_grad_norm=0.0)
    big.train()
    accumulated = _trainer(
        tmp_path / "ga", max_steps=1, per_device_train_batch_size=2, gradient_accumulation_steps=2, max_grad_norm=0.0
    )
    accumulated.train()
    a, b = _trainable(big.model), _trainable(accumulated.model)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_resume_from_checkpoint_restores_everything(tmp_path):
    straight = _trainer(tmp_path / "straight", max_steps=6, save_strategy="steps", save_steps=3)
    straight.train()
    final = _trainable(straight.model)

    checkpoint = tmp_path / "straight" / "out" / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").exists() and (checkpoint / "domain_discriminator.safetensors").exists()
    resumed = _trainer(tmp_path / "resumed", max_steps=6, save_strategy="steps", save_steps=3)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for name, value in _trainable(resumed.model).items():
        assert torch.allclose(value, final[name], atol=1e-6), name
    lam = [h["grl_lambda"] for h in resumed.state.log_history if "grl_lambda" in h]
    lam_straight = [h["grl_lambda"] for h in straight.state.log_history if "grl_lambda" in h]
    assert lam == pytest.approx(lam_straight)


def test_save_model_writes_adapter_discriminator_and_metadata(tmp_path):
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "domain_discriminator.safetensors"} <= set(os.listdir(out))
    meta = json.loads((out / "domain_adaptation.json").read_text())
    assert meta["method"] == "dann" and meta["grl"]["schedule"] == "dann" and meta["task"] == "image-classification"
    disc = load_file(str(out / "domain_discriminator.safetensors"))
    live = trainer.model.domain_loss.discriminator.state_dict()
    assert set(disc) == set(live) and all(torch.equal(disc[k], live[k]) for k in disc)


class _PoisonAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                next(p for n, p in model.named_parameters() if "lora_A" in n).fill_(float("nan"))


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, max_steps=6, save_strategy="steps", save_steps=2, callbacks=[_PoisonAtStep(2)])
    with pytest.raises(NonFiniteLossError, match=r"at step 3.*checkpoint-2, is from before step 3 and intact"):
        trainer.train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    weights = load_file(str(checkpoint / "adapter_model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (tmp_path / "out" / "checkpoint-4").exists()


def test_non_finite_loss_is_found_without_a_per_step_read_and_says_no_checkpoint_exists(tmp_path):
    """Checked on the device every step, read at logging steps, before saves and at the end: still names the step."""
    trainer = _trainer(tmp_path, max_steps=5, logging_steps=100, callbacks=[_PoisonAtStep(1)])
    with pytest.raises(NonFiniteLossError, match=r"at step 2, found at step 5") as error:
        trainer.train()
    assert "No checkpoint of this run exists yet" in str(error.value) and "intact" not in str(error.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_non_finite_loss_is_caught_before_the_checkpoint_after_it(tmp_path):
    trainer = _trainer(
        tmp_path, max_steps=6, logging_steps=100, save_strategy="steps", save_steps=2, callbacks=[_PoisonAtStep(2)]
    )
    with pytest.raises(NonFiniteLossError, match=r"at step 3, found at step 4.*checkpoint-2"):
        trainer.train()
    assert (tmp_path / "out" / "checkpoint-2").is_dir() and not (tmp_path / "out" / "checkpoint-4").exists()


def test_activation_checkpointing_trains_every_lora_layer_as_without_it(tmp_path):
    plain = _trainer(tmp_path / "plain", max_steps=2)
    plain.train()
    checkpointed = _trainer(tmp_path / "ckpt", max_steps=2, **{CHECKPOINTING: True})
    assert checkpointed.args.ddp_find_unused_parameters is False
    checkpointed.train()
    assert checkpointed.model.is_activation_checkpointing
    a, b = _trainable(plain.model), _trainable(checkpointed.model)
    assert sum("lora_A" in n for n in b) == 8  # query + value in both layers, A and B
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_bf16_passes_through_to_the_trainer(tmp_path):
    fp32 = _trainer(tmp_path / "fp32", max_steps=2)
    fp32.train()
    bf16 = _trainer(tmp_path / "bf16", max_steps=2, bf16=True)
    bf16.train()
    assert bf16.accelerator.mixed_precision == "bf16"
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (fp32, bf16)]
    assert losses[0] != losses[1] and losses[1][0] == pytest.approx(losses[0][0], rel=0.02)  # autocast ran, ≈ fp32
    assert {p.dtype for p in _trainable(bf16.model).values()} == {torch.float32}  # adapter and head stay fp32


def test_bad_input_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="source dataset is empty"):
        _trainer(tmp_path, source=[])
    with pytest.raises(ValueError, match="target dataset is empty"):
        _trainer(tmp_path, target=[])
    with pytest.raises(TypeError, match="DomainAdaptationModel"):
        DomainAdaptationTrainer(model=torch.nn.Linear(2, 2), args=train_args(tmp_path))
    with pytest.raises(ValueError, match=r"Unknown alignment method 'wasserstein'; choose one of .*dann.*source_only"):
        DomainAdaptationArguments(output_dir=str(tmp_path), method="wasserstein")


def test_label_sets_that_differ_between_domains_are_refused(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    def ds(names):
        return Dataset.from_dict({"x": [1.0, 2.0], "label": [0, 1]}, features=Features({"x": Value("float32"), "label": ClassLabel(names=names)}))

    model = build_model()
    args = train_args(tmp_path)
    with pytest.raises(ValueError, match="Label sets differ between domains"):
        DomainAdaptationTrainer(model=model, args=args, source_dataset=ds(["a", "b"]), target_dataset=ds(["a", "z"]))


def test_target_labels_in_unsupervised_mode_warn_and_are_dropped(tmp_path, caplog):
    labelled_target = make_domain(8, shift=2.0, seed=3)
    with caplog.at_level("WARNING"):
        trainer = _trainer(tmp_path, target=labelled_target)
    assert "dropped" in caplog.text
    item = trainer.train_dataset[0]
    assert all(t["labels"] == -100 for t in item["target"])


def test_model_card_goes_through_the_trainers_public_card_hook(tmp_path):
    from huggingface_hub import ModelCard

    trainer = _trainer(tmp_path, max_steps=1)
    trainer.save_model(str(tmp_path / "saved"))
    trainer.create_model_card(tags=["my-project"], license="mit", output_dir=str(tmp_path / "saved"))
    card = ModelCard.load(tmp_path / "saved" / "README.md")
    assert {"my-project", "dann", "domain-adaptation"} <= set(card.data.tags) and card.data.license == "mit"


def test_a_dann_step_reads_no_device_value_on_the_host_beyond_a_plain_lora_step(tmp_path):
    """benchmarks/profile_sync.py's count: no .item()/bool()/boolean mask/tolist per step (GPU stream syncs)."""
    from tests.benchmark_scripts import load_script

    profile_sync = load_script("profile_sync")
    plain = profile_sync.plain_lora(str(tmp_path / "plain"), logging_nan_inf_filter=False)
    dann = profile_sync.domain_adaptation(str(tmp_path / "dann"), "dann", logging_nan_inf_filter=False)
    assert sum(plain["step"].values()) == 0  # the measure finds nothing in a plain step ...
    assert dann["step"] == plain["step"], dict(dann["step"])  # ... nor in a DANN step
    assert sum(dann["optimizer"].values()) > 0  # ... while it does see reads (AdamW's host-side step counters)


def test_label_smoothing_factor_reaches_the_classification_loss_in_training_only(tmp_path):
    """The Trainer's label_smoothing_factor applies to the labelled rows' loss (as for a plain Trainer)."""
    import torch.nn.functional as F

    trainer = _trainer(tmp_path, max_steps=1, label_smoothing_factor=0.2, method="source_only")
    model = trainer.model
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        model.train()
        smoothed = trainer.compute_loss(model, dict(batch))
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "domain_labels")}).logits
        model.eval()
        plain = trainer.compute_loss(model, dict(batch))
    labels = batch["labels"]
    rows = labels != -100
    expected = F.cross_entropy(logits[rows], labels[rows], label_smoothing=0.2)
    assert float(smoothed) == pytest.approx(float(expected), rel=1e-5)
    assert float(plain) == pytest.approx(float(F.cross_entropy(logits[rows], labels[rows])), rel=1e-5)
    assert float(smoothed) != pytest.approx(float(plain), rel=1e-3)
