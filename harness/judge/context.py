"""A save into a directory that was not empty, judged apart from what the empty-directory save also has.

After the save, the weight files and index of the save's own variant must be exactly the baseline's (a save into
an empty directory): one the baseline lacks was left behind (`file-set`). Every other file the directory held and
the baseline does not write (another variant's weights, a tokenizer, the fixture's manifest) must be as it was: the
save must not lose what the user had (`file-set`). A save that raised must leave the directory as it was
(`directory-changed`). What loading the directory back gives is the cell process's check (`reload`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from offload_conformance.harness.judge.checkpoint import file_digests
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.results import Difference

EXAMPLES = 3


def own_files(variant: str | None) -> Callable[[str], bool]:
    """Whether a file name is one of a save's weight files or its index, for the save's variant (the names
    transformers' `_add_variant` gives; written out here, not imported from the code under test)."""
    v = f".{variant}" if variant else ""
    names = {f"model{v}.safetensors", f"model.safetensors.index{v}.json"}
    shard = re.compile(rf"model{re.escape(v)}-\d{{5}}-of-\d{{5}}\.safetensors")
    return lambda name: name in names or shard.fullmatch(name) is not None


def judged_apart(
    variant: str | None, baseline_dir: Path, save_dir: Path, before: dict[str, str]
) -> tuple[frozenset[str], list[Difference]]:
    """(files of the save directory the comparison with the baseline leaves out, what is wrong with them).

    Left out: files the directory held before, as they were, that the baseline does not write. One of the save's
    own weight files or index among them was left behind; any other must be there still, unchanged. A file the
    save wrote (new, or rewritten) is the comparison's, whatever its name."""
    own = own_files(variant)
    after = file_digests(save_dir)
    expected = set(file_digests(baseline_dir))
    untouched = {n for n, digest in after.items() if n not in expected and before.get(n) == digest}
    left = sorted(n for n in untouched if own(n))
    out = [Difference(C.FILE_SET, f"{n} is left from before the save (not written by it)", file=n) for n in left]
    lost = [n for n, digest in sorted(before.items()) if not own(n) and n not in expected and after.get(n) != digest]
    for what in ("deleted", "changed"):
        names = [n for n in lost if (n not in after) == (what == "deleted")]
        if names:
            eg = ", ".join(names[:EXAMPLES]) + (f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else "")
            detail = f"{len(names)} files this save does not write were {what} by it: {eg}"
            out.append(Difference(C.FILE_SET, detail, file=names[0]))
    return frozenset(untouched), out


def directory_changed(save_dir: Path, before: dict[str, str], why: str = "the save raised") -> list[Difference]:
    """A save that raised (or one that must write nothing, `why`): the target's files must be exactly those it
    had."""
    after = file_digests(save_dir) if save_dir.is_dir() else {}
    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    if not changed:
        return []
    how = {n: "removed" if n not in after else "added" if n not in before else "rewritten" for n in changed}
    eg = ", ".join(f"{n} {how[n]}" for n in changed[:EXAMPLES])
    more = f" and {len(changed) - EXAMPLES} more" if len(changed) > EXAMPLES else ""
    what = f"{why} and left the directory changed: {eg}{more}"
    return [Difference(C.DIRECTORY_CHANGED, what, file=changed[0])]


def reload_differences(reloaded: str | None) -> list[Difference]:
    if not reloaded:
        return []
    return [Difference(C.RELOAD, f"loaded back with from_pretrained: {reloaded}")]
