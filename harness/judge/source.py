"""Judging against the source checkpoint, where transformers' own in-memory save fails.

A load then save of an unmodified model must give the checkpoint's weights back, so the fixture's own
files are a correct expectation for the named tensors (`--require tensors` at most: the shard layout
of a save that never succeeded in memory is not known). config.json is compared on the fields
transformers carries through a save unchanged: every field of the fixture's config.json except
SAVE_REWRITES, which the save sets itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.results import Difference

CONFIG = "config.json"
# Set by save_pretrained itself, whatever the checkpoint said.
SAVE_REWRITES = frozenset({"transformers_version", "dtype", "torch_dtype", "architectures"})


def config_differences(source: Path, saved: Path) -> list[Difference]:
    expected = json.loads((source / CONFIG).read_text())
    try:
        actual = json.loads((saved / CONFIG).read_text())
    except (OSError, ValueError) as e:
        return [Difference(FailureClass.FILE_SET, f"{CONFIG} is missing or not JSON ({type(e).__name__})", file=CONFIG)]
    wrong = sorted(k for k in expected.keys() - SAVE_REWRITES if actual.get(k) != expected[k])
    if not wrong:
        return []
    k = wrong[0]
    what = f"{CONFIG}: {len(wrong)} field(s) differ from the source checkpoint, e.g. {k}: {actual.get(k)!r}"
    return [Difference(FailureClass.OTHER_FILE, f"{what}, expected {expected[k]!r}", file=CONFIG)]
