"""Known failures, as array-api-tests keeps them: one `PATTERN  # reason` per line.

PATTERN is an fnmatch pattern over cell ids; write the fixture name in full
(`qwen3_moe-accelerate-*-upstream*`, not `q*`), so a fixture added later is never listed by accident.
A listed cell that fails is a known failure; one that passes is stale. A cell matched by several
lines carries every reason, so line order means nothing. A pattern that matches no cell of the run
is reported: it is a typo, or its fixture or mode is gone.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from offload_conformance.harness.results import RunResult

SHIPPED = Path(__file__).parent.parent / "known_failures"
AUTO = "auto"


class KnownFailuresError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    pattern: str
    reason: str
    line: int

    def matches(self, cell_id: str) -> bool:
        return fnmatch.fnmatchcase(cell_id, self.pattern)


@dataclass(frozen=True)
class KnownFailures:
    source: str  # the file, for messages
    entries: tuple[Entry, ...]

    def reason(self, cell_id: str) -> str | None:
        reasons = list(dict.fromkeys(e.reason for e in self.entries if e.matches(cell_id)))
        return "; ".join(reasons) or None

    def unmatched(self, cell_ids: list[str]) -> list[Entry]:
        """Entries that match none of these cells."""
        return [e for e in self.entries if not any(e.matches(c) for c in cell_ids)]

    def apply(self, result: RunResult) -> RunResult:
        cells = tuple(dataclasses.replace(c, xfail=self.reason(c.cell_id)) for c in result.cells)
        return dataclasses.replace(result, cells=cells)


NONE = KnownFailures("", ())


def shipped_for(transformers_version: str, fixture_set: str = "default") -> Path | None:
    """transformers-V.txt for the default fixtures, transformers-V.SET.txt for another set."""
    suffix = "" if fixture_set == "default" else f".{fixture_set}"
    path = SHIPPED / f"transformers-{transformers_version}{suffix}.txt"
    return path if path.exists() else None


def for_installed(fixture_set: str = "default") -> Path | None:
    """The known-failures file shipped for the installed transformers release and a fixture set, if any."""
    from importlib.metadata import version

    return shipped_for(version("transformers"), fixture_set)


def parse(text: str, source: str) -> KnownFailures:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)
        pattern, reason = body[0].strip(), body[1].strip() if len(body) > 1 else ""
        if not pattern:
            continue
        if not reason:
            raise KnownFailuresError(f"{source}:{number}: {pattern!r} has no '# reason'")
        entries.append(Entry(pattern, reason, number))
    return KnownFailures(source, tuple(entries))


def load(path: Path | str, fixture_set: str = "default") -> KnownFailures:
    """A file, or `auto`: the file shipped for the installed transformers and the fixture set (none: no entries)."""
    if str(path) == AUTO:
        shipped = for_installed(fixture_set)
        if shipped is None:
            return NONE
        path = shipped
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise KnownFailuresError(f"--xfails {path}: {e.strerror}") from None
    return parse(text, str(path))
