"""Save options beside max_shard_size that change what a save writes: `--save-option KEY=VALUE`, and the
signature of the IUT they are passed to.

Each is judged against the in-memory save with the same option (the baseline carries the cell's options).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# An IUT: save(model, save_directory, **save_options) -> None. Here, below both the resolver (plan.impls) and the
# catalogue of faulty IUTs it resolves (plan.faults), so neither imports the other for it.
Saver = Callable[..., None]

OWN_STATE_DICT = "own"  # state_dict=own: the model's own state_dict() passed explicitly, as wrappers pass it
# is_main_process=False: every process of a distributed run but one calls save_pretrained with it, and must write,
# delete and change nothing (judge.verdict).
NOT_MAIN_PROCESS = "is_main_process=False"
# rank=1: not a save_pretrained argument but where it runs: rank 1 of a torch.distributed group of two (gloo,
# harness.run.distributed), as every process of a distributed script calls save_pretrained; only rank 0 may write.
RANK_1 = "rank=1"
# push_to_hub=True: the save uploads what it wrote, to a fake Hub in the cell (harness.run.fake_hub), with the token
# and commit message below passed beside it; the repo is `repo_id` (the directory's name by default) in
# HUB_NAMESPACE, as the Hub names a user's new repo; `create_pr=True` asks for a pull request.
PUSH_TO_HUB = "push_to_hub=True"
PUSH_AS_PR = "push_to_hub=True,repo_id=pushed,create_pr=True"
HUB_TOKEN = "hf_offload_conformance_fake_token"
HUB_MESSAGE = "offload-conformance: the save, pushed"
HUB_NAMESPACE = "offload-conformance"
SAVE_OPTIONS = (
    "variant=v1",
    "save_original_format=False",
    f"state_dict={OWN_STATE_DICT}",
    NOT_MAIN_PROCESS,
    RANK_1,
    PUSH_TO_HUB,
    PUSH_AS_PR,
)
# The options the cell acts on itself instead of passing them to the IUT.
CELL_OPTIONS = frozenset({"rank"})


class OptionError(ValueError):
    pass


def parse(text: str) -> tuple[str, Any]:
    """`variant=NAME`, `repo_id=NAME`, `state_dict=own`, `rank=0|1`, or `save_original_format`, `is_main_process`,
    `push_to_hub` or `create_pr` =True|False, as a (keyword, value) pair."""
    key, sep, value = text.partition("=")
    if not sep or not value:
        raise OptionError(f"--save-option {text!r}: expected KEY=VALUE, one of {', '.join(SAVE_OPTIONS)}")
    if key in ("variant", "repo_id"):
        if not value.replace("_", "").replace("-", "").isalnum():
            raise OptionError(f"--save-option {text!r}: a {key} is letters, digits, '-' and '_'")
        return key, value
    if key in ("save_original_format", "is_main_process", "push_to_hub", "create_pr"):
        if value not in ("True", "False"):
            raise OptionError(f"--save-option {text!r}: expected True or False")
        return key, value == "True"
    if key == "rank":
        if value not in ("0", "1"):
            raise OptionError(f"--save-option {text!r}: a cell runs as rank 0 or 1")
        return key, int(value)
    if key == "state_dict":
        if value != OWN_STATE_DICT:
            raise OptionError(f"--save-option {text!r}: only state_dict={OWN_STATE_DICT} (the model's own)")
        return key, value
    known = ", ".join(dict.fromkeys(part.partition("=")[0] for o in SAVE_OPTIONS for part in o.split(",")))
    raise OptionError(f"--save-option {text!r}: unknown option {key!r} (known: {known})")


def writes(options: dict[str, Any]) -> bool:
    """Whether a save with these options is the one that writes: on the main process (is_main_process) of rank 0;
    any other must write, delete and change nothing, on disk or on the Hub."""
    return bool(options.get("is_main_process", True)) and options.get("rank", 0) == 0


def parse_set(text: str) -> tuple[tuple[str, Any], ...]:
    """One point of the save-option axis: KEY=VALUE, or several joined by commas (`push_to_hub=True,
    is_main_process=False`: options a cell gets together), as (keyword, value) pairs."""
    pairs = tuple(parse(part.strip()) for part in text.split(","))
    keys = [k for k, _ in pairs]
    if len(set(keys)) < len(keys):
        raise OptionError(f"--save-option {text!r}: an option given twice")
    return pairs
