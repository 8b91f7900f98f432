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


def row_label(c: CellResult) -> str:
    """A matrix row: the fixture, its save options and the save context where they are not the defaults."""
    label = options_label(c.save_options)
    context = f" ({c.context})" if c.context != "empty" else ""
    return c.fixture + (f" [{label}]" if label else "") + context


def grids(result: RunResult) -> Grids:
    """IUT (and version, when merged) -> row (fixture, save options, context) -> mode -> cell."""
    out: Grids = defaultdict(lambda: defaultdict(dict))
    for c in result.cells:
        table = c.impl + (f" @ transformers {c.transformers}" if c.transformers else "")
        out[table][row_label(c)][c.mode] = c
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
    if c.outcome is Outcome.FAIL or (c.outcome is Outcome.ERROR and c.classes):  # an error that changed the model
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


def lifecycle_note(result: RunResult) -> str:
    """What the lifecycle checks covered, for every report header; '' for a document from before them."""
    checked = [c for c in result.cells if c.lifecycle is not None and c.lifecycle.model_checked]
    if not checked:
        return ""
    skipped: dict[str, int] = {}
    for c in checked:
        if c.lifecycle is not None and c.lifecycle.forward_skipped:
            skipped[c.lifecycle.forward_skipped] = skipped.get(c.lifecycle.forward_skipped, 0) + 1
    resaved = sum(c.lifecycle is not None and c.lifecycle.resaved for c in result.cells)
    note = f"model compared before and after the save in {len(checked)} cells"
    if skipped:
        common = sorted(skipped.items(), key=lambda kv: -kv[1])
        why = "; ".join(f"{n}x {reason}" for reason, n in common[:3]) + ("; ..." if len(common) > 3 else "")
        note += f" (forward pass skipped in {sum(skipped.values())}: {why})"
    return f"{note}; saved again after loading back (resave) in {resaved}"


def lifecycle_cell(c: CellResult) -> str:
    """One cell's lifecycle checks, in a few words."""
    if c.lifecycle is None or not c.lifecycle.model_checked:
        return ""
    forward = f"forward skipped: {c.lifecycle.forward_skipped}" if c.lifecycle.forward_skipped else "forward compared"
    return f"model compared ({forward}){'; resaved' if c.lifecycle.resaved else ''}"


DRIFT_EXAMPLES = 20


def drift_lines(result: RunResult) -> list[str]:
    """What changed against the older release whose known failures judged the run: new failures (they fail it),
    and listed cells that pass now (fixed)."""
    if result.drift_from is None:
        return []
    installed = result.environment.get("transformers", "?")
    new = [c for c in result.cells if c.counts_as_failure]
    fixed = [c for c in result.cells if c.stale_xfail]
    out = [f"drift: known failures of {result.drift_from} applied to {installed}: {len(new)} new, {len(fixed)} fixed"]
    for what, cells in (("new", new), ("fixed", fixed)):
        for c in cells[:DRIFT_EXAMPLES]:
            out.append(f"  {what}: {c.cell_id}: {c.state}")
        if len(cells) > DRIFT_EXAMPLES:
            out.append(f"  {what}: and {len(cells) - DRIFT_EXAMPLES} more")
    return out


def root_cause(c: CellResult) -> str:
    """What a failing cell failed of: the underlying exception where a load or save raised (its baseline's where
    that failed first), else the classes the comparison found."""
    failure = c.baseline_failure or c.failure
    if failure is not None:
        return f"{failure.stage} raised {failure.root_cause}"
    return "differs: " + ",".join(c.classes)


def by_root_cause(result: RunResult) -> list[tuple[str, list[CellResult]]]:
    """Failing cells grouped by root cause, the largest group first."""
    groups: dict[str, list[CellResult]] = defaultdict(list)
    for c in result.cells:
        if c.outcome.is_failure:
            groups[root_cause(c)].append(c)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
