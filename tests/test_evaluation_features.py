"""Validators during evaluation: logged as eval_target_<name>, from the target's logits/features only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_transfer.trainer import DomainAdaptationTrainer
from hf_transfer.validators import ValidationInputs, compute_validators
from tests.conftest import build_model, make_domain, train_args

VALIDATORS = ["entropy", "im", "bnm", "snd", "source_accuracy", "dev", "class_ami"]


def _reference_scores(model, source, target):
    """The same validators computed by hand: a plain forward pass + extract_features, outside the Trainer."""
    model.eval()

    def run(examples):
        pixels = torch.stack([e["pixel_values"] for e in examples])
        with torch.no_grad():
            return model(pixel_values=pixels).logits, model.extract_features(pixel_values=pixels)

    target_logits, target_features = run(target)
    source_logits, source_features = run(source)
    inputs = ValidationInputs(
        target_logits=target_logits, target_features=target_features, source_logits=source_logits,
        source_features=source_features, source_labels=torch.tensor([e["labels"] for e in source]),
    )
    return compute_validators(VALIDATORS, inputs), target_logits


def test_validators_are_logged_for_the_target_and_never_read_its_labels(tmp_path):
    source, target = make_domain(24, seed=1), make_domain(18, shift=2.0, seed=2, labelled=False)
    eval_source, eval_target = make_domain(12, seed=3), make_domain(15, shift=2.0, seed=4)
    model = build_model()
    trainer = DomainAdaptationTrainer(
        model=model, args=train_args(tmp_path, validators=VALIDATORS, per_device_eval_batch_size=4),
        source_dataset=source, target_dataset=target,
        # target listed first: the trainer evaluates the source first so DEV/source_accuracy can read it
        eval_datasets={"target": eval_target, "source": eval_source},
    )
    trainer.train()
    metrics = trainer.evaluate()
    expected, target_logits = _reference_scores(model, eval_source, eval_target)
    for key, value in expected.items():
        assert metrics[f"eval_{key}"] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    counts = np.bincount(target_logits.argmax(-1).numpy(), minlength=3)
    assert metrics["eval_target_top_class_share"] == pytest.approx(counts.max() / counts.sum())
    assert "eval_target_accuracy" in metrics  # the labelled (oracle) metric is still there, separately
    # the target's class probabilities, for EnsV across a sweep's candidates: those of this evaluation, in order
    from hf_transfer.evaluation_features import load_target_predictions, save_target_predictions

    assert load_target_predictions(tmp_path / "predictions") is None
    save_target_predictions(trainer, tmp_path / "predictions")
    assert load_target_predictions(tmp_path / "predictions") == pytest.approx(
        torch.softmax(target_logits.double(), -1).numpy(), abs=1e-6)
    logged = [entry for entry in trainer.state.log_history if "eval_target_snd" in entry]
    assert logged and logged[-1]["eval_target_snd"] == metrics["eval_target_snd"]
    # The target's labels are never read: scramble them and every validator score stays the same.
    scrambled = [dict(e, labels=(e["labels"] + 1) % 3) for e in eval_target]
    again = trainer.evaluate({"source": eval_source, "target": scrambled})
    for key in expected:
        assert again[f"eval_{key}"] == pytest.approx(metrics[f"eval_{key}"], rel=1e-9, abs=1e-12), key
    assert again["eval_target_loss"] != pytest.approx(metrics["eval_target_loss"])  # the labels did change


def test_metric_for_best_model_names_a_validator_and_load_best_model_at_end_works(tmp_path):
    source, target = make_domain(24, seed=1), make_domain(16, shift=2.0, seed=2, labelled=False)
    args = train_args(
        tmp_path, validators=["entropy"], metric_for_best_model="eval_target_snd", load_best_model_at_end=True,
        eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
    )
    assert args.validators == ["entropy", "snd"] and args.greater_is_better is True
    trainer = DomainAdaptationTrainer(
        model=build_model(), args=args, source_dataset=source, target_dataset=target,
        eval_datasets={"target": make_domain(9, shift=2.0, seed=4, labelled=False)},  # an unlabelled target split
    )
    trainer.train()
    scores = {e["step"]: e["eval_target_snd"] for e in trainer.state.log_history if "eval_target_snd" in e}
    assert len(scores) == 2 and trainer.state.best_metric == pytest.approx(max(scores.values()))
    best_step = max(scores, key=scores.get)
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best_step}")
    assert train_args(tmp_path, metric_for_best_model="target_entropy").greater_is_better is False
    # a labelled target metric is the user's explicit (oracle) choice and is left alone
    assert train_args(tmp_path, metric_for_best_model="eval_target_accuracy").validators == ["entropy", "im", "bnm", "snd"]


def test_bad_validator_names_list_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown validator 'sdn'.*'snd'"):
        train_args(tmp_path, validators=["sdn"])
    with pytest.raises(ValueError, match="Unknown validator 'entrophy'"):
        train_args(tmp_path, metric_for_best_model="eval_target_entrophy")
    with pytest.raises(ValueError, match="ensemble"):
        train_args(tmp_path, validators=["ensemble"])
    assert train_args(tmp_path, validators=["none"]).validators == []


def test_a_validator_needing_the_source_split_without_one_is_a_clear_error(tmp_path):
    trainer = DomainAdaptationTrainer(
        model=build_model(), args=train_args(tmp_path, validators=["dev"]),
        eval_datasets={"target": make_domain(6, shift=2.0, seed=4)},
    )
    with pytest.raises(ValueError, match=r"\['dev'\] read the source's held-out split"):
        trainer.evaluate()


def test_a_validator_that_cannot_score_a_split_logs_nan_and_evaluation_goes_on(tmp_path, caplog):
    trainer = DomainAdaptationTrainer(
        model=build_model(), args=train_args(tmp_path, validators=["entropy", "snd"]),
        eval_datasets={"target": make_domain(1, shift=2.0, seed=4)},  # SND compares rows: one row is not enough
    )
    with caplog.at_level("WARNING", logger="hf_transfer.evaluation_features"):
        metrics = trainer.evaluate()
    assert np.isnan(metrics["eval_target_snd"]) and np.isfinite(metrics["eval_target_entropy"])
    assert "Validator 'snd' could not score this evaluation" in caplog.text


def test_validators_during_training_are_a_subset_and_the_final_evaluation_computes_them_all(tmp_path):
    source, target = make_domain(24, seed=1), make_domain(16, shift=2.0, seed=2, labelled=False)
    args = train_args(tmp_path, validators=["entropy", "snd", "dev"], validators_during_training=["snd"],
                      eval_strategy="steps", eval_steps=1, max_steps=2)
    trainer = DomainAdaptationTrainer(
        model=build_model(), args=args, source_dataset=source, target_dataset=target,
        eval_datasets={"source": make_domain(9, seed=3), "target": make_domain(9, shift=2.0, seed=4)},
    )
    trainer.train()
    during = [e for e in trainer.state.log_history if "eval_target_loss" in e]
    assert len(during) == 2
    assert all("eval_target_snd" in e and "eval_target_dev" not in e and "eval_target_entropy" not in e
               for e in during)
    final = trainer.evaluate()  # after training: every validator
    assert {"eval_target_snd", "eval_target_dev", "eval_target_entropy"} <= set(final)


def test_validators_during_training_must_be_validators_and_keep_the_best_model_metric(tmp_path):
    with pytest.raises(ValueError, match=r"validators_during_training lists \['dev'\].*add them to validators"):
        train_args(tmp_path, validators=["entropy"], validators_during_training=["dev"])
    args = train_args(tmp_path, validators=["entropy", "snd"], validators_during_training=["entropy"],
                      metric_for_best_model="eval_target_snd")
    assert args.validators_during_training == ["entropy", "snd"]
    assert train_args(tmp_path).validators_during_training is None
