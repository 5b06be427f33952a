"""One sweep candidate (``hf_transfer.sweep_candidates``): the collapse rules and the pruning callback."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from hf_transfer.sweep_candidates import Candidate, CandidateResult, _pruning_callback, collapse_reason  # noqa: E402


def test_collapse_rules():
    assert collapse_reason(source_accuracy=0.52, top_class_share=0.6, num_labels=2) is not None  # chance
    assert collapse_reason(source_accuracy=0.9, top_class_share=1.0, num_labels=3).startswith("it predicts one class")
    assert collapse_reason(source_accuracy=0.9, top_class_share=0.6, num_labels=3) is None
    assert collapse_reason(source_accuracy=None, top_class_share=None, num_labels=3) is None


def test_the_pruner_watches_the_validator_at_evaluation_steps():
    """Two finished trials set the median; a third that scores worse at step 2 is pruned there (not at the end)."""
    from types import SimpleNamespace

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for good in (2.0, 2.2):
        trial = study.ask()
        for step in (1, 2):
            trial.report(good, step)
        study.tell(trial, good)
    trial = study.ask()
    result = CandidateResult("c02", {}, status="finished")
    callback = _pruning_callback(trial, "eval_target_snd", result)
    state = SimpleNamespace(global_step=1, max_steps=3)
    callback.on_evaluate(None, SimpleNamespace(global_step=1, max_steps=1), None, metrics={"eval_target_snd": 1.0})
    assert result.intermediate == {"1": 1.0}  # the last step is recorded, not reported: nothing to prune any more
    assert study.trials[-1].intermediate_values == {}
    state.global_step = 2
    with pytest.raises(optuna.TrialPruned, match="pruned at step 2"):
        callback.on_evaluate(None, state, None, metrics={"eval_target_snd": 1.0, "eval_target_entropy": 0.1})
    assert result.intermediate == {"1": 1.0, "2": 1.0} and study.trials[-1].intermediate_values == {2: 1.0}
    callback.on_evaluate(None, state, None, metrics={"eval_source_accuracy": 1.0})  # another split: ignored


def test_a_candidate_is_its_overrides_and_its_record_round_trips(tmp_path):
    candidate = Candidate(3, {"training.method": "dann", "model.image_augmentation": ["flip", "stain"],
                              "training.bf16": False})
    assert candidate.name == "c03"
    assert candidate.overrides() == ["--training.method", "dann", "--model.image_augmentation", "flip", "stain",
                                     "--training.bf16", "false"]
    result = CandidateResult("c03", candidate.values, status="pruned", reason="pruned at step 2", seconds=1.5,
                             cpu_seconds=1.25, intermediate={"2": 0.5})
    result.write(tmp_path)
    assert CandidateResult.read(tmp_path / "candidate.json") == result
    assert not result.eligible
