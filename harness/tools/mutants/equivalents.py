"""Equivalent mutants, kept like known failures: one `MUTANT-ID  # reason` per line; the reason is required.

A mutant is equivalent when no input can tell it from the original (e.g. `<` -> `<=` where the two sides are
never equal). Listing one takes it out of the score; an id no mutant of the run has any more is reported stale.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).parent / "equivalent.txt"


class EquivalentsError(ValueError):
    pass


def load(path: Path) -> dict[str, str]:
    """id -> reason."""
    try:
        text = path.read_text()
    except OSError as e:
        raise EquivalentsError(f"--equivalents {path}: {e.strerror}") from None
    listed: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        mutant, sep, reason = line.partition("#")
        if not sep or not reason.strip() or not mutant.strip():
            raise EquivalentsError(f"{path}:{n}: expected `MUTANT-ID  # reason`, got {line[:80]!r}")
        listed[mutant.strip()] = reason.strip()
    return listed
