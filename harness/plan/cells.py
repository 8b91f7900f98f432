"""A cell: one fixture loaded in one offload mode and saved by one IUT with one set of save options."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from offload_conformance.fixtures.spec import FixtureSpec
from offload_conformance.harness.plan.modes import BASELINE_MODE, Mode, by_name

# The save option axis: upstream's default `max_shard_size`, and a size small enough that the
# per-expert parts of one fused tensor land in different shards.
DEFAULT_SHARDS = "default"
SMALL_SHARDS = "24KB"
SHARD_SIZES = (DEFAULT_SHARDS, SMALL_SHARDS)
BASELINE_IMPL = "upstream"  # the baseline is the installed transformers' own in-memory save

SaveOptions = tuple[tuple[str, Any], ...]


def save_options(shard_size: str) -> SaveOptions:
    """The save_pretrained keyword arguments of one point of the shard-size axis."""
    return () if shard_size == DEFAULT_SHARDS else (("max_shard_size", shard_size),)


def shard_size(options: SaveOptions | dict[str, Any]) -> str:
    """The inverse of save_options: the axis value a cell was saved with."""
    return str(dict(options).get("max_shard_size", DEFAULT_SHARDS))


def options_label(options: SaveOptions | dict[str, Any]) -> str:
    """'max_shard_size=24KB', or '' for upstream's defaults."""
    return ",".join(f"{k}={v}" for k, v in sorted(dict(options).items()))


@dataclass(frozen=True)
class Cell:
    fixture: FixtureSpec
    mode: Mode
    impl: str
    save_options: SaveOptions = ()

    @property
    def cell_id(self) -> str:
        label = options_label(self.save_options)
        return "-".join([self.fixture.name, self.mode.name, self.impl] + ([label] if label else []))

    @property
    def baseline(self) -> Cell:
        """The control this cell is compared with: the installed transformers saving the in-memory model."""
        return Cell(self.fixture, by_name(BASELINE_MODE), BASELINE_IMPL, self.save_options)


def matrix(
    fixtures: Iterable[FixtureSpec],
    modes: Iterable[Mode],
    impls: Iterable[str],
    options: Iterable[SaveOptions] = ((),),
) -> list[Cell]:
    """Every combination, in report order: fixture, then save options, then mode, then IUT."""
    modes, impls, options = list(modes), list(impls), list(options)
    return [Cell(f, m, i, o) for f in fixtures for o in options for m in modes for i in impls]


def safe_name(cell_id: str) -> str:
    """A cell id as a directory name."""
    return "".join(c if c.isalnum() or c in "-_.+=," else "_" for c in cell_id)
