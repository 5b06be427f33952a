"""The registry: names, metric keys and directions for the Trainer, and computing several validators at once."""

import numpy as np
import pytest

from hf_transfer.validators import (
    VALIDATORS,
    ValidationInputs,
    compute_validators,
    get_validator,
    greater_is_better,
    metric_key,
)
from hf_transfer.validators.bnm import BatchNuclearNorm
from hf_transfer.validators.entropy import Entropy

EXPECTED_DIRECTIONS = {
    "source_accuracy": True,
    "entropy": False,
    "im": False,
    "bnm": True,
    "snd": True,
    "dev": False,
    "class_ami": True,
    "ensemble": False,
    "ensv": True,
}


def test_every_validator_is_registered_under_its_own_name_with_its_direction():
    assert {name: v.higher_is_better for name, v in VALIDATORS.items()} == EXPECTED_DIRECTIONS
    assert all(v.name == name for name, v in VALIDATORS.items())


def test_an_unknown_validator_lists_the_known_ones_sorted():
    with pytest.raises(ValueError) as error:
        get_validator("snd2")
    assert "'snd2'" in str(error.value)
    assert str(sorted(EXPECTED_DIRECTIONS)) in str(error.value)
    with pytest.raises(ValueError, match="Unknown validator 'snd2'"):
        metric_key("snd2")


def test_metric_key_and_greater_is_better_for_training_arguments():
    assert metric_key("snd") == "eval_target_snd"
    assert metric_key("source_accuracy") == "eval_target_source_accuracy"
    for name, direction in EXPECTED_DIRECTIONS.items():
        if name in ("ensemble", "ensv"):
            continue
        assert greater_is_better(name) is direction
        assert greater_is_better(f"target_{name}") is direction
        assert greater_is_better(metric_key(name)) is direction


def test_greater_is_better_refuses_the_ensemble_and_unknown_metrics():
    with pytest.raises(ValueError, match="cannot be metric_for_best_model"):
        greater_is_better("eval_target_ensemble")
    with pytest.raises(ValueError, match="Unknown validator 'eval_source_accuracy'"):
        greater_is_better("eval_source_accuracy")  # the labelled source metric is not a validator


def test_compute_validators_returns_target_prefixed_scores_from_names_or_objects():
    logits = np.log(np.array([[0.5, 0.5], [0.5, 0.5]]))
    scores = compute_validators(["entropy", BatchNuclearNorm()], ValidationInputs(target_logits=logits))
    assert scores == pytest.approx({"target_entropy": np.log(2), "target_bnm": 1.0 / 2})  # σ = 1 for (1/2) ones(2, 2)
    assert compute_validators([Entropy()], ValidationInputs(target_logits=logits)).keys() == {"target_entropy"}


def test_compute_validators_names_the_missing_field_and_refuses_the_ensemble():
    with pytest.raises(ValueError, match="'dev' validator needs source_logits"):
        compute_validators(["entropy", "dev"], ValidationInputs(target_logits=np.zeros((3, 2))))
    with pytest.raises(ValueError, match="EnsembleValidator on their scores"):
        compute_validators(["ensemble"], ValidationInputs(target_logits=np.zeros((3, 2))))
    with pytest.raises(ValueError, match="Unknown validator"):
        compute_validators(["entropyy"], ValidationInputs(target_logits=np.zeros((3, 2))))
