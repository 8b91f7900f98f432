"""push_to_hub: the fake Hub a cell saves under, and the rule its record is held to (harness.judge.hub)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from huggingface_hub.errors import EntryNotFoundError

from offload_conformance.harness.judge.hub import hub_differences
from offload_conformance.harness.plan.options import HUB_MESSAGE, HUB_NAMESPACE, HUB_TOKEN, OptionError, parse_set
from offload_conformance.harness.run.fake_hub import fake_hub

PUSH = {"push_to_hub": True}


def _saved(tmp: Path) -> Path:
    d = tmp / "saved"
    d.mkdir()
    for name, text in {"config.json": "{}", "model.safetensors": "weights", "README.md": "card"}.items():
        (d / name).write_text(text)
    return d


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(**change: Any) -> dict[str, list[dict[str, Any]]]:
    """What a correct push of _saved records, with `change` applied to its commit."""
    files = {"config.json": _sha("{}"), "model.safetensors": _sha("weights"), "README.md": _sha("card")}
    commit = {
        "repo_id": f"{HUB_NAMESPACE}/saved",
        "token": HUB_TOKEN,
        "create_pr": False,
        "revision": None,
        "commit_message": HUB_MESSAGE,
        "files": files,
    }
    return {"repos": [{"repo_id": "saved", "token": HUB_TOKEN, "exist_ok": True}], "commits": [commit | change]}


def test_a_pushed_save_uploads_exactly_what_it_wrote_to_the_repo_it_created_with_the_token(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    assert hub_differences(PUSH, _record(), saved, None) == []
    files = _record()["commits"][0]["files"]
    wrong = {
        "wrote and did not upload: README.md": _record(files={k: v for k, v in files.items() if k != "README.md"}),
        "uploaded what the directory does not hold after the save: config.json": _record(
            files=files | {"config.json": _sha("stale")}
        ),
        "a Hub call without the token the save was given": _record(token=None),
        "committed to saved (create_pr=False": _record(repo_id="saved"),
        "(create_pr=True": _record(create_pr=True),
        "'Upload model'), not": _record(commit_message="Upload model"),
        "0 commits, not one": {"repos": _record()["repos"], "commits": []},
        "created [] (exist_ok []), not 'saved'": {"repos": [], "commits": _record()["commits"]},
    }
    for detail, record in wrong.items():
        found = hub_differences(PUSH, record, saved, None)
        assert [d.cls for d in found] == ["hub-upload"], detail
        assert detail in found[0].detail, (detail, found)


def test_a_push_asked_as_a_pull_request_into_a_named_repo_must_be_one(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    asked = {"push_to_hub": True, "repo_id": "pushed", "create_pr": True}
    repos = [{"repo_id": "pushed", "token": HUB_TOKEN, "exist_ok": True}]
    right = _record(repo_id=f"{HUB_NAMESPACE}/pushed", create_pr=True) | {"repos": repos}
    assert hub_differences(asked, right, saved, None) == []
    for wrong in (right | {"repos": _record()["repos"]}, _record(create_pr=True), right | _record(create_pr=False)):
        assert {d.cls for d in hub_differences(asked, wrong, saved, None)} == {"hub-upload"}


def test_over_an_earlier_save_only_what_the_save_rewrote_must_be_uploaded(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    before = {"README.md": _sha("card"), "model-00001-of-00002.safetensors": _sha("old")}  # the card unchanged
    files = _record()["commits"][0]["files"]
    record = _record(files={k: v for k, v in files.items() if k != "README.md"})
    assert hub_differences(PUSH, record, saved, before) == []


def test_a_save_not_asked_to_push_or_not_the_main_process_must_not_contact_the_hub(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    none: dict[str, list[dict[str, Any]]] = {"repos": [], "commits": []}
    for options in ({}, {"push_to_hub": True, "is_main_process": False}):
        assert hub_differences(options, none, saved, None) == []
        found = hub_differences(options, _record(), saved, None)
        assert [d.cls for d in found] == ["hub-upload"] and "contacted the Hub" in found[0].detail


def test_the_fake_hub_records_the_calls_answers_a_new_repo_and_restores_huggingface_hub(tmp_path: Path) -> None:
    original = HfApi.create_repo, HfApi.create_commit, ModelCard.load
    (tmp_path / "a.txt").write_text("a")
    with fake_hub() as record:
        repo = HfApi().create_repo("saved", exist_ok=True, token="t").repo_id
        ops = [CommitOperationAdd(path_in_repo="a.txt", path_or_fileobj=str(tmp_path / "a.txt"))]
        ops.append(CommitOperationAdd(path_in_repo="b.txt", path_or_fileobj=b"b"))
        HfApi().create_commit(repo, ops, commit_message="m", token="t")
        with pytest.raises(EntryNotFoundError):
            ModelCard.load(repo)
    assert repo == f"{HUB_NAMESPACE}/saved"
    assert record["repos"] == [{"repo_id": "saved", "token": "t", "exist_ok": True}]
    assert record["commits"][0]["files"] == {"a.txt": _sha("a"), "b.txt": _sha("b")}
    assert (HfApi.create_repo, HfApi.create_commit, ModelCard.load) == original


def test_options_given_together_are_one_point_of_the_axis() -> None:
    assert parse_set("push_to_hub=True,is_main_process=False") == (("push_to_hub", True), ("is_main_process", False))
    assert parse_set("variant=v1") == (("variant", "v1"),)
    with pytest.raises(OptionError, match="given twice"):
        parse_set("variant=a,variant=b")
    with pytest.raises(OptionError, match="expected True or False"):
        parse_set("push_to_hub=yes")
