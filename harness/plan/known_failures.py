"""Known failures, as array-api-tests keeps them: one `PATTERN  # reason` per line.

PATTERN is an fnmatch pattern over cell ids; write the fixture name in full
(`qwen3_moe-accelerate-*-upstream*`, not `q*`), so a fixture added later is never listed by accident.
A listed cell that fails is a known failure; one that passes is stale. A cell matched by several
lines carries every reason, so line order means nothing. A pattern that matches no cell of the run
is reported: it is a typo, or its fixture or mode is gone.

Drift: where the installed transformers (a new release, or a checkout such as 5.26.0.dev0) has no file of its
own, `auto` applies the nearest older release's. Its failures that file does not list are *new*, the cells it
lists that pass are *fixed*; only new ones fail the run.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

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
    listed_for: str = ""  # the release the shipped file lists ('' for a file of the user's)
    installed: str = ""  # the transformers it was applied to, where that is another release: drift

    @property
    def drift(self) -> str | None:
        """'known failures of 5.24.0 applied to 5.25.0', or None when the file is the installed release's own."""
        if not self.installed or self.installed == self.listed_for:
            return None
        return f"known failures of {self.listed_for} applied to {self.installed}"

    def reason(self, cell_id: str) -> str | None:
        reasons = list(dict.fromkeys(e.reason for e in self.entries if e.matches(cell_id)))
        return "; ".join(reasons) or None

    def unmatched(self, cell_ids: list[str]) -> list[Entry]:
        """Entries that match none of these cells."""
        return [e for e in self.entries if not any(e.matches(c) for c in cell_ids)]

    def apply(self, result: RunResult) -> RunResult:
        cells = tuple(dataclasses.replace(c, xfail=self.reason(c.cell_id)) for c in result.cells)
        drift_from = self.listed_for if self.drift else None
        return dataclasses.replace(result, cells=cells, drift_from=drift_from)


NONE = KnownFailures("", ())


def shipped_for(transformers_version: str, fixture_set: str = "default") -> Path | None:
    """transformers-V.txt for the default fixtures, transformers-V.SET.txt for another set."""
    suffix = "" if fixture_set == "default" else f".{fixture_set}"
    path = SHIPPED / f"transformers-{transformers_version}{suffix}.txt"
    return path if path.exists() else None


def nearest(installed: str, fixture_set: str = "default", shipped: Path = SHIPPED) -> str | None:
    """The release whose file applies to `installed`: itself where it has one, else the newest older release that
    has one (a dev version counts as newer than its base release's predecessors). None: no such release."""
    suffix = "" if fixture_set == "default" else f".{fixture_set}"
    releases = {}
    for p in shipped.glob(f"transformers-*{suffix}.txt"):
        name = p.name.removeprefix("transformers-").removesuffix(".txt")
        if suffix:
            if not name.endswith(suffix):
                continue
            name = name.removesuffix(suffix)
        try:
            releases[Version(name)] = name
        except InvalidVersion:
            continue  # another set's file (transformers-5.24.0.all.txt seen from the default set)
    try:
        version = Version(installed)
    except InvalidVersion:
        return None
    older = [v for v in releases if v <= version]
    return releases[max(older)] if older else None


def installed_transformers() -> str:
    from importlib.metadata import version

    return version("transformers")


def for_installed(fixture_set: str = "default") -> Path | None:
    """The known-failures file shipped for the installed transformers release and a fixture set, if any."""
    return shipped_for(installed_transformers(), fixture_set)


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
    """A file, or `auto`: the file shipped for the installed transformers and the fixture set, or for the nearest
    older release (drift); none at all: no entries."""
    if str(path) == AUTO:
        installed = installed_transformers()
        release = nearest(installed, fixture_set)
        shipped = shipped_for(release, fixture_set) if release else None
        if release is None or shipped is None:
            return NONE
        return dataclasses.replace(_read(shipped), listed_for=release, installed=installed)
    return _read(Path(path))


def _read(path: Path) -> KnownFailures:
    try:
        text = path.read_text()
    except OSError as e:
        raise KnownFailuresError(f"--xfails {path}: {e.strerror}") from None
    return parse(text, str(path))
