"""The saved folder's run info: one typed record, both formats read, unknown keys kept."""

import json
from pathlib import Path

import pytest

from hf_transfer.artifacts import RUN_INFO_FORMAT, RUN_INFO_NAME, RunInfo

FIXTURE = Path(__file__).parent / "fixtures" / "saved_v0_1"


def test_a_format_1_file_gets_its_objective_rebuilt_from_the_old_blocks():
    info = RunInfo.read(FIXTURE / "dann")
    assert info.format == 1 and info.method == "dann"
    assert info.objective == {"method": "dann", "terms": [
        {"method": "dann", "weight": 0.5, "settings": {"class_weighting": True}},
        {"method": "mcc", "weight": 0.5, "settings": {"temperature": 2.5}},
    ]}
    cdan = RunInfo.read(FIXTURE / "cdan")
    assert cdan.domain_head_kind == "conditional"
    assert cdan.objective["terms"][0]["settings"]["entropy_conditioning"] is True


def test_write_is_the_current_format_and_keeps_keys_it_does_not_know(tmp_path):
    raw = json.loads((FIXTURE / "mcc" / RUN_INFO_NAME).read_text())
    raw["added_by_a_later_version"] = {"x": 1}
    info = RunInfo.from_dict(raw)
    info.metrics["eval_target_accuracy"] = 0.5
    info.write(tmp_path)
    written = json.loads((tmp_path / RUN_INFO_NAME).read_text())
    assert written["format"] == RUN_INFO_FORMAT and written["added_by_a_later_version"] == {"x": 1}
    assert "mcc" not in written and written["objective"]["terms"][0]["method"] == "mcc"
    assert RunInfo.read(tmp_path) == RunInfo.from_dict(written)


def test_a_folder_without_run_info_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder saved by hf_transfer"):
        RunInfo.read(tmp_path)
