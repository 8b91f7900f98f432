"""push_to_hub: the Hub half of save_pretrained, as transformers does it.

Before the save, the repo is created (named after the save directory unless `repo_id` says otherwise) and the
directory's files are timed; the save then writes a model card (README.md) beside its weights, and one commit
uploads every file the save wrote or rewrote. Through huggingface_hub's own client: the point here is the save's
files, not the Hub protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from transformers import PreTrainedModel
from transformers.utils.hub import create_and_tag_model_card


@dataclass(frozen=True)
class Push:
    repo_id: str  # as the Hub answered: in the user's namespace
    token: str | None
    before: dict[str, float]  # the target's files before the save, by modification time
    message: str
    create_pr: bool


def start(
    save_directory: Path,
    token: str | None,
    repo_id: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> Push:
    """Create the repo (it may exist) and note what the target holds before the save."""
    repo = HfApi().create_repo(repo_id or save_directory.name, exist_ok=True, token=token).repo_id
    before = {p.name: p.stat().st_mtime for p in save_directory.iterdir()} if save_directory.is_dir() else {}
    return Push(repo, token, before, commit_message or "Upload model", create_pr)


def write_card(push: Push, model: PreTrainedModel, directory: Path) -> None:
    """The model card transformers writes into a pushed save: the repo's own, or a new one tagged with the model's
    tags."""
    create_and_tag_model_card(push.repo_id, model.model_tags, token=push.token).save(directory / "README.md")


def upload(push: Push, target: Path) -> None:
    """One commit of every file of `target` the save wrote or rewrote (newer than before it)."""
    written = [p for p in sorted(target.iterdir()) if p.is_file() and p.stat().st_mtime > push.before.get(p.name, -1.0)]
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in written]
    HfApi().create_commit(
        push.repo_id, operations, commit_message=push.message, token=push.token, create_pr=push.create_pr
    )
