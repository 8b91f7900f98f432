"""A cell: one fixture loaded in one offload mode and saved by one IUT with one set of save options."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from offload_conformance.fixtures.spec import Fixture, GeneratedSpec
from offload_conformance.harness.plan.contexts import Context
from offload_conformance.harness.plan.modes import BASELINE_MODE, Mode, Placement, by_name

SPLIT_GROUPS = "split-groups"  # a max_shard_size derived per fixture (plan.shards)

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
    fixture: Fixture
    mode: Mode
    impl: str
    save_options: SaveOptions = ()
    context: Context = Context.EMPTY

    @property
    def cell_id(self) -> str:
        """fixture-mode-impl[-options][-context]: the context last, so a known-failure pattern written for the
        empty context (`...-upstream-max_shard_size=*`) covers the cell in every context."""
        label = options_label(self.save_options)
        parts = [self.fixture.name, self.mode.name, self.impl] + ([label] if label else [])
        return "-".join(parts + ([self.context] if self.context is not Context.EMPTY else []))

    @property
    def baseline(self) -> Cell:
        """The control this cell is compared with: the installed transformers saving the in-memory model
        into an empty directory."""
        return Cell(self.fixture, by_name(BASELINE_MODE), BASELINE_IMPL, self.save_options)

    @property
    def earlier(self) -> Cell | None:
        """The save the target directory holds before this cell's save (a baseline of other options), if any."""
        options = self.context.earlier_options
        if options is None:
            return None
        return Cell(self.fixture, by_name(BASELINE_MODE), BASELINE_IMPL, options)


def has_groups(fixture: Fixture) -> bool:
    """Whether a boundary can fall inside a fused group of the model (max_shard_size=split-groups applies): routed
    experts, or a checkpoint tensor split on load. A generated fixture says only whether it is a MoE."""
    if isinstance(fixture, GeneratedSpec):
        return fixture.is_moe
    from offload_conformance.fixtures.catalog import layout_for

    return bool({"fused", "one-to-many"} & layout_for(fixture).kinds)


def has_experts(fixture: Fixture) -> bool:
    """Whether the model has routed experts: `experts-on-disk` offloads nothing from a model without them."""
    if isinstance(fixture, GeneratedSpec):
        return fixture.is_moe
    from offload_conformance.fixtures.catalog import layout_for

    return "fused" in layout_for(fixture).kinds


def matrix(
    fixtures: Iterable[Fixture],
    modes: Iterable[Mode],
    impls: Iterable[str],
    options: Iterable[SaveOptions] = ((),),
    contexts: Iterable[Context] = (Context.EMPTY,),
) -> list[Cell]:
    """Every combination, in report order: fixture, then save options, then context, then mode, then IUT; but no
    experts-on-disk cell of a model without experts (it would be the in-memory cell again), and no split-groups
    cell of a model without fused groups (plan.shards)."""
    modes, impls, options, contexts = list(modes), list(impls), list(options), list(contexts)
    experts = {f: has_experts(f) for f in fixtures}
    groups = {f: has_groups(f) for f in experts}
    return [
        Cell(f, m, i, o, x)
        for f in experts
        for o in options
        if groups[f] or dict(o).get("max_shard_size") != SPLIT_GROUPS
        for x in contexts
        for m in modes
        if experts[f] or m.placement not in (Placement.EXPERTS_ON_DISK, Placement.MAP_ROUTERS_ON_DISK)
        for i in impls
    ]


def safe_name(cell_id: str) -> str:
    """A cell id as a directory name."""
    return "".join(c if c.isalnum() or c in "-_.+=," else "_" for c in cell_id)
