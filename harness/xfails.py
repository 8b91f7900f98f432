"""Known failures, as array-api-tests keeps them: one `PATTERN  # reason` per line.

PATTERN is an fnmatch pattern over cell ids (`qwen3_moe-accelerate-*-upstream*`). A listed cell
that fails is reported as a known failure; one that passes is reported as stale.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path

from harness.results import RunResult

KNOWN = Path(__file__).parent / "known_failures"


class XfailsError(ValueError):
    pass


def for_installed() -> Path | None:
    """The known-failures file shipped for the installed transformers release, if any."""
    from importlib.metadata import version

    path = KNOWN / f"transformers-{version('transformers')}.txt"
    return path if path.exists() else None


def read(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text()
    except OSError as e:
        raise XfailsError(f"--xfails {path}: {e.strerror}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)
        pattern, reason = body[0].strip(), body[1].strip() if len(body) > 1 else ""
        if not pattern:
            continue
        if not reason:
            raise XfailsError(f"--xfails {path}:{number}: {pattern!r} has no '# reason'")
        entries.append((pattern, reason))
    return entries


def apply(result: RunResult, entries: list[tuple[str, str]]) -> RunResult:
    def reason(cell_id: str) -> str | None:
        return next((r for p, r in entries if fnmatch.fnmatchcase(cell_id, p)), None)

    cells = tuple(dataclasses.replace(c, xfail=reason(c.cell_id)) for c in result.cells)
    return dataclasses.replace(result, cells=cells)
