"""pytest plugin: conformance cells as ordinary pytest items.

    pytest --offload-impl=mypkg.save:save_pretrained [--offload-fixture NAME] [--offload-mode NAME] ...

adds one item per cell, `test_conformance[<cell id>]`, so `-k`, `--junitxml` and pytest-xdist work
as for any test. The cells are planned by the same core as `offload-conformance run`
(harness.plan.selection) and take the same options, prefixed `--offload-`. Without --offload-impl
the plugin adds nothing and imports nothing beyond pytest: it is registered in every pytest run of
a venv that installs this package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

PLUGIN = "offload-conformance-cells"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("offload-conformance", "offload-conformance: offloaded save_pretrained conformance")
    group.addoption("--offload-impl", help="the save implementation to test: upstream | reference | pkg.mod:func")
    group.addoption("--offload-fixture", action="append", default=[], help="fixture (repeatable; default: all)")
    group.addoption("--offload-mode", action="append", default=[], help="offload mode (repeatable; default: all)")
    group.addoption(
        "--offload-max-shard-size",
        action="append",
        default=[],
        help="'default' or a size (repeatable; default: the matrix's shard-size axis)",
    )
    group.addoption("--offload-save-option", action="append", default=[], help="KEY=VALUE (see run --help)")
    group.addoption("--offload-context", action="append", default=[], help="save context (see run --help)")
    group.addoption("--offload-cell", action="append", default=[], help="only cells whose id matches (fnmatch)")
    group.addoption("--offload-require", choices=("bytes", "tensors"), default="bytes", help="grade to pass")
    group.addoption("--offload-timeout", type=float, default=600.0, help="seconds before a cell is killed")
    group.addoption("--offload-memory-limit", metavar="SIZE", help="kill a cell whose RSS exceeds SIZE (e.g. 8GB)")
    group.addoption("--offload-max-read-amplification", type=float, metavar="X", help="cost budget (see run --help)")
    group.addoption("--offload-max-extra-rss", metavar="SIZE", help="cost budget (see run --help)")
    group.addoption("--offload-fp8-on-cpu", choices=("keep", "dequantize"), default="keep", help="see run --help")
    group.addoption("--offload-lifecycle", action="append", default=[], choices=("resave",), help="see run --help")
    group.addoption("--offload-xfails", help="known failures file, or 'auto' (the file shipped for the transformers)")
    group.addoption("--offload-out", help="where cells write (default: a new temporary directory)")


class ConformanceFailure(Exception):
    """A cell that did not pass: its outcome, classes and detail, shown instead of a traceback."""


class ConformanceItem(pytest.Item):
    def __init__(self, *, cell: Any, plugin: _Plugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cell = cell
        self.plugin = plugin

    def runtest(self) -> None:
        from offload_conformance.harness.outcomes import Outcome

        result = self.plugin.runner.run_one(self.cell)
        known = self.plugin.known.reason(self.cell.cell_id)
        if result.outcome is Outcome.UNSUPPORTED:
            pytest.skip(f"unsupported: {result.detail}")
        if result.outcome is not Outcome.PASS:
            if known:
                pytest.xfail(f"known failure: {known}")
            what = f"{result.outcome}: {', '.join(result.classes)}" if result.classes else result.outcome
            raise ConformanceFailure(f"{what}: {result.detail}")
        if known and self.plugin.known.drift:
            self.plugin.fixed.append(self.cell.cell_id)  # an older release's known failure, fixed here: drift
        elif known:
            raise ConformanceFailure(f"passes now but is listed as a known failure ({known}): remove the entry")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int, str]:
        return "offload-conformance", 0, self.name


class _Plugin:
    def __init__(self, config: pytest.Config) -> None:
        # Imported only now that cells were asked for: torch and transformers come with them.
        from offload_conformance.harness.plan import known_failures, selection
        from offload_conformance.harness.run.runner import Runner

        opt = config.getoption
        wanted = selection.Selection(
            fixtures=tuple(opt("--offload-fixture")),
            modes=tuple(opt("--offload-mode")),
            impls=(opt("--offload-impl"),),
            shard_sizes=tuple(opt("--offload-max-shard-size")),
            save_options=tuple(opt("--offload-save-option")),
            contexts=tuple(opt("--offload-context")),
            cells=tuple(opt("--offload-cell")),
        )
        try:
            settings = selection.settings(
                require=opt("--offload-require"),
                timeout=opt("--offload-timeout"),
                memory_limit=opt("--offload-memory-limit"),
                max_read_amplification=opt("--offload-max-read-amplification"),
                max_extra_rss=opt("--offload-max-extra-rss"),
                fp8_on_cpu=opt("--offload-fp8-on-cpu"),
                lifecycle=tuple(opt("--offload-lifecycle")),
            )
            self.cells = selection.plan(wanted)
            xfails = opt("--offload-xfails")
            self.known = known_failures.load(xfails) if xfails else known_failures.NONE
        except (selection.PlanError, known_failures.KnownFailuresError) as e:
            raise pytest.UsageError(str(e)) from None
        out = Path(opt("--offload-out") or tempfile.mkdtemp(prefix="offload-conformance-"))
        self.runner = Runner(out, settings)
        self.fixed: list[str] = []  # with drift: cells the older release's file lists that pass

    def pytest_report_header(self) -> list[str]:
        return [f"offload-conformance: {self.known.drift}"] if self.known.drift else []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from offload_conformance.harness.report.terminal import unmatched_lines

        unmatched = self.known.unmatched([c.cell_id for c in self.cells])
        for line in unmatched_lines(unmatched, self.known.source):
            terminalreporter.write_line(f"offload-conformance warning: {line}", yellow=True)
        for cell_id in self.fixed:
            terminalreporter.write_line(f"offload-conformance: fixed since {self.known.listed_for}: {cell_id}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--offload-impl"):
        os.environ["HF_HUB_OFFLINE"] = "1"
        config.pluginmanager.register(_Plugin(config), PLUGIN)


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection sees the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    plugin = config.pluginmanager.get_plugin(PLUGIN)
    if plugin is None:
        return
    items.extend(
        ConformanceItem.from_parent(session, name=f"test_conformance[{c.cell_id}]", cell=c, plugin=plugin)
        for c in plugin.cells
    )
