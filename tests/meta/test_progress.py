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
