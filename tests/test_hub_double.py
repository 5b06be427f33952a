"""The Hub double must behave like the Hub for the real huggingface_hub client, or the other Hub
tests prove nothing. These checks use the client's public API only (no torch)."""

from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:
    from hub_double import INVALID_CREDENTIALS, git_blob_oid, validate_card_metadata
    from hub_fixtures import OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, hub, hub_server, patch_hf_hub, unique_repo  # noqa: F401
except ImportError:
    from tests.hub_double import INVALID_CREDENTIALS, git_blob_oid, validate_card_metadata
    from tests.hub_fixtures import OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, hub, hub_server, patch_hf_hub, unique_repo  # noqa: F401


def test_whoami_and_invalid_token(hub):
    api = HfApi()
    me = api.whoami()
    assert me["name"] == "user" and me["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token="hf_notAValidToken00000000000").whoami()
    assert err.value.response.status_code == 401
    assert err.value.response.headers["X-Error-Message"] == INVALID_CREDENTIALS


def test_create_commit_download_and_metadata_headers(hub):
    api = HfApi()
    repo = unique_repo("basic")
    url = api.create_repo(repo)
    assert url.repo_id == repo and url.endpoint == hub.endpoint
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(repo)
    assert err.value.response.status_code == 409
    assert api.create_repo(repo, exist_ok=True).repo_id == repo
    info = api.create_commit(repo, [CommitOperationAdd("a/b.txt", b"hello"), CommitOperationAdd("c.json", b"{}")],
                             commit_message="add files")
    assert hub.double.head(repo) == info.oid
    meta = get_hf_file_metadata(hf_hub_url(repo, "a/b.txt"))
    assert meta.commit_hash == info.oid and meta.etag == git_blob_oid(b"hello") and meta.size == 5
    assert open(hf_hub_download(repo, "a/b.txt")).read() == "hello"
    top = {entry.path for entry in api.list_repo_tree(repo)}
    deep = {entry.path for entry in api.list_repo_tree(repo, recursive=True)}
    assert top == {".gitattributes", "a", "c.json"} and deep == top | {"a/b.txt"}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.txt")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "a/b.txt", revision="no-such-branch")
    unchanged = api.create_commit(repo, [CommitOperationAdd("a/b.txt", b"hello")], commit_message="noop")
    assert unchanged.oid == info.oid  # the client skips unchanged files thanks to preupload's oid


def test_commits_are_atomic_and_guarded_by_parent(hub):
    api = HfApi()
    repo = unique_repo("atomic")
    api.create_repo(repo)
    first = api.create_commit(repo, [CommitOperationAdd("keep.txt", b"v1")], commit_message="v1")
    with pytest.raises(EntryNotFoundError):  # second operation is invalid: nothing of the commit applies
        api.create_commit(repo, [CommitOperationAdd("new.txt", b"x"), CommitOperationDelete("ghost.txt")],
                          commit_message="bad")
    hub.double.fail_next("commit", status=500)
    with pytest.raises(HfHubHTTPError):
        api.create_commit(repo, [CommitOperationAdd("keep.txt", b"v2")], commit_message="fails server-side")
    assert hub.double.head(repo) == first.oid
    assert hub.double.files(repo) == {".gitattributes": hub.double.files(repo)[".gitattributes"], "keep.txt": b"v1"}
    api.create_commit(repo, [CommitOperationAdd("keep.txt", b"v2")], commit_message="v2")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(repo, [CommitOperationAdd("keep.txt", b"v3")], commit_message="stale", parent_commit=first.oid)
    assert err.value.response.status_code == 412
    assert hub.double.files(repo)["keep.txt"] == b"v2"


def test_private_repos_hide_like_the_hub(hub, monkeypatch):
    repo = unique_repo("secret")
    HfApi().create_repo(repo, private=True)
    assert HfApi().repo_info(repo).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=OTHER_TOKEN).repo_info(repo)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).repo_info(repo)
    with pytest.raises(HfHubHTTPError) as err:  # a wrong token is a 401, not a "not found"
        HfApi(token="hf_notAValidToken00000000000").repo_info(repo)
    assert err.value.response.status_code == 401 and not isinstance(err.value, RepositoryNotFoundError)
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token=READ_TOKEN).create_commit(repo, [CommitOperationAdd("x", b"x")], commit_message="read-only")
    assert err.value.response.status_code == 403


def test_branches_pull_requests_and_revisions(hub):
    api = HfApi()
    repo = unique_repo("refs")
    api.create_repo(repo)
    base = api.create_commit(repo, [CommitOperationAdd("f.txt", b"main")], commit_message="main")
    pr = api.create_commit(repo, [CommitOperationAdd("f.txt", b"pr")], commit_message="pr", create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    api.create_branch(repo, branch="dev")
    api.create_commit(repo, [CommitOperationAdd("f.txt", b"dev")], commit_message="dev", revision="dev")
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]
    read = lambda rev: open(hf_hub_download(repo, "f.txt", revision=rev)).read()  # noqa: E731
    assert (read("main"), read("dev"), read("refs/pr/1"), read(base.oid)) == ("main", "dev", "pr", "main")
    assert api.repo_info(repo, revision="refs/pr/1").sha == pr.oid


def test_lfs_batch_upload_and_cdn_download(hub, monkeypatch):
    patch_hf_hub(monkeypatch, hub.endpoint, hub.home, disable_xet=True)
    hub.double.lfs_uploads = True
    api = HfApi()
    repo = unique_repo("lfs")
    api.create_repo(repo)
    payload = bytes(range(256)) * 40
    api.create_commit(repo, [CommitOperationAdd("w.safetensors", payload), CommitOperationAdd("r.txt", b"t")],
                      commit_message="lfs")
    entries = {e.path: e for e in api.list_repo_tree(repo)}
    assert entries["w.safetensors"].lfs is not None and entries["w.safetensors"].lfs.size == len(payload)
    assert entries["r.txt"].lfs is None
    meta = get_hf_file_metadata(hf_hub_url(repo, "w.safetensors"))
    assert meta.location.startswith(hub.double.cdn_url) and meta.size == len(payload)
    assert open(hf_hub_download(repo, "w.safetensors"), "rb").read() == payload
    assert hub.double.cdn_requests and not any(had_auth for *_, had_auth in hub.double.cdn_requests)


def test_card_metadata_validation_rejects_local_paths(hub):
    api = HfApi()
    repo = unique_repo("cards")
    api.create_repo(repo)
    bad = "---\nbase_model: /home/alice/ckpt\nmodel-index:\n- name: x\n  results:\n  - metrics: []\n---\nbody\n"
    assert len(validate_card_metadata(bad)) == 3
    with pytest.raises(ValueError, match="base_model"):
        api.create_commit(repo, [CommitOperationAdd("README.md", bad.encode())], commit_message="card")
    good = "---\nbase_model: org/model\ntags:\n- lora\n---\nbody\n"
    api.create_commit(repo, [CommitOperationAdd("README.md", good.encode())], commit_message="card")
    assert api.model_info(repo).card_data.base_model == "org/model"
