"""What a save of a model whose offload storage was damaged did: the verdicts, defined once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from offload_conformance.harness.outcomes import FailureClass


class Verdict(StrEnum):
    REFUSED = "refused"  # a one-line error naming the damaged file or tensor
    IDENTICAL = "identical"  # the checkpoint is byte-identical to the in-memory save: the damage missed what is saved
    # A checkpoint that differs only in values, from a storage that still reads back through accelerate itself
    # with every tensor's dtype and shape: the files are consistent, only numbers changed, and neither accelerate
    # nor safetensors keeps a checksum that could tell (nor can a save know the values the load saw).
    UNDETECTABLE = "undetectable"
    SILENT_WRONG = "silent-wrong"  # a checkpoint that differs from the in-memory save, written with no error
    CRASH = "crash"  # a signal, a timeout, or an error that does not name the damaged file (a deep traceback)

    @property
    def bad(self) -> bool:
        return self in (Verdict.SILENT_WRONG, Verdict.CRASH)


# What the storage, read back by accelerate's own weights_map, says after the damage (harness.tools.damage.probe).
class Storage(StrEnum):
    SAME = "same"  # every offloaded tensor reads back as before
    VALUES = "values"  # every one reads back with the model's dtype and shape, some with other values
    # One reads back with another dtype or shape, its file stores an int for a float, or two untied tensors' entries
    # read one tensor of one file.
    INCONSISTENT = "inconsistent"
    UNREADABLE = "unreadable"  # accelerate itself fails reading one


VALUE_CLASSES = frozenset({FailureClass.VALUES, FailureClass.PERMUTED})


@dataclass(frozen=True)
class Saved:
    """What one IUT's save did: an error (type and message), a signal or timeout, or a written checkpoint."""

    error: str | None = None  # exception type name, "signal N" or "timeout"
    message: str = ""
    where: str = ""  # the innermost frame of the traceback: file:line function


def names_the_problem(message: str, names: frozenset[str]) -> bool:
    """A one-line message that names the damaged file or tensor and says more than the name (a bare KeyError
    of a tensor name says nothing of what is wrong)."""
    if not message or "\n" in message.strip():
        return False
    return any(n in message and len(message.strip(" '\"")) > len(n) + 8 for n in names)


def judge(
    saved: Saved, names: frozenset[str], classes: tuple[FailureClass, ...] | None, storage: Storage | None
) -> Verdict:
    """`classes`: how the checkpoint differs from the in-memory save (() when byte-identical), None when none was
    written; `storage`: what the damaged storage reads back as (needed only for a differing checkpoint)."""
    if saved.error is not None:
        if saved.error.startswith(("signal", "timeout")):
            return Verdict.CRASH
        return Verdict.REFUSED if names_the_problem(saved.message, names) else Verdict.CRASH
    if classes is None:
        return Verdict.CRASH  # no error and no checkpoint
    if not classes:
        return Verdict.IDENTICAL
    if storage is Storage.VALUES and set(classes) <= VALUE_CLASSES:
        return Verdict.UNDETECTABLE
    return Verdict.SILENT_WRONG
