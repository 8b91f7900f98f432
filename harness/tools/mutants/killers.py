"""The cell that killed each mutant before (killers.txt): a mutant meets it first.

A mutant runs at most `--max-cells` of the hundreds of cells reaching its line, chosen by the lines they execute and
the values they bring (analysis._second_look); a kill made once by a cell the order then leaves past the cap is lost
(the seventh analysis lost six of the sixth's kills so, and the cells that kill three survivors of both came
past the 32nd). As PIT's
history does, the cell that killed a mutant in a full analysis or a targeted run leads that mutant's cells. Only the
order changes: a kill still counts only when the run sees the verdict change, and a listed cell that no longer
reaches the mutant (or no longer exists) is passed over, and an id no mutant of an analysed target has any more
(another release, a moved line) is reported stale, as equivalent.txt's are (analysis.stale).
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).parent / "killers.txt"


class KillersError(ValueError):
    pass


def load(path: Path | None) -> dict[str, tuple[str, ...]]:
    """mutant id -> the cells that killed it, in the file's order; {} without a file."""
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as e:
        raise KillersError(f"killers file {path}: {e.strerror}") from None
    hints: dict[str, list[str]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise KillersError(f"{path}:{n}: expected `MUTANT-ID  CELL-ID`, got {raw.strip()[:80]!r}")
        hints.setdefault(parts[0], []).append(parts[1])
    return {m: tuple(cells) for m, cells in hints.items()}
