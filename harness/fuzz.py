"""Hypothesis-generated cells: random valid specs, modes and shard sizes through the runner.

A failing cell is shrunk to a small spec and printed as a one-line command reproducing it.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.strategies import SHARD_SIZES, specs
from harness.modes import Mode
from harness.results import CellResult
from harness.runner import Cell, run_cells


class CellFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Finding:
    cell: Cell
    result: CellResult

    def command(self) -> str:
        shard = dict(self.cell.save_options).get("max_shard_size", "default")
        spec = json.dumps(self.cell.fixture.to_json(), sort_keys=True, separators=(",", ":"))
        return shlex.join(
            [
                "python",
                "-m",
                "harness",
                "run",
                "--spec",
                spec,
                "--mode",
                self.cell.mode.name,
                "--impl",
                self.cell.impl,
                "--max-shard-size",
                shard,
            ]
        )


def fuzz(
    impl: str, modes: list[Mode], examples: int, out: Path, require: str, timeout: float, seed: int | None = None
) -> Finding | None:
    last: list[Finding] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(spec=specs(), mode=st.sampled_from(modes), shard=st.sampled_from(("default", *SHARD_SIZES[1:])))
    def check(spec: object, mode: Mode, shard: str) -> None:
        options = () if shard == "default" else (("max_shard_size", shard),)
        cell = Cell(spec, mode, impl, options)  # type: ignore[arg-type]
        (result,) = run_cells([cell], out, require=require, timeout=timeout, jobs=2).cells
        print(f"  {result.outcome:5} {cell.mode.name} shards={shard} {cell.fixture.name}", file=sys.stderr, flush=True)
        if result.outcome in ("fail", "error"):
            last.append(Finding(cell, result))
            raise CellFailed(result.detail)

    try:
        check()
    except CellFailed:
        return last[-1]  # hypothesis replays the shrunk example last
    return None
