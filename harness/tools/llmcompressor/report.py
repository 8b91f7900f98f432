"""docs/llm-compressor.md's region: one row per offload mode, one column per fixture and scheme, both savers in a
cell (one mark where they agree). Two tables: the first track's flows, then the DeepSeek-V4 / GLM-5 workflow (its
saves also loaded back: class `reload`)."""

from __future__ import annotations

from collections import defaultdict

from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.report.grid import SYMBOL
from offload_conformance.harness.report.regions import Table, cell, markdown_table
from offload_conformance.harness.results import CellResult, RunResult
from offload_conformance.harness.tools.llmcompressor.plan import MODE_NAMES, SAVERS, TRACKS, WORKFLOW_MODES

# The fixtures and schemes follow, one column each ("qwen3_moe [fp8_dynamic]").
FLOWS_TABLE = Table(("mode",), rows=MODE_NAMES, more_columns=True)
WORKFLOW_TABLE = Table(("mode",), rows=WORKFLOW_MODES, more_columns=True)


def region_shape() -> tuple[Table, ...]:
    return (FLOWS_TABLE, WORKFLOW_TABLE)


def _mark(c: CellResult) -> str:
    """✓; ✗ and the classes; ! and the exception where no checkpoint was written; ○ unsupported."""
    if c.outcome is Outcome.FAIL:
        return f"{SYMBOL[c.outcome]} {','.join(c.classes)}"
    failure = c.failure or c.baseline_failure
    if c.outcome is Outcome.ERROR and failure is not None:
        return f"{SYMBOL[c.outcome]} {failure.type}"
    return SYMBOL[c.outcome]


def _entry(by_saver: dict[str, str]) -> str:
    marks = set(by_saver.values())
    if len(marks) == 1:
        return marks.pop()
    return "; ".join(f"{s} {by_saver[s]}" for s in SAVERS if s in by_saver)


def _table(table: Table, cells: list[CellResult]) -> str:
    grid: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    columns: dict[str, None] = {}
    for c in cells:
        column = f"{c.fixture} [{c.save_options.get('scheme', '?')}]"
        columns[column] = None
        grid[c.mode][column][c.impl] = _mark(c)
    rows = [
        [mode, *(cell(_entry(grid[mode][col])) if col in grid[mode] else "" for col in columns)]
        for mode in table.rows
        if mode in grid
    ]
    return markdown_table(table, rows, more=list(columns))


def region(result: RunResult) -> str:
    workflow = set(TRACKS[1].fixtures)
    env = result.environment
    tally = ", ".join(f"{n} {o}" for o, n in ((o, sum(c.outcome is o for c in result.cells)) for o in Outcome) if n)
    head = (
        f"llm-compressor {env.get('llmcompressor')}, compressed-tensors {env.get('compressed-tensors')}, transformers"
        f" {env.get('transformers')}: {tally} of {len(result.cells)} cells. One mark where both savers agree (`!` = no"
        " checkpoint, with the exception)."
    )
    first = _table(FLOWS_TABLE, [c for c in result.cells if c.fixture not in workflow])
    second = _table(WORKFLOW_TABLE, [c for c in result.cells if c.fixture in workflow])
    return f"{head}\n\n{first}\nDeepSeek-V4 and GLM-5 (each save also loaded back: `reload`):\n\n{second}"
