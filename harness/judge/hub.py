"""A save's Hub calls (harness.run.fake_hub records them in the cell) held to what the save was asked and wrote.

With `push_to_hub=True` on the main process, as transformers documents it: one repo created, `repo_id` or named
after the save directory, `exist_ok`; one commit to the repo the Hub answered with, with the message given, a pull
request only when `create_pr=True`, adding every file the save wrote or changed with the bytes the directory holds
after it, and nothing else; every call with the token the save was given. Any other save (not asked to push, or not
the process that writes: plan.options.writes) makes no Hub call at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offload_conformance.harness.judge.checkpoint import file_digests
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.plan.options import HUB_MESSAGE, HUB_NAMESPACE, HUB_TOKEN, writes
from offload_conformance.harness.results import Difference

EXAMPLES = 3


def _names(names: list[str]) -> str:
    more = f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else ""
    return ", ".join(names[:EXAMPLES]) + more


def hub_differences(
    options: dict[str, Any], hub: dict[str, list[dict[str, Any]]] | None, save_dir: Path, before: dict[str, str] | None
) -> list[Difference]:
    """Class hub-upload: how the Hub calls of a save differ from what it was asked (`options`) and what it wrote
    (`save_dir` after it, `before` it: None for an empty target). `hub` None: the cell recorded none (not run)."""
    if hub is None:
        return []
    repos, commits = hub["repos"], hub["commits"]
    if not (options.get("push_to_hub") and writes(options)):
        if not repos and not commits:
            return []
        why = "on a process that must not write" if options.get("push_to_hub") else "not asked to push"
        what = f"a save {why} contacted the Hub: {len(repos)} repos created, {len(commits)} commits"
        return [Difference(C.HUB_UPLOAD, what)]
    out: list[str] = []
    repo = options.get("repo_id") or save_dir.name  # the default repo_id: the last part of the save directory
    pr = bool(options.get("create_pr"))
    if [(r["repo_id"], r["exist_ok"]) for r in repos] != [(repo, True)]:
        out.append(f"created {[r['repo_id'] for r in repos]} (exist_ok {[r['exist_ok'] for r in repos]}), not {repo!r}")
    if len(commits) != 1:
        out.append(f"{len(commits)} commits, not one")
    for commit in commits:
        got = (commit["repo_id"], commit["create_pr"], commit["revision"], commit["commit_message"])
        if got != (f"{HUB_NAMESPACE}/{repo}", pr, None, HUB_MESSAGE):
            asked = f"{HUB_NAMESPACE}/{repo} (create_pr={pr}, revision=None, {HUB_MESSAGE!r})"
            out.append(f"committed to {got[0]} (create_pr={got[1]}, revision={got[2]}, {got[3]!r}), not {asked}")
    if any(call["token"] != HUB_TOKEN for call in repos + commits):
        out.append("a Hub call without the token the save was given")
    after = file_digests(save_dir) if save_dir.is_dir() else {}
    uploaded = {name: digest for commit in commits for name, digest in commit["files"].items()}
    other = sorted(n for n, digest in uploaded.items() if after.get(n) != digest)
    if other:
        out.append(f"uploaded what the directory does not hold after the save: {_names(other)}")
    written = sorted(n for n, digest in after.items() if (before or {}).get(n) != digest)
    missing = [n for n in written if n not in uploaded]
    if commits and missing:
        out.append(f"wrote and did not upload: {_names(missing)}")
    return [Difference(C.HUB_UPLOAD, f"push_to_hub: {what}") for what in out]
