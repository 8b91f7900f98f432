"""The one planning core behind the CLI and the pytest plugin: what the user asked for, as cells.

Both front-ends turn their options into a `Selection` and `Settings` and call `plan`; every bad
value is one `PlanError` naming it, raised before any cell runs.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field

from huggingface_hub.serialization._base import parse_size_to_int

from offload_conformance.fixtures.registry import EXTRA_FIXTURES
from offload_conformance.harness.outcomes import Fp8OnCpu, Grade
from offload_conformance.harness.plan.budget import Budget, BudgetError
from offload_conformance.harness.plan.cells import (
    BASELINE_IMPL,
    DEFAULT_SHARDS,
    SHARD_SIZES,
    SMALL_SHARDS,
    Cell,
    SaveOptions,
    matrix,
    save_options,
    shard_size,
)
from offload_conformance.harness.plan.contexts import Context, UnknownContext
from offload_conformance.harness.plan.contexts import by_name as context_by_name
from offload_conformance.harness.plan.extras import EXTRAS
from offload_conformance.harness.plan.impls import BUILTIN, ImplError, resolve
from offload_conformance.harness.plan.modes import MODES, Mode, Placement, UnknownMode
from offload_conformance.harness.plan.modes import by_name as mode_by_name
from offload_conformance.harness.plan.options import OptionError, parse_set
from offload_conformance.harness.plan.shards import FORCED
from offload_conformance.harness.results import Shard


class PlanError(ValueError):
    """A selection that names no valid cell: one line, shown as a usage error."""


@dataclass(frozen=True)
class Selection:
    """Which cells to run; an empty axis means its default."""

    fixture_set: str | None = None  # a named set (fixtures.sets): default, all
    fixtures: tuple[str, ...] = ()  # names of registered fixtures
    specs: tuple[str, ...] = ()  # fixtures given as FixtureSpec JSON (what fuzz prints)
    modes: tuple[str, ...] = ()
    impls: tuple[str, ...] = ()
    shard_sizes: tuple[str, ...] = ()
    contexts: tuple[str, ...] = ()  # plan.contexts names: what the target directory holds before the save
    save_options: tuple[str, ...] = ()  # KEY=VALUE save options besides max_shard_size (plan.options)
    cells: tuple[str, ...] = ()  # fnmatch patterns over cell ids
    shard: str | None = None  # "K/N": the K-th of N parts of the selected cells (for parallel CI jobs)


@dataclass(frozen=True)
class Settings:
    """How to run and judge the cells."""

    require: Grade = Grade.BYTES
    timeout: float = 600.0
    jobs: int = 1
    memory_limit: int | None = None  # bytes of RSS before a cell is killed
    budget: Budget = field(default_factory=Budget)
    fp8_on_cpu: Fp8OnCpu = Fp8OnCpu.KEEP
    resave_everywhere: bool = False  # `--lifecycle resave`: load back and save again every passing cell
    oracles: bool = False  # judge each cell's save with the alternative oracles too (the mutation analysis)


# The `resave` check loads and saves a cell once more (about what the cell cost): in every mode it would nearly
# double the default matrix, and even on one mode's passing cells it costs more than the 5 minutes the default
# matrix has left. It runs with `--lifecycle resave`, on the cells that passed (a failing save is wrong already,
# and may not load back); the kill table and the tests run it.
def resaves(cell: Cell, settings: Settings) -> bool:
    """Whether a passing cell is also loaded back and saved again (class resave)."""
    return settings.resave_everywhere


def settings(
    require: str = "bytes",
    timeout: float = 600.0,
    jobs: int = 1,
    memory_limit: str | None = None,
    max_read_amplification: float | None = None,
    max_extra_rss: str | None = None,
    fp8_on_cpu: str = Fp8OnCpu.KEEP,
    lifecycle: tuple[str, ...] = (),
) -> Settings:
    if jobs < 1 or timeout <= 0:
        raise PlanError("--jobs must be >= 1 and --timeout > 0")
    try:
        limit = parse_size_to_int(memory_limit) if memory_limit else None
    except ValueError:
        raise PlanError(f"--memory-limit {memory_limit!r}: expected a size like 8GB") from None
    try:
        budget = Budget.parse(max_read_amplification, max_extra_rss)
    except BudgetError as e:
        raise PlanError(str(e)) from None
    unknown = sorted(set(lifecycle) - set(LIFECYCLE_OPTIONS))
    if unknown:
        raise PlanError(f"--lifecycle {unknown[0]!r}: expected one of {', '.join(LIFECYCLE_OPTIONS)}")
    everywhere = "resave" in lifecycle
    return Settings(Grade(require), timeout, jobs, limit, budget, Fp8OnCpu(fp8_on_cpu), everywhere)


LIFECYCLE_OPTIONS = ("resave",)  # --lifecycle resave: the resave check on every passing cell


def _fixtures(selection: Selection) -> list:
    from offload_conformance.fixtures import FixtureSpec, SpecError
    from offload_conformance.fixtures.catalog import layout_for
    from offload_conformance.fixtures.sets import candidates, fixture_set

    try:
        # Named fixtures are looked up without building the set `all` (the runner builds the ones it runs),
        # and may be extra fixtures outside the default matrix; a whole set is built only when it is what runs.
        name = selection.fixture_set or "default"
        pool = candidates(name) if selection.fixtures else fixture_set(name)
        by_name = {f.name: f for f in pool}
        unknown = [n for n in selection.fixtures if n not in by_name]
        if unknown:
            known = ", ".join(by_name) if len(by_name) < 40 else f"{len(by_name)} fixtures: see `fixtures list`"
            raise SpecError(f"unknown fixture {unknown[0]!r} (known: {known})")
        named = [by_name[n] for n in selection.fixtures]
        given = [FixtureSpec.from_json(json.loads(text)) for text in selection.specs]
        for spec in given:
            layout_for(spec)  # unknown architecture or quantization: an error now, not in a cell
    except SpecError as e:
        raise PlanError(str(e)) from None
    except (ValueError, TypeError, AttributeError) as e:
        raise PlanError(f"--spec: not a FixtureSpec JSON object ({e})") from None
    # Nothing named: the whole set (the default set, unless specs alone were given).
    return (named + given) or (pool if selection.fixture_set or not given else [])


def modes(names: tuple[str, ...]) -> list[Mode]:
    try:
        return [mode_by_name(n) for n in names] if names else [m for m in MODES if m.default]
    except UnknownMode as e:
        raise PlanError(str(e)) from None


def impl(spec: str) -> str:
    """An IUT spec, checked in this process (a typo is one line here, not an error in every cell)."""
    try:
        resolve(spec)
    except ImplError as e:
        raise PlanError(str(e)) from None
    return spec


def shard_options(size: str) -> tuple:
    if size not in (DEFAULT_SHARDS, *FORCED):
        try:
            parse_size_to_int(size)
        except ValueError:
            known = ", ".join((DEFAULT_SHARDS, *FORCED))
            raise PlanError(f"--max-shard-size {size!r}: expected one of {known} or a size like 24KB") from None
    return save_options(size)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise PlanError(f"--shard {text!r}: expected K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise PlanError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def split(cells: list[Cell], count: int) -> list[list[Cell]]:
    """`count` parts of `cells`, each keeping the cells of one baseline together (so a baseline runs in one
    job only), balanced greedily by size; deterministic: the same cells give the same parts on any machine.
    Each part keeps the cells' planned order."""
    groups: dict[Cell, list[Cell]] = {}
    for c in cells:
        groups.setdefault(c.baseline, []).append(c)
    loads = [0] * count
    owner: dict[Cell, int] = {}
    for base in sorted(groups, key=lambda b: (-len(groups[b]), b.cell_id)):
        part = loads.index(min(loads))
        owner[base] = part
        loads[part] += len(groups[base])
    return [[c for c in cells if owner[c.baseline] == part] for part in range(count)]


def plan(selection: Selection) -> list[Cell]:
    """The selected cells (of this shard, with --shard)."""
    return plan_with_shard(selection)[0]


def plan_with_shard(selection: Selection) -> tuple[list[Cell], Shard | None]:
    """The selected cells of this shard, and the shard's record (None for an unsplit run)."""
    cells = _all_selected(selection)
    if selection.shard is None:
        return cells, None
    k, n = parse_shard(selection.shard)
    return split(cells, n)[k - 1], Shard(k, n, tuple(c.cell_id for c in cells))


def _all_selected(selection: Selection) -> list[Cell]:
    cells = _default_economies(selection, _planned_matrix(selection))
    if not cells:
        # e.g. split-groups or a MoE-only mode asked of models without fused groups or experts
        raise PlanError("the selection plans no cell: the modes and shard sizes asked do not apply to its fixtures")
    if selection.cells:
        cells = [c for c in cells if any(fnmatch.fnmatchcase(c.cell_id, p) for p in selection.cells)]
        if not cells:
            raise PlanError(f"--cell {' '.join(selection.cells)}: matches no cell of the planned matrix")
    return cells


# Where the default matrix runs a cell family on a few fixtures or modes only (the fifth full mutation analysis,
# docs/mutants.md: of its 1892 cells, 111 killed a mutant first, and none of the cells these rules leave out).
# The reference plans its shards from the model's shapes whatever the placement, which only decides where the bytes
# are read from (every mode's default-size cells read them): its small shards run in these modes.
REFERENCE_SMALL_SHARD_MODES = frozenset(
    {
        "in-memory",
        "disk-partial",
        "disk-partial+offload_buffers",
        "accelerate-disk+offload_buffers",
        "accelerate-cpu",
        "map-routers-on-disk+offload_buffers",
    }
)
# Upstream's save of a model accelerate's own cpu_offload/disk_offload placed crashes on every fixture alike (a
# known failure of 5.24.0 and 5.25.0): it runs on the fixtures the save contexts use.
ACCELERATE_LOADED_FIXTURES = frozenset({"qwen3_moe", "qwen3_moe_sharded", "deepseek_v3", "llama", "hrm_text"})
# The reference's staging directory and swap are one path whatever the target held; the earlier sharded save
# (the context with the most files to replace) keeps it in the matrix.
REFERENCE_CONTEXTS = frozenset({Context.EMPTY, Context.OVER_SHARDED, Context.BESIDE_OTHER_FORMATS})


def _default_economies(selection: Selection, cells: list[Cell]) -> list[Cell]:
    """The default matrix must stay within 5 minutes; it saves where the cells would repeat others. Only what was
    not asked for: with no --mode, a mode with a step before the save (`+forward`, `+train-eval`) runs with
    upstream's default max_shard_size only (the step is what it adds), and a fixture of SAVING_MODES_ONLY runs in
    SAVING_MODES; with no --max-shard-size, a fixture of DEFAULT_SHARDS_ONLY runs the default size only; with no
    --impl, the reference's small shards run in REFERENCE_SMALL_SHARD_MODES (unless --mode names the modes) and its
    save contexts are REFERENCE_CONTEXTS (unless --context names them), and upstream's save in accelerate's own
    loader modes runs on ACCELERATE_LOADED_FIXTURES (unless --fixture or --mode names them)."""
    from offload_conformance.fixtures.registry import DEFAULT_SHARDS_ONLY, SAVING_MODES_ONLY
    from offload_conformance.harness.plan.extras import SAVING_MODES

    named_fixtures = bool(selection.fixtures or selection.specs or selection.fixture_set not in (None, "default"))

    def repeats(c: Cell) -> bool:
        stepped = bool(c.mode.step) and not selection.modes
        if bool(c.save_options) and (stepped or (c.fixture.name in DEFAULT_SHARDS_ONLY and not selection.shard_sizes)):
            return True
        if c.fixture.name in SAVING_MODES_ONLY and c.mode.name not in SAVING_MODES and not selection.modes:
            return True
        if selection.impls:
            return False
        if c.impl == "reference":
            small = shard_size(c.save_options) == SMALL_SHARDS and not selection.shard_sizes
            if small and not selection.modes and c.mode.name not in REFERENCE_SMALL_SHARD_MODES:
                return True
            return not selection.contexts and c.context not in REFERENCE_CONTEXTS
        return (
            c.impl == BASELINE_IMPL
            and c.mode.placement in (Placement.ACCELERATE_CPU, Placement.ACCELERATE_DISK)
            and not (selection.modes or named_fixtures)
            and c.fixture.name not in ACCELERATE_LOADED_FIXTURES
        )

    return [c for c in cells if not repeats(c)]


def _option_sets(selection: Selection) -> list[SaveOptions]:
    """Each --max-shard-size with each --save-option (or none): the cells' save options, sorted by keyword."""
    try:
        others = [parse_set(o) for o in selection.save_options] or [()]
    except OptionError as e:
        raise PlanError(str(e)) from None
    sizes = [shard_options(s) for s in selection.shard_sizes or SHARD_SIZES]
    return [tuple(sorted(s + o)) for s in sizes for o in others]


def _contexts(names: tuple[str, ...]) -> list[Context]:
    try:
        return [context_by_name(n) for n in names] or [Context.EMPTY]
    except UnknownContext as e:
        raise PlanError(str(e)) from None


def _planned_matrix(selection: Selection) -> list[Cell]:
    fixtures, selected_modes = _fixtures(selection), modes(selection.modes)
    impls = [impl(i) for i in selection.impls or BUILTIN]
    cells = matrix(fixtures, selected_modes, impls, _option_sets(selection), _contexts(selection.contexts))
    if not (selection.shard_sizes or selection.save_options or selection.contexts):
        # with no --mode, an extra may use a mode outside the default set (the hand-written device maps)
        # The default set, nothing named: an extra may also run a named fixture outside it, on its own cells only.
        whole_default = not (selection.fixtures or selection.specs or selection.fixture_set not in (None, "default"))
        pool = fixtures + ([f for f in EXTRA_FIXTURES if f not in fixtures] if whole_default else [])
        cells += _extras(pool, selected_modes if selection.modes else list(MODES), impls, not selection.impls)
    return list(dict.fromkeys(cells))


def _extras(fixtures: list, selected_modes: list[Mode], impls: list[str], default_impls: bool) -> list[Cell]:
    """The default matrix's cells of other contexts, options, forced shard sizes, modes and IUTs (plan.extras). An
    extra naming its own IUTs runs only where no --impl was given; with --impl, the IUTs asked."""
    out: list[Cell] = []
    for extra in EXTRAS:
        if extra.impls and not default_impls:
            continue
        chosen = [f for f in fixtures if f.name in extra.fixtures]
        ms = [m for m in selected_modes if m.name in extra.modes]
        sets = [
            tuple(sorted(save_options(s) + (parse_set(o) if o else ())))
            for s in extra.shard_sizes
            for o in extra.options
        ]
        out += matrix(chosen, ms, list(extra.impls) or impls, sets, extra.contexts)
    return out
