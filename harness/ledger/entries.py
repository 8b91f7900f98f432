"""The ledger's data file (upstream_bugs.toml), read and checked: a bad entry is one error naming it."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.plan.selection import PlanError, settings

SHIPPED = Path(__file__).parent / "upstream_bugs.toml"
OPEN = "open"
# Run settings an entry may set for its cells (names as `offload-conformance run` spells them, `-` as `_`).
OPTIONS = ("max_extra_rss", "max_read_amplification", "require", "fp8_on_cpu")
ERROR = "error"  # in `expect`: the cell erred (a crash on load or save) rather than saving something else
PACKAGES = ("transformers", "accelerate", "compressed-tensors")
_ID = re.compile(r"[A-Za-z][A-Za-z-]*#\d+")
_VERSION = re.compile(r"\d+\.\d+(\.\d+)*")


class LedgerError(ValueError):
    """The data file is unreadable or an entry is malformed: one line naming the entry and the field."""


class Verdict(StrEnum):
    REPRODUCED = "reproduced"  # flagged on the affected release, clean on the fixed one
    STILL_OPEN = "still-open"  # flagged on the newest release (the bug is not fixed upstream)
    NOT_CAUGHT = "not-caught"  # with why: the entry's own reason and what the runs showed
    NEEDS_GPU = "needs-gpu"  # needs an accelerator this machine does not have; not run


@dataclass(frozen=True)
class Bug:
    id: str  # the thread that fixed (or reported) it, e.g. transformers#47018
    row: int  # its row in ../shared/UPSTREAM-BUGS.md
    bug_class: str  # one line
    gpu: bool
    package: str  # whose releases are replayed
    affected: str  # a release that had it
    fixed: str  # a release with the fix, or OPEN
    cells: tuple[str, ...]  # fnmatch patterns over cell ids, each starting with a whole fixture name
    expect: tuple[str, ...]  # FailureClass values (or ERROR) any of which counts as catching it
    see: tuple[str, ...] = ()
    pins: tuple[tuple[str, str], ...] = ()  # other packages, pinned for both replays
    why: str = ""  # why the harness cannot catch it (or a remark)
    options: tuple[tuple[str, str], ...] = ()  # run settings its cells need (OPTIONS), e.g. a memory budget
    # Its generated (gen_*) fixtures are built by the newest transformers, not by each replayed release: a
    # save-side naming bug of the affected release is then not baked into its own fixture, and the in-memory
    # save's round trip shows it.
    newest_fixtures: bool = False

    @property
    def group(self) -> str:
        """The run its cells belong to within an environment: entries with the same options share one."""
        parts = [f"{k}={v}" for k, v in self.options] + (["newest-fixtures"] if self.newest_fixtures else [])
        return ",".join(parts) or "default"

    @property
    def is_open(self) -> bool:
        return self.fixed == OPEN

    @property
    def runnable(self) -> bool:
        return not self.gpu and bool(self.cells)

    def fixtures(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.split("-", 1)[0] for p in self.cells))

    def matches(self, cell_id: str) -> bool:
        return any(fnmatch.fnmatchcase(cell_id, p) for p in self.cells)


@dataclass(frozen=True)
class Ledger:
    newest: dict[str, str]  # the newest release of each package, what the default sessions install
    bugs: tuple[Bug, ...]

    def select(self, ids: tuple[str, ...]) -> Ledger:
        unknown = [i for i in ids if i not in {b.id for b in self.bugs}]
        if unknown:
            raise LedgerError(f"no ledger entry {unknown[0]!r}")
        return Ledger(self.newest, tuple(b for b in self.bugs if not ids or b.id in ids))


def _strings(name: str, where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LedgerError(f"{where}: {name} must be a list of strings")
    return tuple(value)


def _bug(raw: dict[str, object], index: int) -> Bug:
    where = f"entry {index + 1} ({raw.get('id', 'no id')})"
    known = {"id", "row", "class", "gpu", "package", "affected", "fixed", "cells", "expect", "see", "pins", "why"}
    known |= {"options", "newest_fixtures"}
    if extra := sorted(set(raw) - known):
        raise LedgerError(f"{where}: unknown field {extra[0]!r}")
    for name in ("id", "class", "affected", "fixed"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise LedgerError(f"{where}: {name} must be a non-empty string")
    if not _ID.fullmatch(str(raw["id"])):
        raise LedgerError(f"{where}: id must look like project#number")
    package = str(raw.get("package", "transformers"))
    if package not in PACKAGES:
        raise LedgerError(f"{where}: package {package!r} is not one of {', '.join(PACKAGES)}")
    affected, fixed = str(raw["affected"]), str(raw["fixed"])
    if not _VERSION.fullmatch(affected) or not (fixed == OPEN or _VERSION.fullmatch(fixed)):
        raise LedgerError(f"{where}: affected must be a release and fixed a release or {OPEN!r}")
    pins_raw = raw.get("pins", {})
    if not isinstance(pins_raw, dict) or not all(k in PACKAGES and k != package for k in pins_raw):
        raise LedgerError(f"{where}: pins must map other packages of {', '.join(PACKAGES)} to releases")
    options = raw.get("options", {})
    if not isinstance(options, dict) or not all(k in OPTIONS for k in options):
        raise LedgerError(f"{where}: options may set {', '.join(OPTIONS)}")
    try:
        settings(**{k: str(v) if k != "max_read_amplification" else float(v) for k, v in options.items()})  # type: ignore[arg-type]
    except (PlanError, ValueError) as e:
        raise LedgerError(f"{where}: options: {e}") from None
    cells = _strings("cells", where, raw.get("cells", []))
    expect = _strings("expect", where, raw.get("expect", []))
    valid = {c.value for c in FailureClass} | {ERROR}
    if bad := [e for e in expect if e not in valid]:
        raise LedgerError(f"{where}: expect {bad[0]!r} is not a failure class (or {ERROR!r})")
    newest_fixtures = raw.get("newest_fixtures", False)
    if not isinstance(newest_fixtures, bool) or (newest_fixtures and not any(c.startswith("gen_") for c in cells)):
        raise LedgerError(f"{where}: newest_fixtures = true needs cells of generated (gen_*) fixtures")
    gpu = raw.get("gpu", False)
    if not isinstance(gpu, bool) or not isinstance(raw.get("row", 0), int):
        raise LedgerError(f"{where}: gpu must be true/false and row a number")
    why = str(raw.get("why", ""))
    if not gpu and not (cells and expect) and not why:
        raise LedgerError(f"{where}: name the cells and expected classes that catch it, or say why none can")
    if any(not p or p[0] in "*?[" for p in cells):
        raise LedgerError(f"{where}: each cell pattern starts with a whole fixture name")
    return Bug(
        id=str(raw["id"]),
        row=int(raw.get("row", 0)),  # type: ignore[call-overload]
        bug_class=str(raw["class"]),
        gpu=gpu,
        package=package,
        affected=affected,
        fixed=fixed,
        cells=cells,
        expect=expect,
        see=_strings("see", where, raw.get("see", [])),
        pins=tuple(sorted((str(k), str(v)) for k, v in pins_raw.items())),
        why=why,
        options=tuple(sorted((str(k), str(v)) for k, v in options.items())),
        newest_fixtures=newest_fixtures,
    )


def load(path: Path = SHIPPED) -> Ledger:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LedgerError(f"{path}: {e}") from None
    newest = data.get("newest", {})
    if not isinstance(newest, dict) or set(newest) != set(PACKAGES):
        raise LedgerError(f"{path}: [newest] must name the newest release of {', '.join(PACKAGES)}")
    bugs = tuple(_bug(raw, i) for i, raw in enumerate(data.get("bug", [])))
    seen: set[str] = set()
    for b in bugs:
        if b.id in seen:
            raise LedgerError(f"{path}: entry {b.id} appears twice")
        seen.add(b.id)
    return Ledger({str(k): str(v) for k, v in newest.items()}, bugs)
