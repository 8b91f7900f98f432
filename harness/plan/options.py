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
SAVE_OPTIONS = ("variant=v1", "save_original_format=False", f"state_dict={OWN_STATE_DICT}", NOT_MAIN_PROCESS)


class OptionError(ValueError):
    pass


def parse(text: str) -> tuple[str, Any]:
    """`variant=NAME`, `save_original_format=True|False`, `state_dict=own` or `is_main_process=True|False`, as a
    (keyword, value) pair."""
    key, sep, value = text.partition("=")
    if not sep or not value:
        raise OptionError(f"--save-option {text!r}: expected KEY=VALUE, one of {', '.join(SAVE_OPTIONS)}")
    if key == "variant":
        if not value.replace("_", "").replace("-", "").isalnum():
            raise OptionError(f"--save-option {text!r}: a variant is letters, digits, '-' and '_'")
        return key, value
    if key in ("save_original_format", "is_main_process"):
        if value not in ("True", "False"):
            raise OptionError(f"--save-option {text!r}: expected True or False")
        return key, value == "True"
    if key == "state_dict":
        if value != OWN_STATE_DICT:
            raise OptionError(f"--save-option {text!r}: only state_dict={OWN_STATE_DICT} (the model's own)")
        return key, value
    known = ", ".join(o.partition("=")[0] for o in SAVE_OPTIONS)
    raise OptionError(f"--save-option {text!r}: unknown option {key!r} (known: {known})")
