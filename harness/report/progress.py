"""Progress of a long run: a bar with the cell count and ETA on a terminal (tqdm, as transformers
shows downloads), one plain line per cell otherwise (CI logs, pipes). The bench reports its runs
through `step`."""

from __future__ import annotations

import sys
from typing import IO, Any

from offload_conformance.harness.report.terminal import progress_line
from offload_conformance.harness.results import CellResult


class Progress:
    """Call with (done, total, cell) after each cell; `close` when the run ends."""

    def __init__(self, total: int, what: str = "cells", stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=" cells" if what == "cells" else f" {what}", file=self.stream)

    def __call__(self, done: int, total: int, cell: CellResult) -> None:
        if self.bar is None:
            print(progress_line(done, total, cell), file=self.stream, flush=True)
            return
        if cell.counts_as_failure:
            self.bar.write(progress_line(done, total, cell), file=self.stream)
        self.bar.set_postfix_str(f"{cell.cell_id}: {cell.outcome}", refresh=False)
        self.bar.update(1)

    def step(self, done: int, total: int, what: str) -> None:
        """One unit of work other than a cell finished (a bench run): `what` names it."""
        if self.bar is None:
            print(f"[{done}/{total}] {what}", file=self.stream, flush=True)
            return
        self.bar.set_postfix_str(what, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
