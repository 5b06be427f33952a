"""The command line's own surface, as a newcomer meets it (issue 14): what one run prints, the field help,
overrides, resuming and output folders."""

from __future__ import annotations

import logging
import warnings

from hf_transfer.cli import main


def test_a_run_logs_each_line_once_and_no_deprecation_warning_of_ours(tiny_setup, caplog):
    _, path = tiny_setup
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        assert main(["train", str(path), "--training.max_steps", "1"]) == 0
    trainable = [r for r in caplog.records if "trainable params" in r.getMessage()]
    assert len(trainable) == 1, [r.getMessage() for r in trainable]
    ours = [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]
    assert not ours
