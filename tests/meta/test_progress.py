"""Progress: a bar with count and ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from offload_conformance.harness.report.progress import Progress
from tests.meta.documents import CAND


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(len(CAND.cells), stream=out)
    for i, cell in enumerate(CAND.cells, 1):
        progress(i, len(CAND.cells), cell)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/4] fx-full-upstream: fail shard-layout (0.1s)" and len(lines) == 4


def test_a_bar_with_count_and_eta_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress(len(CAND.cells), stream=out)
    for i, cell in enumerate(CAND.cells, 1):
        progress(i, len(CAND.cells), cell)
    progress.close()
    text = out.getvalue()
    assert "4/4" in text and "cells" in text and "<" in text  # tqdm's "elapsed<remaining"
    # Failures are still printed in full above the bar; passing cells are not.
    assert "[1/4] fx-full-upstream: fail shard-layout" in text and "[2/4]" not in text


def test_steps_other_than_cells_as_plain_lines_and_as_a_bar() -> None:
    """The bench reports its runs through `step`: the same bar on a terminal, one line each otherwise."""
    plain = io.StringIO()
    progress = Progress(2, what="runs", stream=plain)
    progress.step(1, 2, "bench-a reference #1: 0.50s")
    progress.step(2, 2, "bench-a upstream #1: 0.70s")
    progress.close()
    assert plain.getvalue().splitlines() == ["[1/2] bench-a reference #1: 0.50s", "[2/2] bench-a upstream #1: 0.70s"]
    out = Terminal()
    progress = Progress(2, what="runs", stream=out)
    progress.step(1, 2, "bench-a reference #1: 0.50s")
    progress.step(2, 2, "bench-a upstream #1: 0.70s")
    progress.close()
    assert "2/2" in out.getvalue() and "runs" in out.getvalue() and "[1/2]" not in out.getvalue()
