"""ValidationInputs and the shared maths: conversions, clear errors for missing or bad fields, entropy by hand."""

import math

import numpy as np
import pytest
import torch

from hf_transfer.validators.base import ValidationInputs, Validator, entropy, l2_normalize, softmax


def test_torch_inputs_of_any_dtype_become_float64_arrays_and_labels_int64():
    logits = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.bfloat16, requires_grad=True)
    inputs = ValidationInputs(target_logits=logits, source_labels=torch.tensor([1, -100]))
    array = inputs.require("target_logits", "demo")
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [[1.0, 2.0], [3.0, -1.0]])
    labels = inputs.require("source_labels", "demo")
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, -100])


def test_a_missing_field_names_the_field_and_the_validator():
    with pytest.raises(ValueError, match=r"'snd' validator needs target_logits"):
        ValidationInputs(target_features=np.ones((3, 2))).require("target_logits", "snd")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("target_logits", np.ones(3), "two-dimensional"),
        ("source_labels", np.ones((3, 1), dtype=int), "one-dimensional"),
        ("target_logits", np.array([[0.0, np.nan]]), "NaN"),
        ("target_features", np.zeros((0, 4)), "empty target_features"),
    ],
)
def test_bad_fields_are_refused_with_what_is_wrong(field, value, message):
    with pytest.raises(ValueError, match=message):
        ValidationInputs(**{field: value}).require(field, "demo")


def test_an_unknown_field_lists_the_real_ones():
    with pytest.raises(ValueError, match="target_labels.*'source_features'"):
        ValidationInputs().require("target_labels", "demo")


def test_entropy_of_known_distributions_by_hand():
    rows = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25] * 4, [0.75, 0.25, 0.0, 0.0]])
    expected = [math.log(2), 0.0, math.log(4), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))]
    np.testing.assert_allclose(entropy(rows), expected, rtol=0, atol=1e-12)
    assert entropy(rows)[1] == 0.0  # 0 log 0 = 0 exactly, not NaN


def test_softmax_of_huge_logits_neither_overflows_nor_loses_rows():
    probabilities = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0], [math.log(3), 0.0]]))
    np.testing.assert_allclose(probabilities, [[1.0, 0.0], [0.5, 0.5], [0.75, 0.25]], atol=1e-12)


def test_l2_normalize_keeps_a_zero_row_at_zero():
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])


class _Lower(Validator):
    name = "lower_demo"
    higher_is_better = False
    required = ("target_logits",)

    def compute(self, inputs):
        return float(inputs.require("target_logits", self.name).sum())


def test_prefers_follows_the_declared_direction_and_call_checks_required_fields_first():
    validator = _Lower()
    assert validator.prefers(1.0, 2.0) and not validator.prefers(2.0, 1.0) and not validator.prefers(1.0, 1.0)
    with pytest.raises(ValueError, match="'lower_demo' validator needs target_logits"):
        validator(ValidationInputs())
    assert validator(ValidationInputs(target_logits=np.ones((2, 2)))) == 4.0
