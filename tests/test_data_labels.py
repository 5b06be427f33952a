"""Aligning target labels to the source label space by name."""

from __future__ import annotations

import pytest
from datasets import ClassLabel, Dataset, Features, Value

from hf_transfer.data import align_labels, parse_label_mapping


def domain(texts, labels, names) -> Dataset:
    features = Features({"input": Value("string"), "label": ClassLabel(names=names)})
    return Dataset.from_dict({"input": texts, "label": labels}, features=features)


def named(ds: Dataset) -> list[str | None]:
    names = ds.features["label"].names
    return [names[i] if i >= 0 else None for i in ds["label"]]


def test_same_names_different_order_are_remapped_by_name():
    source = domain(["a", "b"], [0, 1], ["cat", "dog"])
    target = domain(["x", "y", "z"], [0, 1, 0], ["dog", "cat"])  # dog=0 in target
    _, aligned, names = align_labels(source, target)
    assert names == ["cat", "dog"]
    assert aligned.features["label"].names == ["cat", "dog"]
    assert list(aligned["label"]) == [1, 0, 1]
    assert named(aligned) == ["dog", "cat", "dog"]


def test_mismatch_raises_naming_labels_and_fix_then_mapping_fixes_it():
    source = domain(["a", "b"], [0, 1], ["negative", "positive"])
    target = domain(["x", "y", "z"], [1, 0, -1], ["neg", "pos"])
    with pytest.raises(ValueError) as info:
        align_labels(source, target)
    message = str(info.value)
    for text in ("['neg', 'pos']", "['negative', 'positive']", "label_mapping", "allow_extra_target_labels"):
        assert text in message
    mapping = parse_label_mapping("pos=positive, neg=negative")
    _, aligned, _ = align_labels(source, target, label_mapping=mapping)
    assert named(aligned) == ["positive", "negative", None]


def test_extra_target_label_opt_in_makes_it_unlabelled():
    source = domain(["a", "b"], [0, 1], ["cat", "dog"])
    target = domain(["x", "y", "z"], [0, 1, 2], ["cat", "dog", "fox"])
    with pytest.raises(ValueError, match=r"target labels \['fox'\] do not exist in the source"):
        align_labels(source, target)
    _, aligned, names = align_labels(source, target, allow_extra_target_labels=True)
    assert names == ["cat", "dog"] and list(aligned["label"]) == [0, 1, -1]


def test_target_missing_a_source_class_needs_opt_in():
    source = domain(["a", "b", "c"], [0, 1, 2], ["cat", "dog", "fox"])
    target = domain(["x"], [0], ["dog"])
    with pytest.raises(ValueError, match=r"source labels \['cat', 'fox'\] do not exist in the target"):
        align_labels(source, target)
    _, aligned, _ = align_labels(source, target, allow_missing_target_labels=True)
    assert list(aligned["label"]) == [1]


def test_unlabelled_target_passes_through_and_source_must_be_labelled():
    source = domain(["a"], [0], ["cat"])
    target = Dataset.from_dict({"input": ["x"], "label": [-1]})
    _, same, names = align_labels(source, target)
    assert same is target and names == ["cat"]
    with pytest.raises(ValueError, match="source domain must be labelled"):
        align_labels(target, source)


def test_bad_mapping_entries_are_reported():
    source = domain(["a"], [0], ["positive"])
    target = domain(["x"], [0], ["pos"])
    with pytest.raises(ValueError, match="keys.*'nope'"):
        align_labels(source, target, label_mapping={"nope": "positive"})
    with pytest.raises(ValueError, match="not source labels"):
        align_labels(source, target, label_mapping={"pos": "good"})


def test_parse_label_mapping():
    assert parse_label_mapping("pos=positive,neg=negative") == {"pos": "positive", "neg": "negative"}
    assert parse_label_mapping("  ") is None and parse_label_mapping(None) is None
    with pytest.raises(ValueError, match="target=source"):
        parse_label_mapping("pos:positive")
    with pytest.raises(ValueError, match="mapped twice"):
        parse_label_mapping("a=b,a=c")


def test_encode_labels_keeps_integer_ids_and_sorts_strings():
    from hf_transfer.data.labels import encode_labels

    assert encode_labels([2, 0, None, -1, 2.0], "d") == ([2, 0, -1, -1, 2], ["0", "1", "2"])
    assert encode_labels(["pos", " neg", "", float("nan"), "pos"], "d") == ([1, 0, -1, -1, 1], ["neg", "pos"])
    assert encode_labels([None, None], "d") == ([-1, -1], [])
    with pytest.raises(ValueError, match="non-integer numbers"):
        encode_labels([0, 1.5], "d")
