"""A Hub in the cell process: `save_pretrained(..., push_to_hub=True)` runs its upload branch without a network.

huggingface_hub's HfApi is patched for the duration of the save: `create_repo` and `create_commit` are recorded
(the repo in the user's namespace, every file a commit adds by its sha256) and a new repo has no model card
(`ModelCard.load` raises EntryNotFoundError, as the Hub answers). Any other Hub call still meets HF_HUB_OFFLINE and
raises. The record is the cell's report; harness.judge.hub holds it to what the save wrote. Every save runs under
it, so a save that was not asked to push and contacts the Hub shows too.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

from offload_conformance.fixtures.manifest import sha256_file
from offload_conformance.harness.plan.options import HUB_NAMESPACE


def _digest(content: Any) -> str:
    """sha256 of what a CommitOperationAdd uploads: a path, bytes or a binary file object."""
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    if isinstance(content, io.IOBase):
        return hashlib.sha256(content.read()).hexdigest()
    return sha256_file(Path(content))


@contextmanager
def fake_hub() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Record the Hub calls made inside: {"repos": [create_repo's arguments], "commits": [create_commit's, with
    "files": {path_in_repo: sha256}]}."""
    from huggingface_hub import HfApi, ModelCard
    from huggingface_hub.errors import EntryNotFoundError

    record: dict[str, list[dict[str, Any]]] = {"repos": [], "commits": []}

    def create_repo(self: Any, repo_id: str, *, token: Any = None, exist_ok: bool = False, **rest: Any) -> Any:
        record["repos"].append({"repo_id": repo_id, "token": token, "exist_ok": exist_ok})
        full = repo_id if "/" in repo_id else f"{HUB_NAMESPACE}/{repo_id}"  # the Hub answers with the namespace
        return SimpleNamespace(repo_id=full)

    def create_commit(self: Any, repo_id: str, operations: Any, *, commit_message: str, **rest: Any) -> Any:
        files = {op.path_in_repo: _digest(op.path_or_fileobj) for op in operations}
        record["commits"].append(
            {
                "repo_id": repo_id,
                "token": rest.get("token"),
                "create_pr": bool(rest.get("create_pr")),
                "revision": rest.get("revision"),
                "commit_message": commit_message,
                "files": files,
            }
        )
        return SimpleNamespace(oid="0" * 40, pr_url=None)

    def load(cls: Any, repo_id_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        raise EntryNotFoundError(f"{repo_id_or_path} has no README.md (a new repo on the fake Hub)")

    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(HfApi, "create_repo", create_repo))
        patches.enter_context(mock.patch.object(HfApi, "create_commit", create_commit))
        patches.enter_context(mock.patch.object(ModelCard, "load", classmethod(load)))
        yield record
