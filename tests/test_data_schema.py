"""A domain's arguments: parsed by HfArgumentParser from YAML or the command line, checked when made."""

from __future__ import annotations

import pytest
from transformers import HfArgumentParser

from hf_transfer.data import DomainDataArguments
from hf_transfer.data.schema import filter_key


def test_arguments_parse_with_hf_argument_parser():
    (args,) = HfArgumentParser(DomainDataArguments).parse_args_into_dataclasses(
        ["--dataset", "user/reviews", "--max_examples", "10", "--description", "amazon reviews"]
    )
    assert args.dataset == "user/reviews" and args.max_examples == 10 and args.split == "train"
    assert args.label_column == "label" and args.description == "amazon reviews"


def test_filter_values_parse_from_yaml_lists_and_the_command_line(tmp_path):
    from hf_transfer.cli import parse_train_arguments

    config = tmp_path / "run.yaml"
    config.write_text(
        "model:\n  model_name_or_path: some/model\n"
        "source:\n  dataset: org/hospitals\n  filter_column: center\n  filter_values: [0, 3, 4]\n"
        "target:\n  dataset: org/hospitals\n  split: test\n  filter_column: center\n  filter_values: 2\n"
        "training:\n  output_dir: out\n"
    )
    _, source, target, _, _ = parse_train_arguments(str(config), [])
    assert source.filter_values == ["0", "3", "4"] and target.filter_values == ["2"]
    _, _, target, _, _ = parse_train_arguments(str(config), ["--target.filter_values", "1", "2"])
    assert target.filter_values == ["1", "2"]


def test_filter_column_and_values_go_together_and_values_read_as_text():
    with pytest.raises(ValueError, match="filter_column .* and filter_values .* go together"):
        DomainDataArguments(dataset="org/hospitals", filter_column="center")
    with pytest.raises(ValueError, match="go together"):
        DomainDataArguments(dataset="org/hospitals", filter_values=["1"])
    args = DomainDataArguments(dataset="org/hospitals", filter_column="center", filter_values=[2.0, " 3 ", 4])
    assert args.filter_values == ["2", "3", "4"]
    assert DomainDataArguments(dataset="d", filter_column="c", filter_values=7).filter_values == ["7"]
    assert [filter_key(v) for v in (2, 2.0, "2", 2.5, " a ")] == ["2", "2", "2", "2.5", "a"]


def test_label_names_are_split_stripped_and_must_be_distinct():
    assert DomainDataArguments(dataset="d", label_names="normal, tumor").label_names == ["normal", "tumor"]
    with pytest.raises(ValueError, match="distinct"):
        DomainDataArguments(dataset="d", label_names=["a", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        DomainDataArguments(dataset="d", label_names=["a", " "])


def test_center_crop_is_checked_at_parse_time():
    assert DomainDataArguments(dataset="d", center_crop=0.5).center_crop == 0.5
    with pytest.raises(ValueError, match=r"center_crop must be in \(0, 1\], got 1.5"):
        DomainDataArguments(dataset="d", center_crop=1.5)
