"""A small, stdlib-only double of the Hugging Face Hub HTTP API.

Why: push/load round trips must be tested offline against the *real* ``huggingface_hub``
client, so the double speaks the wire protocol that client actually uses (checked against
huggingface_hub 2.4 sources): whoami, repo create/delete/info, preupload, NDJSON commits,
resolve (GET/HEAD with ETag / X-Repo-Commit / Content-Length, LFS files redirected to a
separate "CDN" origin), tree listing, refs, branches, pull requests (``create_pr=1``),
README metadata validation and the git-LFS batch API (for ``HF_HUB_DISABLE_XET=1``).

State lives in memory. Every commit creates an immutable snapshot; a branch/PR ref only
moves once the whole commit has been validated, so commits are atomic. Faults can be
injected per route (``HubDouble.fail_next``) to test interrupted pushes.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

WRITE_TOKEN = "hf_doubleWriteTokenForUser00000000"
READ_TOKEN = "hf_doubleReadTokenForUser000000000"
OTHER_TOKEN = "hf_doubleWriteTokenForOther0000000"

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_DEFAULT_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".zip", ".npz")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def git_blob_oid(data: bytes) -> str:
    """Git's object id for a blob (what the Hub reports as ``oid``/ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n"
        ).encode()

    @property
    def oid(self) -> str:
        """Git oid: of the content for regular files, of the pointer file for LFS files."""
        return git_blob_oid(self.pointer if self.lfs else self.data)


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    files: dict[str, Blob]
    date: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    converts: dict[str, str] = field(default_factory=dict)  # "parquet" -> commit of refs/convert/parquet
    created_at: str = field(default_factory=_now)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def url_prefix(self, base: str) -> str:
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"{base}/{prefix}{self.repo_id}"


@dataclass(frozen=True)
class Token:
    user: str
    write: bool


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def _error(status: int, message: str, code: str | None = None, **extra_headers: str) -> Response:
    headers = {"X-Error-Message": message, **extra_headers}
    if code:
        headers["X-Error-Code"] = code
    return _json(status, {"error": message}, headers)


class HubDouble:
    """Hub state plus request handling, independent of sockets (``handle`` is a pure dispatcher)."""

    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {
            WRITE_TOKEN: Token("user", write=True),
            READ_TOKEN: Token("user", write=False),
            OTHER_TOKEN: Token("other-user", write=True),
        }
        self.orgs: dict[str, set[str]] = {"user": {"hf-transfer-org"}, "other-user": set()}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.lfs_uploads = False  # mark binary files "lfs" in preupload (the client then needs Xet or LFS)
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had_auth) — never the token
        self.cdn_requests: list[tuple[str, str, bool]] = []
        self._faults: dict[str, list[tuple[int, str]]] = {}
        self._tickets: dict[str, tuple[str, int]] = {}
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        self.base_url = ""
        self.cdn_url = ""

    # ----------------------------------------------------------------- test helpers
    def fail_next(self, route: str, status: int = 500, message: str = "Injected failure") -> None:
        """Make the next request on ``route`` (commit, preupload, lfs_batch, lfs_upload, resolve,
        create_repo) fail with ``status``; the commit route fails after staging, before the ref moves."""
        with self._lock:
            self._faults.setdefault(route, []).append((status, message))

    def _take_fault(self, route: str) -> Response | None:
        with self._lock:
            queue = self._faults.get(route)
            if queue:
                status, message = queue.pop(0)
                return _error(status, message)
        return None

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        repo = self.repo(repo_id, repo_type)
        oid = self._resolve_rev(repo, revision)
        assert oid is not None, f"unknown revision {revision}"
        return {path: blob.data for path, blob in repo.commits[oid].files.items()}

    def publish(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "dataset", revision: str = "main") -> str:
        """Put ``files`` in public repo ``repo_id`` (any namespace) without HTTP: a third party's repo that already
        exists on the Hub. ``revision="refs/convert/parquet"`` writes the Hub's parquet-export ref instead of a branch."""
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                repo = Repo(repo_id, repo_type, private=False)
                self.repos[(repo_type, repo_id)] = repo
            convert = re.fullmatch(r"refs/convert/(\w+)", revision)
            parent = repo.converts.get(convert[1]) if convert else repo.branches.get(revision)
            blobs = {path: Blob(data, lfs=not path.endswith((".md", ".json", ".py", ".gitattributes"))) for path, data in files.items()}
            self.lfs_store.update({blob.sha256: blob.data for blob in blobs.values() if blob.lfs})
            commit = self._new_commit(repo, parent, "Upload dataset", "", blobs)
            if convert:
                repo.converts[convert[1]] = commit.oid
            else:
                repo.branches[revision] = commit.oid
            return commit.oid

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str:
        oid = self._resolve_rev(self.repo(repo_id, repo_type), revision)
        assert oid is not None
        return oid

    # ----------------------------------------------------------------- auth
    def _auth(self, headers: dict[str, str]) -> tuple[Token | None, Response | None]:
        value = headers.get("authorization")
        if not value:
            return None, None
        token = value.split(" ", 1)[1].strip() if value.lower().startswith("bearer ") else value.strip()
        found = self.tokens.get(token)
        if found is None:
            return None, _error(401, INVALID_CREDENTIALS)
        return found, None

    def _member(self, token: Token | None, namespace: str) -> bool:
        return token is not None and (token.user == namespace or namespace in self.orgs.get(token.user, set()))

    def _readable(self, repo_type: str, repo_id: str, token: Token | None) -> tuple[Repo | None, Response | None]:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._member(token, repo.namespace)):
            # Like the Hub: a private repo you cannot see is indistinguishable from a missing one.
            status = 401 if token is None else 404
            return None, _error(status, "Repository not found", "RepoNotFound")
        return repo, None

    def _writable(self, repo_type: str, repo_id: str, token: Token | None) -> tuple[Repo | None, Response | None]:
        if token is None:
            return None, _error(401, "You must be authenticated to write to a repository", "RepoNotFound")
        repo, err = self._readable(repo_type, repo_id, token)
        if err:
            return None, err
        assert repo is not None
        if not token.write or not self._member(token, repo.namespace):
            return None, _error(403, f"You don't have the rights to write to {repo_id}")
        return repo, None

    # ----------------------------------------------------------------- revisions
    def _resolve_rev(self, repo: Repo, rev: str) -> str | None:
        if rev.startswith("refs/heads/"):
            rev = rev[len("refs/heads/") :]
        if rev in repo.branches:
            return repo.branches[rev]
        match = re.fullmatch(r"refs/pr/(\d+)", rev)
        if match:
            return repo.prs.get(int(match[1]))
        match = re.fullmatch(r"refs/convert/(\w+)", rev)
        if match:
            return repo.converts.get(match[1])
        if re.fullmatch(r"[0-9a-f]{7,40}", rev):
            hits = [oid for oid in repo.commits if oid.startswith(rev)]
            if len(hits) == 1:
                return hits[0]
        return None

    def _new_commit(self, repo: Repo, parent: str | None, title: str, description: str, files: dict[str, Blob]) -> Commit:
        seed = f"{repo.repo_id}:{parent}:{title}:{next(self._counter)}:{sorted((p, b.oid) for p, b in files.items())}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, description, dict(files), _now())
        repo.commits[commit.oid] = commit
        return commit

    # ----------------------------------------------------------------- dispatch
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        split = urlsplit(raw_path)
        segments = [unquote(s) for s in split.path.strip("/").split("/")] if split.path.strip("/") else []
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append((method, split.path, "authorization" in headers))
        token, auth_error = self._auth(headers)
        if segments[:2] == ["__lfs", "upload"] and method == "PUT":  # pre-signed: no auth, like S3
            return self._lfs_put(segments[2], query, body)
        if auth_error:
            return auth_error
        try:
            return self._route(method, segments, query, token, body)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            return _error(400, f"Bad request: {exc}")

    def _route(self, method: str, seg: list[str], query: dict[str, str], token: Token | None, body: bytes) -> Response:
        if seg == ["api", "whoami-v2"] and method == "GET":
            return self._whoami(token)
        if seg == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(token, json.loads(body))
        if seg == ["api", "repos", "delete"] and method == "DELETE":
            return self._delete_repo(token, json.loads(body))
        if seg == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body))
        if seg == ["__lfs", "verify"] and method == "POST":
            payload = json.loads(body)
            return _json(200, {}) if payload["oid"] in self.lfs_store else _error(404, "Object not found")
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in _REPO_TYPES:
            return self._repo_api(method, _REPO_TYPES[seg[1]], f"{seg[2]}/{seg[3]}", seg[4:], query, token, body)
        repo_type = "model"
        rest = seg
        if seg and seg[0] in _REPO_TYPES and seg[0] != "models":
            repo_type, rest = _REPO_TYPES[seg[0]], seg[1:]
        if len(rest) >= 4 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]), token)
        if len(rest) == 6 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}", token, json.loads(body))
        return _error(404, f"Double does not implement {method} /{'/'.join(seg)}")

    def _repo_api(
        self, method: str, repo_type: str, repo_id: str, rest: list[str], query: dict[str, str], token: Token | None, body: bytes
    ) -> Response:
        action = rest[0] if rest else ""
        if method == "GET" and action in ("", "revision"):
            return self._info(repo_type, repo_id, rest[1] if action else "main", query, token)
        if method == "POST" and action == "preupload":
            return self._preupload(repo_type, repo_id, rest[1], token, json.loads(body), query)
        if method == "POST" and action == "commit":
            return self._commit(repo_type, repo_id, rest[1], token, body, query)
        if method == "GET" and action == "tree":
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]), query, token)
        if method == "GET" and action == "refs":
            return self._refs(repo_type, repo_id, query, token)
        if method in ("POST", "DELETE") and action == "branch":
            return self._branch(method, repo_type, repo_id, rest[1], token, json.loads(body or b"{}"))
        return _error(404, f"Double does not implement {method} {action} for repos")

    # ----------------------------------------------------------------- endpoints
    def _whoami(self, token: Token | None) -> Response:
        if token is None:
            return _error(401, INVALID_CREDENTIALS)
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in sorted(self.orgs.get(token.user, ()))]
        role = "write" if token.write else "read"
        return _json(
            200,
            {
                "type": "user",
                "id": hashlib.md5(token.user.encode()).hexdigest()[:24],
                "name": token.user,
                "fullname": token.user,
                "isPro": False,
                "canPay": False,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "double", "role": role}},
            },
        )

    def _create_repo(self, token: Token | None, payload: dict) -> Response:
        if token is None:
            return _error(401, "You must be authenticated to create a repo")
        fault = self._take_fault("create_repo")
        if fault:
            return fault
        namespace = payload.get("organization") or token.user
        repo_id = f"{namespace}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        if not _HUB_ID.match(repo_id) or "--" in payload["name"]:
            return _error(400, f"Invalid repo name {repo_id!r}")
        with self._lock:
            existing = self.repos.get((repo_type, repo_id))
            if existing is not None:
                url = existing.url_prefix(self.base_url)
                return _json(409, {"error": f"You already created this {repo_type} repo", "url": url}, {"X-Error-Message": "You already created this repo"})
            if not token.write or not self._member(token, namespace):
                return _error(403, f"You don't have the rights to create a {repo_type} under the namespace \"{namespace}\"")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(repo_id, repo_type, private)
            first = self._new_commit(repo, None, "initial commit", "", {".gitattributes": Blob(_DEFAULT_GITATTRIBUTES)})
            repo.branches["main"] = first.oid
            self.repos[(repo_type, repo_id)] = repo
        return _json(200, {"url": repo.url_prefix(self.base_url), "name": repo_id, "id": first.oid[:24]})

    def _delete_repo(self, token: Token | None, payload: dict) -> Response:
        namespace = payload.get("organization") or (token.user if token else "")
        repo_id = f"{namespace}/{payload['name']}"
        repo, err = self._writable(payload.get("type") or "model", repo_id, token)
        if err:
            return err
        assert repo is not None
        with self._lock:
            del self.repos[(repo.repo_type, repo.repo_id)]
        return Response(200)

    def _validate_yaml(self, payload: dict) -> Response:
        errors = validate_card_metadata(payload.get("content", ""))
        if errors:
            return _json(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        return _json(200, {"errors": [], "warnings": []})

    def _info(self, repo_type: str, repo_id: str, rev: str, query: dict[str, str], token: Token | None) -> Response:
        repo, err = self._readable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        oid = self._resolve_rev(repo, rev)
        if oid is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        commit = repo.commits[oid]
        with_blobs = query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(blob.data), blobId=blob.oid)
                if blob.lfs:
                    sibling["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        meta = card_metadata(commit.files["README.md"].data.decode()) if "README.md" in commit.files else {}
        info = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo.namespace,
            "sha": oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(meta.get("tags") or []),
            "siblings": siblings,
        }
        if repo_type == "model":
            info.update(modelId=repo_id, pipeline_tag=meta.get("pipeline_tag"), library_name=meta.get("library_name"))
        if meta:
            info["cardData"] = meta
        return _json(200, info)

    def _preupload(
        self, repo_type: str, repo_id: str, rev: str, token: Token | None, payload: dict, query: dict[str, str]
    ) -> Response:
        repo, err = self._writable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        fault = self._take_fault("preupload")
        if fault:
            return fault
        oid = self._resolve_rev(repo, rev)
        if oid is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        current = repo.commits[oid].files
        files = []
        for item in payload["files"]:
            path = item["path"]
            lfs = self.lfs_uploads and (path.endswith(_LFS_SUFFIXES) or b"\0" in base64.b64decode(item["sample"]))
            existing = current.get(path)
            remote_oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": remote_oid})
        return _json(200, {"files": files, "commitOid": oid})

    def _commit(
        self, repo_type: str, repo_id: str, rev: str, token: Token | None, body: bytes, query: dict[str, str]
    ) -> Response:
        repo, err = self._writable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return _error(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        if not header.get("summary"):
            return _error(400, "A commit summary is required")
        create_pr = query.get("create_pr") in ("1", "true")
        with self._lock:
            head = self._resolve_rev(repo, rev)
            pr_match = re.fullmatch(r"refs/pr/(\d+)", rev)
            is_branch = rev in repo.branches or rev.removeprefix("refs/heads/") in repo.branches
            if head is None or not (is_branch or pr_match):
                return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent_commit = header.get("parentCommit")
            if parent_commit and not head.startswith(parent_commit):
                return _error(412, "A commit has happened since. Please refresh and try again.")
            staged = dict(repo.commits[head].files)
            for line in lines[1:]:
                problem = self._apply(staged, line)
                if problem:
                    return problem
            fault = self._take_fault("commit")
            if fault:  # staged snapshot is dropped: nothing of this commit becomes visible
                return fault
            commit = self._new_commit(repo, head, header["summary"], header.get("description", ""), staged)
            pr_url = None
            if create_pr:
                number = max([0, *repo.prs]) + 1
                repo.prs[number] = commit.oid
                pr_url = f"{repo.url_prefix(self.base_url)}/discussions/{number}"
            elif pr_match:
                repo.prs[int(pr_match[1])] = commit.oid
            else:
                repo.branches[rev.removeprefix("refs/heads/")] = commit.oid
        return _json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{repo.url_prefix(self.base_url)}/commit/{commit.oid}",
                "hookOutput": "",
                "pullRequestUrl": pr_url,
            },
        )

    def _apply(self, staged: dict[str, Blob], line: dict) -> Response | None:
        key, value = line.get("key"), line.get("value", {})
        path = value.get("path", "")
        if not path or path.startswith("/") or ".." in path.split("/"):
            return _error(400, f"Invalid path {path!r}")
        if key == "file":
            if value.get("encoding") != "base64":
                return _error(400, "Only base64 file content is supported")
            staged[path] = Blob(base64.b64decode(value["content"]))
        elif key == "lfsFile":
            data = self.lfs_store.get(value["oid"])
            if data is None:
                return _error(400, f"LFS pointer for {path} points to an object that was never uploaded")
            staged[path] = Blob(data, lfs=True)
        elif key == "deletedFile":
            if path not in staged:
                return _error(404, "A file with this name doesn't exist", "EntryNotFound")
            del staged[path]
        elif key == "deletedFolder":
            for existing in [p for p in staged if p.startswith(path.rstrip("/") + "/")]:
                del staged[existing]
        else:
            return _error(400, f"Unknown commit operation {key!r}")
        return None

    def _tree(self, repo_type: str, repo_id: str, rev: str, path: str, query: dict[str, str], token: Token | None) -> Response:
        repo, err = self._readable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        oid = self._resolve_rev(repo, rev)
        if oid is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        files = repo.commits[oid].files
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        recursive = query.get("recursive", "").lower() in ("1", "true")
        if prefix and not any(p.startswith(prefix) for p in files):
            return _error(404, f"{path} does not exist", "EntryNotFound")
        entries: dict[str, dict] = {}
        for file_path, blob in sorted(files.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "oid": git_blob_oid(folder.encode()), "size": 0, "path": folder})
            if len(parts) == 1 or recursive:
                entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": file_path}
                if blob.lfs:
                    entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
                entries[file_path] = entry
        return _json(200, list(entries.values()))

    def _refs(self, repo_type: str, repo_id: str, query: dict[str, str], token: Token | None) -> Response:
        repo, err = self._readable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in sorted(repo.branches.items())]
        converts = [{"name": n, "ref": f"refs/convert/{n}", "targetCommit": o} for n, o in sorted(repo.converts.items())]
        payload: dict[str, Any] = {"branches": branches, "converts": converts, "tags": []}
        if query.get("include_prs") in ("1", "true"):
            payload["pullRequests"] = [
                {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": o} for n, o in sorted(repo.prs.items())
            ]
        return _json(200, payload)

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str, token: Token | None, payload: dict) -> Response:
        repo, err = self._writable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        with self._lock:
            if method == "DELETE":
                if branch not in repo.branches or branch == "main":
                    return _error(404 if branch != "main" else 403, f"Cannot delete branch {branch}")
                del repo.branches[branch]
                return Response(200)
            if branch in repo.branches:
                return _error(409, f"Reference already exists: refs/heads/{branch}")
            start = self._resolve_rev(repo, payload.get("startingPoint") or "main")
            if start is None:
                return _error(404, "Invalid starting point", "RevisionNotFound")
            repo.branches[branch] = start
        return Response(200)

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str, token: Token | None) -> Response:
        repo, err = self._readable(repo_type, repo_id, token)
        if err:
            return err
        assert repo is not None
        fault = self._take_fault("resolve")
        if fault:
            return fault
        oid = self._resolve_rev(repo, rev)
        if oid is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        blob = repo.commits[oid].files.get(path)
        if blob is None:
            return _error(404, "Entry not found", "EntryNotFound", **{"X-Repo-Commit": oid})
        common = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes"}
        if blob.lfs:  # like the Hub: 302 to a CDN origin, metadata carried by X-Linked-* headers
            return Response(
                302,
                b"",
                {
                    **common,
                    "Location": f"{self.cdn_url}/__cdn/{blob.sha256}",
                    "ETag": f'"{blob.oid}"',
                    "X-Linked-Etag": f'"{blob.sha256}"',
                    "X-Linked-Size": str(len(blob.data)),
                },
            )
        return Response(200, blob.data, {**common, "ETag": f'"{blob.oid}"', "Content-Type": "application/octet-stream"})

    def _lfs_batch(self, repo_type: str, repo_id: str, token: Token | None, payload: dict) -> Response:
        repo, err = self._writable(repo_type, repo_id, token)
        if err:
            return err
        fault = self._take_fault("lfs_batch")
        if fault:
            return fault
        if payload.get("operation") != "upload":
            return _error(400, "Only the upload operation is supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            if oid in self.lfs_store:
                objects.append({"oid": oid, "size": size})
                continue
            ticket = secrets.token_hex(8)
            with self._lock:
                self._tickets[ticket] = (oid, size)
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {"href": f"{self.base_url}/__lfs/upload/{oid}?ticket={ticket}", "header": {}},
                        "verify": {"href": f"{self.base_url}/__lfs/verify", "header": {}},
                    },
                }
            )
        return _json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, oid: str, query: dict[str, str], body: bytes) -> Response:
        with self._lock:
            expected = self._tickets.pop(query.get("ticket", ""), None)
        if expected is None or expected[0] != oid:
            return _error(403, "Invalid or expired upload URL")
        fault = self._take_fault("lfs_upload")
        if fault:
            return fault
        if hashlib.sha256(body).hexdigest() != oid or len(body) != expected[1]:
            return _error(400, "Uploaded content does not match the announced sha256/size")
        with self._lock:
            self.lfs_store[oid] = body
        return Response(200, b"", {"ETag": f'"{oid}"'})

    def cdn(self, method: str, raw_path: str, headers: dict[str, str]) -> Response:
        """The separate 'CDN' origin serving LFS blobs (never needs, and should never get, a token)."""
        path = urlsplit(raw_path).path
        with self._lock:
            self.cdn_requests.append((method, path, any(k.lower() == "authorization" for k in headers)))
        match = re.fullmatch(r"/__cdn/([0-9a-f]{64})", path)
        data = self.lfs_store.get(match[1]) if match else None
        if data is None:
            return _error(404, "Not found")
        return Response(200, data, {"ETag": f'"{match[1]}"', "Content-Type": "application/octet-stream"})


# --------------------------------------------------------------------- card metadata
def card_metadata(content: str) -> dict:
    """YAML front matter of a README.md (empty dict when absent)."""
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
    if not match:
        return {}
    data = yaml.safe_load(match[1])
    return data if isinstance(data, dict) else {}


def validate_card_metadata(content: str) -> list[str]:
    """The subset of the Hub's README metadata validation that matters for model cards."""
    try:
        meta = card_metadata(content)
    except Exception as exc:  # yaml.YAMLError and friends
        return [f"Invalid YAML: {exc}"]
    errors = []
    base_models = meta.get("base_model") or []
    for value in [base_models] if isinstance(base_models, str) else base_models:
        if not isinstance(value, str) or not _HUB_ID.match(value):
            errors.append(f'"base_model" must be a valid model id, got {value!r}')
    datasets = meta.get("datasets") or []
    for value in [datasets] if isinstance(datasets, str) else datasets:
        if not isinstance(value, str) or not _HUB_ID.match(value):
            errors.append(f'"datasets" must contain valid dataset ids, got {value!r}')
    if "tags" in meta and not isinstance(meta["tags"], list):
        errors.append('"tags" must be a list')
    for model in meta.get("model-index") or []:
        if not isinstance(model, dict) or not model.get("name"):
            errors.append('"model-index" entries need a "name"')
            continue
        for result in model.get("results") or []:
            if not (result.get("task") or {}).get("type"):
                errors.append('"model-index[].results[].task.type" is required')
            dataset = result.get("dataset") or {}
            if not dataset.get("name") or not dataset.get("type"):
                errors.append('"model-index[].results[].dataset" needs "name" and "type"')
            for metric in result.get("metrics") or []:
                if not metric.get("type") or "value" not in metric:
                    errors.append('"model-index[].results[].metrics[]" needs "type" and "value"')
    return errors


# --------------------------------------------------------------------- HTTP plumbing
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        body = self._read_body()
        headers = dict(self.headers.items())
        if self.server.is_cdn:
            response = self.server.hub.cdn(self.command, self.path, headers)
        else:
            response = self.server.hub.handle(self.command, self.path, headers, body)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: HubDouble, is_cdn: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.is_cdn = is_cdn


class HubDoubleServer:
    """Runs a ``HubDouble`` on 127.0.0.1 (API origin + a separate CDN origin) in daemon threads."""

    def __init__(self, hub: HubDouble | None = None) -> None:
        self.hub = hub or HubDouble()
        self._servers: list[_Server] = []

    @property
    def endpoint(self) -> str:
        return self.hub.base_url

    def start(self) -> "HubDoubleServer":
        api, cdn = _Server(self.hub, is_cdn=False), _Server(self.hub, is_cdn=True)
        self._servers = [api, cdn]
        self.hub.base_url = f"http://127.0.0.1:{api.server_address[1]}"
        self.hub.cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> "HubDoubleServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # manual use: python tests/hub_double.py
    import time

    with HubDoubleServer() as running:
        print(f"Hub double on {running.endpoint} (write token: HF_TOKEN={WRITE_TOKEN})", flush=True)
        while True:
            time.sleep(3600)
