"""Rank-averaging ensemble: mean ranks by hand, each validator's direction respected, NaN last, bad tables refused."""

import math

import pytest

from hf_transfer.validators import EnsembleValidator, VALIDATORS, compute_validators
from tests.validator_candidates import candidates


def test_mean_ranks_by_hand_with_mixed_directions():
    # entropy: lower is better -> B(0.1)=1, A(0.5)=2, C(0.9)=3
    # bnm: higher is better    -> A(0.30)=1, C(0.20)=2, B(0.10)=3
    # snd: higher is better    -> B(3.0)=1, A(2.0)=2.5, C(2.0)=2.5 (tie shares the average)
    table = {
        "A": {"entropy": 0.5, "bnm": 0.30, "snd": 2.0},
        "B": {"entropy": 0.1, "bnm": 0.10, "snd": 3.0},
        "C": {"entropy": 0.9, "bnm": 0.20, "snd": 2.0},
    }
    result = EnsembleValidator(["entropy", "bnm", "snd"]).select(table)
    assert result.scores == pytest.approx({"A": (2 + 1 + 2.5) / 3, "B": (1 + 3 + 1) / 3, "C": (3 + 2 + 2.5) / 3})
    assert result.pick == "B"
    assert result.ranks["snd"] == {"A": 2.5, "B": 1.0, "C": 2.5}


def test_direction_decides_the_pick():
    # "hi" wins every higher-is-better column; read the other way round it would lose them all
    table = {"hi": {"bnm": 0.9, "snd": 4.0, "im": -1.0}, "lo": {"bnm": 0.1, "snd": 1.0, "im": -0.1}}
    assert EnsembleValidator().select(table).pick == "hi"
    table = {"sure": {"entropy": 0.05, "dev": 0.3}, "unsure": {"entropy": 1.0, "dev": 2.0}}
    assert EnsembleValidator().select(table).pick == "sure"  # lower-is-better validators: smaller wins


def test_missing_scores_rank_last_and_ties_go_to_the_first_listed():
    table = {"x": {"bnm": math.nan}, "y": {"bnm": 0.1}, "z": {"bnm": None}}
    result = EnsembleValidator(["bnm"]).select(table)
    assert result.pick == "y" and result.ranks["bnm"] == {"x": 2.5, "y": 1.0, "z": 2.5}
    tied = EnsembleValidator(["bnm"]).select({"first": {"bnm": 1.0}, "second": {"bnm": 1.0}})
    assert tied.pick == "first"


def test_metric_keys_are_read_and_other_columns_never_steer_the_pick():
    table = {
        "a": {"eval_target_entropy": 0.2, "target_bnm": 0.5, "eval_target_accuracy": 0.10, "eval_source_accuracy": 0.2},
        "b": {"eval_target_entropy": 0.4, "target_bnm": 0.3, "eval_target_accuracy": 0.99, "eval_source_accuracy": 0.9},
    }
    result = EnsembleValidator().select(table)  # the oracle accuracy and the labelled source column are ignored
    assert result.validators == ("entropy", "bnm") and result.pick == "a"


def test_planted_candidates_scored_end_to_end_the_good_one_wins():
    names = ["entropy", "im", "bnm", "snd", "class_ami"]
    table = {name: compute_validators(names, inputs) for name, inputs in candidates().items()}
    result = EnsembleValidator(names).select(table)
    assert result.pick == "good"
    assert result.scores["good"] < min(result.scores["collapsed"], result.scores["noisy"])


def test_bad_tables_and_members_are_named_errors():
    with pytest.raises(ValueError, match="score table is empty"):
        EnsembleValidator().select({})
    with pytest.raises(ValueError, match="Candidate 'b' has no 'snd' score"):
        EnsembleValidator(["snd"]).select({"a": {"snd": 1.0}, "b": {"bnm": 1.0}})
    with pytest.raises(ValueError, match="no known validator's scores; the known ones are"):
        EnsembleValidator().select({"a": {"eval_target_accuracy": 1.0}})
    with pytest.raises(ValueError, match="under two keys"):
        EnsembleValidator(["snd"]).select({"a": {"snd": 1.0, "eval_target_snd": 2.0}})
    with pytest.raises(ValueError, match="Unknown validator 'nope'"):
        EnsembleValidator(["nope"])
    with pytest.raises(ValueError, match="single validators"):
        EnsembleValidator([VALIDATORS["ensemble"]])
    with pytest.raises(ValueError, match="names a validator twice"):
        EnsembleValidator(["snd", "snd"])


def test_the_ensemble_reads_lower_mean_rank_as_better():
    ensemble = VALIDATORS["ensemble"]
    assert not ensemble.higher_is_better and ensemble.prefers(1.0, 2.0)
