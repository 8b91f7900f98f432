"""Human-readable views of a RunResult."""

from __future__ import annotations

from harness.results import CellResult, RunResult, describe_transformers

STANDARD = {
    "bytes": "a cell passes only if every saved file is byte-identical to the in-memory save",
    "tensors": "a cell passes if its named tensors are identical to the in-memory save (layout, header and"
    " index drift allowed)",
}


def progress_line(i: int, n: int, cell: CellResult) -> str:
    grade = f" [{cell.grade}]" if cell.grade else ""
    classes = f" {','.join(cell.classes)}" if cell.classes else ""
    return f"[{i}/{n}] {cell.cell_id}: {cell.outcome}{grade}{classes} ({cell.seconds:.1f}s)"


def table(result: RunResult) -> str:
    rows = [("cell", "outcome", "grade", "classes", "seconds")]
    for c in result.cells:
        rows.append((c.cell_id, c.outcome, c.grade or "-", ",".join(c.classes) or "-", f"{c.seconds:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(result: RunResult) -> str:
    out = []
    for c in result.cells:
        if c.stale_xfail:
            out.append(f"{c.cell_id}: passes now but is listed as a known failure ({c.xfail}): remove the entry")
        if c.outcome == "pass":
            continue
        known = f" [known failure: {c.xfail}]" if c.xfail else ""
        out.append(f"{c.cell_id}: {c.outcome}{known}: {c.detail}")
        if c.outcome == "error" and c.log_tail and not c.xfail:
            out.extend(f"    | {line}" for line in c.log_tail.splitlines()[-5:])
    return "\n".join(out)


def render(result: RunResult) -> str:
    env = result.environment
    counts = {o: sum(c.outcome == o for c in result.cells) for o in ("pass", "fail", "error", "unsupported")}
    head = [
        f"{describe_transformers(env)}, accelerate {env.get('accelerate')}, torch {env.get('torch')},"
        f" safetensors {env.get('safetensors')}, huggingface_hub {env.get('huggingface_hub')}",
        f"standard: --require {result.require}: {STANDARD[result.require]}",
    ]
    for name, info in sorted(result.baselines.items()):
        if "error" in info or "unsupported" in info:
            state = f"error: {info['error']}" if "error" in info else f"unsupported: {info['unsupported']}"
        else:
            state = f"round-trip vs fixture: {info['roundtrip_grade'] or 'differs'}"
            if info.get("roundtrip_classes"):
                state += f" ({', '.join(info['roundtrip_classes'])})"
        head.append(f"baseline {name}: {state}")
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    known = sum(c.xfail is not None and c.outcome in ("fail", "error") for c in result.cells)
    if known:
        unknown = sum(c.counts_as_failure for c in result.cells)
        summary += f" ({known} known failures listed in --xfails; {unknown} not listed)"
    body = [*head, "", table(result), "", summary]
    more = details(result)
    if more:
        body += ["", more]
    return "\n".join(body)
