"""Replay the cells the ledger names, in the environment that is installed now."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.sets import built_with, named
from offload_conformance.fixtures.spec import SpecError
from offload_conformance.harness.ledger.entries import Ledger, LedgerError
from offload_conformance.harness.ledger.environments import Environment, bugs_in, mismatches
from offload_conformance.harness.plan.cells import SHARD_SIZES, Cell, matrix, safe_name
from offload_conformance.harness.plan.impls import NAMED
from offload_conformance.harness.plan.modes import MODES
from offload_conformance.harness.plan.selection import impl, settings, shard_options


def runs_dir(out: Path, env: Environment, group: str) -> Path:
    return out / "runs" / env.key / safe_name(group)


def cells_for(ledger: Ledger, env: Environment, group: str | None = None) -> list[Cell]:
    """The cells of every entry replayed in `env` (of one options group), in matrix order; an entry naming no
    cell is an error."""
    bugs = [b for b in bugs_in(ledger, env) if group is None or b.group == group]
    names = tuple(dict.fromkeys(f for b in bugs for f in b.fixtures()))
    newest = group is not None and any(b.newest_fixtures for b in bugs)
    try:
        if newest:
            own = named(tuple(n for n in names if not n.startswith("gen_")))
            gen = built_with(tuple(n for n in names if n.startswith("gen_")), ledger.newest["transformers"])
            fixtures = own + gen
        else:
            fixtures = named(names)
    except SpecError as e:
        raise LedgerError(str(e)) from None
    everything = matrix(fixtures, list(MODES), [impl(i) for i in NAMED], [shard_options(s) for s in SHARD_SIZES])
    for bug in bugs:
        if not any(bug.matches(c.cell_id) for c in everything):
            raise LedgerError(f"{bug.id}: its cells {', '.join(bug.cells)} match no cell in {env.key}")
    return [c for c in everything if any(b.matches(c.cell_id) for b in bugs)]


def replay(ledger: Ledger, env: Environment, out: Path, timeout: float, jobs: int) -> None:
    """Run `env`'s cells (no known-failures list: a flagged cell is the finding) into out/runs/KEY/GROUP, one run
    per options group (a memory budget applies to the cells of the entry that sets it, not to every cell)."""
    from offload_conformance.harness.report import write_reports
    from offload_conformance.harness.run.runner import Runner

    if wrong := mismatches(env, ledger.newest):
        raise LedgerError("this is not the environment to replay: " + "; ".join(wrong))
    shutil.rmtree(out / "runs" / env.key, ignore_errors=True)  # the ledger's own output: another day's must not judge
    groups = {b.group: b.options for b in bugs_in(ledger, env)}
    for group, options in groups.items():
        cells = cells_for(ledger, env, group)
        chosen = {k: float(v) if k == "max_read_amplification" else v for k, v in options}
        run_settings = settings(timeout=timeout, jobs=jobs, **chosen)  # type: ignore[arg-type]
        target = runs_dir(out, env, group)
        print(f"ledger: {env.key} ({group}): {len(cells)} cells", file=sys.stderr, flush=True)
        result = Runner(target, run_settings).run(cells)
        result.write(target / "results.json")
        write_reports(result, target)


def build_newest_fixtures(ledger: Ledger) -> list[str]:
    """Build, with the newest transformers (which must be the one installed), the generated fixtures of every entry
    that replays them on other releases (`newest_fixtures`). Returns their names."""
    from transformers import __version__

    wanted = tuple(
        dict.fromkeys(f for b in ledger.bugs if b.newest_fixtures for f in b.fixtures() if f.startswith("gen_"))
    )
    if not wanted:
        return []
    if __version__ != ledger.newest["transformers"]:
        raise LedgerError(
            f"ledger fixtures: transformers {ledger.newest['transformers']} must be installed, not {__version__}"
        )
    try:
        named(wanted)  # discovers (and caches) what the newest release has
        specs = built_with(wanted, __version__)
    except SpecError as e:
        raise LedgerError(str(e)) from None
    for spec in specs:
        generate(spec)
    return list(wanted)
