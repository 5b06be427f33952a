"""EnsV: agreement with the candidates' averaged predictions, by hand; refused where one evaluation is scored."""

import numpy as np
import pytest

from hf_transfer.validators import (
    PredictionEnsembleValidator,
    ValidationInputs,
    compares_candidates,
    compute_validators,
    get_validator,
    greater_is_better,
)


def test_agreement_with_the_averaged_probabilities_by_hand():
    # 4 target examples, 2 classes. Averages: ex0 (0.9+0.8+0.2)/3=0.633 -> class 0; ex1 (0.6+0.1+0.3)/3=0.333 -> 1;
    # ex2 (0.7+0.6+0.3)/3=0.533 -> class 0; ex3 (0.4+0.3+0.9)/3=0.533 -> class 0.
    # Argmax by candidate: A (0,0,0,1) agrees on 0,2 = 2/4; B (0,1,0,1) on 0,1,2 = 3/4; C (1,1,1,0) on 1,3 = 2/4.
    first = {"A": [0.9, 0.6, 0.7, 0.4], "B": [0.8, 0.1, 0.6, 0.3], "C": [0.2, 0.3, 0.3, 0.9]}
    probabilities = {name: np.stack([p, 1 - np.asarray(p)], axis=1) for name, p in first.items()}
    result = PredictionEnsembleValidator().select(probabilities)
    assert result.pseudo_labels.tolist() == [0, 1, 0, 0]
    assert result.scores == pytest.approx({"A": 0.5, "B": 0.75, "C": 0.5})
    assert result.pick == "B"


def test_two_that_agree_outvote_a_confident_third_and_ties_go_to_the_first():
    agree = np.array([[0.8, 0.2], [0.2, 0.8], [0.8, 0.2]])
    outlier = np.array([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])  # averages (0.8+0.8+0.1)/3 = 0.57 for the majority
    result = PredictionEnsembleValidator().select({"x": agree, "y": agree.copy(), "z": outlier})
    assert result.scores == {"x": 1.0, "y": 1.0, "z": 0.0} and result.pick == "x"


def test_predictions_must_line_up_and_there_must_be_some():
    with pytest.raises(ValueError, match="same target examples"):
        PredictionEnsembleValidator().select({"a": np.ones((3, 2)) / 2, "b": np.ones((4, 2)) / 2})
    with pytest.raises(ValueError, match="at least one"):
        PredictionEnsembleValidator().select({})


def test_ensv_is_registered_and_refused_where_one_evaluation_is_scored(tmp_path):
    from tests.conftest import train_args

    validator = get_validator("ensv")
    assert compares_candidates(validator) and validator.higher_is_better
    with pytest.raises(ValueError, match="'ensv' compares finished candidates"):
        greater_is_better("eval_target_ensv")
    with pytest.raises(ValueError, match="'ensv' needs every candidate's results"):
        compute_validators(["ensv"], ValidationInputs(target_logits=np.zeros((2, 2))))
    with pytest.raises(ValueError, match="'ensv' compares finished candidates"):
        train_args(tmp_path, validators=["entropy", "ensv"])
