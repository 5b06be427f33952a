"""What never leaves the machine: local paths, the user name and tokens are recognised and scrubbed."""

from __future__ import annotations

import os

import pytest

import hf_transfer.privacy as privacy
from hf_transfer.privacy import LOCAL_DATA, TOKEN_PATTERN, is_hub_id, looks_like_local_path, sanitize, scrub_text

SECRET = "hf_abcdefghijklmnopqrstuvwxyz012345"


def test_sanitize_and_path_detection():
    assert looks_like_local_path("/data/x") and looks_like_local_path("~/x") and looks_like_local_path("C:\\d\\x")
    assert looks_like_local_path("./ckpt") and looks_like_local_path("runs/exp1/checkpoint-500")
    assert not looks_like_local_path("google/vit-base-patch16-224") and not looks_like_local_path("bert-base-uncased")
    cleaned = sanitize({"a": "/srv/data", "b": ["see /srv/data/x.csv now", "org/ds"], "c": 3, "d": SECRET})
    assert cleaned == {"a": LOCAL_DATA, "b": [f"see {LOCAL_DATA} now", "org/ds"], "c": 3, "d": "[redacted]"}
    assert sanitize("https://huggingface.co/org/model") == "https://huggingface.co/org/model"
    # Hub git refs are revisions, not paths; a folder that merely starts with "refs" still is a path
    assert sanitize("refs/convert/parquet") == "refs/convert/parquet" and sanitize("refs/pr/3") == "refs/pr/3"
    assert looks_like_local_path("refs/convert/parquet/extra") and looks_like_local_path("/refs/convert/parquet")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("google/vit-base-patch16-224", True),
        ("bert-base-uncased", True),
        ("org/name.v2", True),
        ("/abs/path", False),
        ("./relative", False),
        ("a/b/c", False),
        ("-leading-dash/x", False),
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_is_hub_id(value, expected):
    assert is_hub_id(value) is expected


def test_scrub_text_removes_tokens_home_and_user_name(monkeypatch):
    monkeypatch.setattr(privacy, "_username", lambda: "alice")
    home = os.path.expanduser("~")
    text = f"token {SECRET} api_org_ABCDEFGHIJKLMNOPQRST in {home}/runs by alice (not malice)"
    scrubbed = scrub_text(text)
    assert SECRET not in scrubbed and "api_org_" not in scrubbed and scrubbed.count("[redacted]") == 2
    assert "by [user] (not malice)" in scrubbed
    if home not in ("", "/"):
        assert home not in scrubbed and f"{LOCAL_DATA}/runs" in scrubbed
    # short hf_ strings are not tokens
    assert TOKEN_PATTERN.search("hf_short") is None and scrub_text("hf_transfer") == "hf_transfer"


def test_sanitize_keeps_shape_and_non_strings():
    assert sanitize(("x", 1, None, 2.5, True)) == ["x", 1, None, 2.5, True]
    assert sanitize({1: {"nested": ["/tmp/a b"]}}) == {"1": {"nested": [f"{LOCAL_DATA} b"]}}
    # a path with spaces inside free text is replaced where it appears, the text around it kept
    assert sanitize("saved to /home/x/out today") == f"saved to {LOCAL_DATA} today"
