"""The one column-aligned text table of the terminal views."""

from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[str]], footer: int = 0) -> str:
    """The first row is the header, underlined with dashes; the last `footer` rows (totals) get a
    dashed line above them too. Columns are padded to their widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    rule = "  ".join("-" * w for w in widths)
    if footer:
        lines.insert(len(lines) - footer, rule)
    lines.insert(1, rule)
    return "\n".join(lines)
