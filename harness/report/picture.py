"""matrix.png: the result grid as a picture, for pasting into a PR (needs the `report` extra)."""

from __future__ import annotations

from pathlib import Path

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.report.grid import COLOR, SYMBOL, color_key, grids, modes
from offload_conformance.harness.results import RunResult


def png(result: RunResult, path: Path) -> bool:
    """The matrix as a colored grid, for pasting into a PR; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import to_rgb
    except ImportError:
        return False
    columns = modes(result)
    rows = [(table, row, cells) for table, by_row in grids(result).items() for row, cells in by_row.items()]
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 4, 0.32 * len(rows) + 1.5))
    for y, (_, _, cells) in enumerate(rows):
        for x, m in enumerate(columns):
            c = cells.get(m)
            key = None if c is None else color_key(c)
            ax.add_patch(plt.Rectangle((x, y), 1, 1, color=to_rgb(COLOR[key]) if key else (1, 1, 1), ec="white"))
            if c is not None:
                ax.text(
                    x + 0.5,
                    y + 0.5,
                    ",".join(c.classes)[:14] or SYMBOL[c.outcome],
                    ha="center",
                    va="center",
                    fontsize=6,
                )
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([x + 0.5 for x in range(len(columns))], columns, rotation=45, ha="left", fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([y + 0.5 for y in range(len(rows))], [f"{t}: {r}" for t, r, _ in rows], fontsize=7)
    ax.set_title(
        f"offload-conformance: {describe_transformers(result.environment)} (--require {result.require})",
        fontsize=9,
        pad=60,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
