"""mutants.json: the data of a mutation analysis, as frozen dataclasses; every report is drawn from it.

A mutant is one single-site edit of a target function (a synthetic faulty PR). Its status is decided by
comparing the cells' verdicts (outcome and failure classes) under the mutant with the unmutated run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from offload_conformance.harness.outcomes import Oracle

SCHEMA = "offload-conformance/mutants"
SCHEMA_VERSION = 1


class Status(StrEnum):
    """What became of a mutant, defined once; `score` counts only killed and survived."""

    KILLED = "killed"  # some cell's outcome or classes differ from the unmutated run (confirmed by a rerun)
    KILLED_BY_CRASH = "killed-by-crash"  # the package no longer imports, or every cell run errors: not detection
    SURVIVED = "survived"  # every cell run reaches the line and no verdict changed
    UNREACHED = "unreached"  # no cell executes the mutated line: a coverage gap
    EQUIVALENT = "equivalent"  # listed in equivalent.txt, with the reason it cannot change behaviour
    TIMEOUT = "timeout"  # a cell that ended before now timed out under the mutant (an infinite loop, say)


@dataclass(frozen=True)
class Target:
    """A function (or method) of an installed package whose source is mutated."""

    name: str  # the qualified name asked for: transformers.modeling_utils.PreTrainedModel.save_pretrained
    package: str  # top-level package: transformers, accelerate, huggingface_hub
    file: str  # path relative to the package's parent directory: transformers/modeling_utils.py
    qualname: str  # inside its module: PreTrainedModel.save_pretrained
    first_line: int  # the def line
    last_line: int


@dataclass(frozen=True)
class MissingTarget:
    """A target name that does not resolve in the installed packages: reported, never a crash."""

    name: str
    reason: str


@dataclass(frozen=True)
class Mutant:
    """One edit: the source span [start, end) of `file` (character offsets) replaced by `replacement`."""

    id: str  # target:line:operator:n, stable across runs of the same source
    target: str  # Target.name
    file: str  # Target.file
    line: int  # the line of the innermost statement holding the edit (what coverage reports)
    operator: str
    description: str  # e.g. "`a == b` -> `a != b`"
    start: int
    end: int
    replacement: str


@dataclass(frozen=True)
class CellChange:
    """A cell whose verdict differs under the mutant."""

    cell: str
    before: str  # CellResult.state of the unmutated run: 'pass', 'fail values,index', ...
    after: str


@dataclass(frozen=True)
class MutantResult:
    id: str
    target: str
    file: str
    line: int
    operator: str
    description: str
    status: Status
    cells: tuple[str, ...] = ()  # the cells run under the mutant, in order
    classes: tuple[str, ...] = ()  # failure classes of the changed verdicts, each once
    changes: tuple[CellChange, ...] = ()
    reached: int = 0  # how many cells of the matrix execute its line
    oracles: dict[str, bool] = field(default_factory=dict)  # Oracle -> killed it on the cells run
    reason: str = ""  # equivalent: the listed reason; unreached: why no cell gets there; crash: what broke
    seconds: float = 0.0


@dataclass(frozen=True)
class UnreachedLine:
    """A target line no cell executes, with the cells that would have to exist."""

    target: str
    file: str
    line: int
    source: str  # the line's text
    reason: str  # e.g. 'GPU-only: needs a CUDA device', 'tensor-parallel', 'no cell saves with push_to_hub'
    mutants: int


@dataclass(frozen=True)
class Timing:
    total_seconds: float
    reach_seconds: float  # the unmutated run with coverage
    import_seconds: float  # summed over mutant workers: interpreter start and imports of the overlay
    cell_seconds: float  # summed over mutant workers: cells and baselines executed
    mutants_run: int  # mutants that needed a worker (not unreached, not equivalent)
    reach_cached: bool = False  # the reach run was taken from an earlier analysis's (reach_cache.py)
    patched: int = 0  # mutants run patched into a server that had imported the packages (hot.py), not imported

    @property
    def mutants_per_minute(self) -> float:
        return self.mutants_run / (self.total_seconds / 60) if self.total_seconds else 0.0


@dataclass(frozen=True)
class ShardPart:
    """This document is part `index` of `count` (`--shard K/N`); `planned` is every mutant id of the unsplit run."""

    index: int
    count: int
    planned: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    environment: dict[str, str]  # package versions the analysis ran on
    cells: tuple[str, ...]  # the matrix mutants run on (cell ids)
    targets: tuple[Target, ...]
    missing: tuple[MissingTarget, ...]
    mutants: tuple[MutantResult, ...]
    unreached: tuple[UnreachedLine, ...] = ()
    stale_equivalents: tuple[str, ...] = ()  # listed ids that no mutant of this run has
    stale_killers: tuple[str, ...] = ()  # killers.txt's ids that no mutant of this run has
    timing: Timing | None = None
    shard: ShardPart | None = None
    sample: int | None = None
    seed: int | None = None
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for m in self.mutants if m.status is s) for s in Status}

    @property
    def score(self) -> float | None:
        """killed / (killed + survived): detection among mutants a cell reaches that can change behaviour."""
        return _score(self.mutants, lambda m: m.status is Status.KILLED)

    def oracle_score(self, oracle: Oracle) -> float | None:
        """The same ratio for an alternative oracle, on the same mutants (killed or survived by the harness)."""
        return _score(self.mutants, lambda m: m.oracles.get(oracle.value, False))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["score"] = self.score
        d["counts"] = self.counts()
        d["oracles"] = {o.value: self.oracle_score(o) for o in Oracle}
        if self.timing:
            d["timing"]["mutants_per_minute"] = round(self.timing.mutants_per_minute, 2)
        return d

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Analysis:
        if d.get("schema") != SCHEMA or d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"not a mutants.json this harness reads (schema {d.get('schema')!r} {d.get('schema_version')})"
            )
        timing = d.get("timing")
        return cls(
            environment=d["environment"],
            cells=tuple(d["cells"]),
            targets=tuple(Target(**t) for t in d["targets"]),
            missing=tuple(MissingTarget(**t) for t in d["missing"]),
            mutants=tuple(_mutant(m) for m in d["mutants"]),
            unreached=tuple(UnreachedLine(**u) for u in d.get("unreached", ())),
            stale_equivalents=tuple(d.get("stale_equivalents", ())),
            stale_killers=tuple(d.get("stale_killers", ())),
            timing=Timing(**{k: v for k, v in timing.items() if k != "mutants_per_minute"}) if timing else None,
            shard=ShardPart(d["shard"]["index"], d["shard"]["count"], tuple(d["shard"]["planned"]))
            if d.get("shard")
            else None,
            sample=d.get("sample"),
            seed=d.get("seed"),
        )

    @classmethod
    def read(cls, path: Path) -> Analysis:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None


def _mutant(m: dict[str, Any]) -> MutantResult:
    return MutantResult(
        **{
            **m,
            "status": Status(m["status"]),
            "cells": tuple(m["cells"]),
            "classes": tuple(m["classes"]),
            "changes": tuple(CellChange(**c) for c in m["changes"]),
        }
    )


def _score(mutants: tuple[MutantResult, ...], killed: Any) -> float | None:
    judged = [m for m in mutants if m.status in (Status.KILLED, Status.SURVIVED)]
    return sum(1 for m in judged if killed(m)) / len(judged) if judged else None
