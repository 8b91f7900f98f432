"""What every matrix view shares: cells laid out by IUT, row (fixture and save options) and mode,
and how a cell is marked."""

from __future__ import annotations

from collections import defaultdict

from offload_conformance.harness.outcomes import Fp8OnCpu, Grade, Outcome
from offload_conformance.harness.plan.cells import options_label
from offload_conformance.harness.results import IN_MEMORY_SAVE, CellResult, RunResult

STANDARD = {
    Grade.BYTES: "a cell passes only if every saved file is byte-identical to the in-memory save",
    Grade.TENSORS: "a cell passes if its named tensors are identical to the in-memory save (layout, header and"
    " index drift allowed)",
}
SYMBOL = {Outcome.PASS: "✓", Outcome.FAIL: "✗", Outcome.ERROR: "!", Outcome.UNSUPPORTED: "○"}
XFAIL = "xfail"
COLOR = {
    Outcome.PASS: "#c8f0c8",
    Outcome.FAIL: "#f5b5b5",
    Outcome.ERROR: "#f3d27a",
    Outcome.UNSUPPORTED: "#dddddd",
    XFAIL: "#e6d5f5",
}

Grids = dict[str, dict[str, dict[str, CellResult]]]


def grids(result: RunResult) -> Grids:
    """IUT (and version, when merged) -> row (fixture + save options) -> mode -> cell."""
    out: Grids = defaultdict(lambda: defaultdict(dict))
    for c in result.cells:
        table = c.impl + (f" @ transformers {c.transformers}" if c.transformers else "")
        label = options_label(c.save_options)
        out[table][c.fixture + (f" [{label}]" if label else "")][c.mode] = c
    return out


def modes(result: RunResult) -> list[str]:
    return list(dict.fromkeys(c.mode for c in result.cells))


def color_key(c: CellResult) -> str:
    return XFAIL if c.known_failure else c.outcome


def counts(result: RunResult) -> dict[Outcome, int]:
    return {o: sum(c.outcome is o for c in result.cells) for o in Outcome}


def mark(c: CellResult) -> str:
    if c.known_failure:
        return XFAIL
    text = SYMBOL[c.outcome]
    if c.outcome is Outcome.PASS and c.grade is Grade.TENSORS:
        text += " (tensors)"
    if c.outcome is Outcome.FAIL:
        text += " " + ",".join(c.classes)
    if c.stale_xfail:
        text += " (stale xfail)"
    return text


def loading_note(result: RunResult) -> str:
    """How quantized fixtures were loaded, for every report header."""
    if result.fp8_on_cpu is Fp8OnCpu.KEEP:
        return "fp8 on cpu: keep (fine-grained FP8 stays float8 + scales where there is no GPU; --fp8-on-cpu)"
    return "fp8 on cpu: dequantize (transformers' CPU default: fine-grained FP8 is saved as bf16; --fp8-on-cpu)"


def judged_note(c: CellResult) -> str:
    """Which baseline judged the cell, where it was not the in-memory save."""
    return "" if c.judged_against == IN_MEMORY_SAVE else f" [judged against the {c.judged_against}]"


def source_judged(result: RunResult) -> list[str]:
    """One line per fixture and save options whose cells the source checkpoint judged."""
    seen = {(c.fixture, options_label(c.save_options), c.judged_against) for c in result.cells if judged_note(c)}
    return [f"{f}{f' [{o}]' if o else ''}: judged against the {why}" for f, o, why in sorted(seen)]
