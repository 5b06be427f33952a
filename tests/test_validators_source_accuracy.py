"""Source validation accuracy: counted by hand, -100 rows skipped, chance for a collapse."""

import numpy as np
import pytest
import torch

from hf_transfer.validators.base import ValidationInputs
from hf_transfer.validators.source_accuracy import SourceAccuracy


def test_accuracy_by_hand_skips_unlabelled_rows():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 2, -100])  # right, wrong, right, unlabelled
    assert SourceAccuracy()(ValidationInputs(source_logits=logits, source_labels=labels)) == pytest.approx(2 / 3)


def test_a_collapsed_model_scores_chance_on_a_balanced_source_and_a_good_one_wins():
    labels = np.repeat(np.arange(3), 10)
    good = 5.0 * np.eye(3)[labels]
    collapsed = 5.0 * np.eye(3)[np.zeros(30, dtype=int)]
    validator = SourceAccuracy()
    good_score = validator(ValidationInputs(source_logits=good, source_labels=labels))
    collapsed_score = validator(ValidationInputs(source_logits=collapsed, source_labels=labels))
    assert good_score == 1.0 and collapsed_score == pytest.approx(1 / 3)
    assert validator.higher_is_better and validator.prefers(good_score, collapsed_score)


def test_missing_labels_and_all_unlabelled_rows_are_named_errors():
    with pytest.raises(ValueError, match="needs source_labels"):
        SourceAccuracy()(ValidationInputs(source_logits=np.ones((2, 3))))
    with pytest.raises(ValueError, match="every label is -100"):
        SourceAccuracy()(ValidationInputs(source_logits=np.ones((2, 3)), source_labels=np.array([-100, -100])))
    with pytest.raises(ValueError, match="3 rows but source_labels has 2"):
        SourceAccuracy()(ValidationInputs(source_logits=np.ones((3, 3)), source_labels=np.array([0, 1])))
