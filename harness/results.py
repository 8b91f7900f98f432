"""results.json: one versioned document from which every report is drawn."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload_conformance.harness.outcomes import FailureClass, Fp8OnCpu, Grade, Outcome, Stage

# 3: CellResult.lifecycle (model-changed, forward pass, resave); classes of an error cell. 4: CellResult.context and
# fused_groups (save contexts, forced shard sizes); RunResult.drift_from.
SCHEMA_VERSION = 4
READABLE_VERSIONS = (2, 3, 4)  # an older document reads as one whose newer checks did not run
IN_MEMORY_SAVE = "in-memory save"


@dataclass(frozen=True)
class Failure:
    """Why a run (a cell, or its baseline) produced no checkpoint."""

    stage: Stage
    type: str  # the exception's class name; for Stage.PROCESS: timeout, memory-limit or died
    message: str
    where: str = ""  # file:line of the raise
    # What the raised exception wraps, where it is a wrapper: the exception it was raised from (or during), or the
    # conversion errors transformers' loading report holds behind "We encountered some issues during automatic
    # conversion of the weights". '' where the exception is its own root cause.
    cause: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Failure | None:
        if d is None:
            return None
        return cls(Stage(d["stage"]), d["type"], d["message"], d.get("where", ""), d.get("cause", ""))

    @property
    def root_cause(self) -> str:
        """What to group failing cells by: the wrapped error where there is one, else this one."""
        return self.cause or f"{self.type}: {self.message}"

    def __str__(self) -> str:
        if self.stage is Stage.PROCESS:
            return self.message
        where = f" ({self.where})" if self.where else ""
        cause = f"; caused by {self.cause}" if self.cause else ""
        return f"{self.stage} raised {self.type}: {self.message}{where}{cause}"


@dataclass(frozen=True)
class TensorFacts:
    """One side of a difference: where a tensor is and what it holds."""

    file: str
    dtype: str  # safetensors spelling: BF16, F8_E4M3, ...
    shape: tuple[int, ...]
    sha256: str


@dataclass(frozen=True)
class Difference:
    cls: FailureClass
    detail: str
    tensor: str | None = None
    file: str | None = None
    expected: TensorFacts | None = None  # the tensor in the in-memory save, when it has one
    actual: TensorFacts | None = None  # the tensor in the IUT's save, when it has one
    max_abs_diff: float | None = None  # for `values`

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Difference:
        return cls(
            FailureClass(d["cls"]),
            d["detail"],
            d.get("tensor"),
            d.get("file"),
            _facts(d.get("expected")),
            _facts(d.get("actual")),
            d.get("max_abs_diff"),
        )


@dataclass(frozen=True)
class Lifecycle:
    """What a cell's lifecycle checks did; what they found is in its differences (model-changed, resave)."""

    model_checked: bool = False  # the model was compared before and after the save (also after a save that raised)
    forward_skipped: str | None = None  # why the forward-pass part of that comparison did not run
    resaved: bool = False  # the save was loaded back in the same mode and saved again (where: docs/design.md)
    # The harness stopped the forward pass (it would have removed or moved a file): nothing to hold its logits to.
    forward_refused: bool = False

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Lifecycle | None:
        if d is None:
            return None
        refused = d.get("forward_refused", False)
        return cls(d["model_checked"], d.get("forward_skipped"), d.get("resaved", False), refused)


@dataclass(frozen=True)
class SaveCost:
    """What a save cost (measured in the cell process by harness.run.cost)."""

    offloaded_bytes: int  # distinct offloaded tensors (meta in the model)
    largest_tensor_bytes: int  # the largest tensor the model holds, offloaded or not
    bytes_read: int  # read back from offload storage during the save
    rss_before: int | None  # bytes
    peak_rss: int | None  # bytes, during the save (the kernel's high-water mark: exact)
    # Anonymous memory only (RssAnon, sampled every few ms: a spike shorter than that can be missed).
    # RSS also counts file-backed pages of mmap-read offload files, which the kernel can reclaim.
    anon_before: int | None = None
    peak_anon: int | None = None

    @property
    def read_amplification(self) -> float | None:
        return self.bytes_read / self.offloaded_bytes if self.offloaded_bytes else None

    @property
    def extra_rss(self) -> int | None:
        return None if self.peak_rss is None or self.rss_before is None else self.peak_rss - self.rss_before

    @property
    def extra_anon(self) -> int | None:
        return None if self.peak_anon is None or self.anon_before is None else self.peak_anon - self.anon_before


@dataclass(frozen=True)
class FusedGroups:
    """A save's expert groups (the checkpoint tensors of one fused in-memory tensor): how many it put in more than
    one file, how many are larger than max_shard_size (where a boundary falls inside the group: the in-memory
    save keeps such a group whole, in a shard of its own), of how many. over_limit 0: no boundary was tested."""

    split: int
    over_limit: int
    total: int


@dataclass(frozen=True)
class CellResult:
    cell_id: str
    fixture: str
    mode: str
    impl: str
    save_options: dict[str, Any]
    outcome: Outcome
    grade: Grade | None
    classes: tuple[FailureClass, ...]
    detail: str  # for people: derived from the fields below, never read back
    seconds: float
    hf_device_map: dict[str, Any] | None = None
    differences: tuple[Difference, ...] = ()
    failure: Failure | None = None  # why this cell's own load or save produced no checkpoint
    baseline_failure: Failure | None = None  # why its in-memory baseline produced no checkpoint
    # What the save was compared with: the in-memory save, or the fixture's own files where that save raised.
    judged_against: str = IN_MEMORY_SAVE
    log_tail: str = ""
    xfail: str | None = None  # reason, when the cell is listed as a known failure
    transformers: str = ""  # what ran the cell, set when documents from several versions are merged
    cost: SaveCost | None = None
    lifecycle: Lifecycle | None = None
    context: str = "empty"  # what the target directory held before the save (plan.contexts)
    fused_groups: FusedGroups | None = None  # the save's expert groups and the shard boundaries inside them

    @property
    def counts_as_failure(self) -> bool:
        return self.outcome.is_failure and self.xfail is None

    @property
    def known_failure(self) -> bool:
        return self.outcome.is_failure and self.xfail is not None

    @property
    def stale_xfail(self) -> bool:
        """Listed as a known failure, but passes now: the entry should go."""
        return self.outcome is Outcome.PASS and self.xfail is not None

    @property
    def state(self) -> str:
        """Outcome and classes in one word group, e.g. 'fail shard-layout,index': what gate and bisect compare."""
        return " ".join([self.outcome, ",".join(self.classes)]).strip()


def erred(state: str) -> bool:
    """Whether a `CellResult.state` (the mutants worker keeps it as text) is an error's: its first word is the
    outcome."""
    return state.partition(" ")[0] == Outcome.ERROR


@dataclass(frozen=True)
class BaselineResult:
    """The in-memory save a cell is compared with, and whether it round-trips the fixture's own weights."""

    fixture_dir: str
    seconds: float
    roundtrip_classes: tuple[FailureClass, ...] = ()  # how the in-memory save differs from the fixture
    roundtrip_grade: Grade | None = None
    failure: Failure | None = None
    unsupported: Failure | None = None


@dataclass(frozen=True)
class Shard:
    """This document is part `index` of `count` of a run split over CI jobs (`run --shard K/N`)."""

    index: int
    count: int
    planned: tuple[str, ...]  # every cell id of the unsplit run, in its order: merge checks for gaps with it


@dataclass(frozen=True)
class RunResult:
    require: Grade  # the grade a cell needs to pass
    environment: dict[str, str]
    cells: tuple[CellResult, ...]
    baselines: dict[str, BaselineResult] = field(default_factory=dict)
    fixtures: dict[str, str] = field(default_factory=dict)  # name -> content digest
    shard: Shard | None = None
    fp8_on_cpu: Fp8OnCpu = Fp8OnCpu.KEEP  # how fine-grained FP8 fixtures were loaded (see outcomes.Fp8OnCpu)
    # The older release whose known failures judged the run (the installed one has none): failing cells it does not
    # list are new, cells it lists that pass are fixed (harness.plan.known_failures).
    drift_from: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return not any(c.counts_as_failure for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunResult:
        if d.get("schema_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"schema_version {d.get('schema_version')}, this harness reads {', '.join(map(str, READABLE_VERSIONS))}"
            )
        return cls(
            Grade(d["require"]),
            d["environment"],
            tuple(_cell(c) for c in d["cells"]),
            {k: _baseline(v) for k, v in d.get("baselines", {}).items()},
            d.get("fixtures", {}),
            Shard(d["shard"]["index"], d["shard"]["count"], tuple(d["shard"]["planned"])) if d.get("shard") else None,
            Fp8OnCpu(d.get("fp8_on_cpu", Fp8OnCpu.KEEP)),
            d.get("drift_from"),
        )

    @classmethod
    def read(cls, path: Path) -> RunResult:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def key(self) -> dict[str, CellResult]:
        return {c.cell_id: c for c in self.cells}


def _facts(d: dict[str, Any] | None) -> TensorFacts | None:
    return None if d is None else TensorFacts(d["file"], d["dtype"], tuple(d["shape"]), d["sha256"])


def _cell(c: dict[str, Any]) -> CellResult:
    return CellResult(
        **{
            **c,
            "outcome": Outcome(c["outcome"]),
            "grade": Grade(c["grade"]) if c["grade"] else None,
            "classes": tuple(FailureClass(x) for x in c["classes"]),
            "differences": tuple(Difference.from_json(d) for d in c["differences"]),
            "failure": Failure.from_json(c.get("failure")),
            "baseline_failure": Failure.from_json(c.get("baseline_failure")),
            "cost": SaveCost(**c["cost"]) if c.get("cost") else None,
            "lifecycle": Lifecycle.from_json(c.get("lifecycle")),
            "fused_groups": FusedGroups(**c["fused_groups"]) if c.get("fused_groups") else None,
        }
    )


def _baseline(b: dict[str, Any]) -> BaselineResult:
    return BaselineResult(
        b["fixture_dir"],
        b["seconds"],
        tuple(FailureClass(x) for x in b.get("roundtrip_classes", ())),
        Grade(b["roundtrip_grade"]) if b.get("roundtrip_grade") else None,
        Failure.from_json(b.get("failure")),
        Failure.from_json(b.get("unsupported")),
    )
