"""pytest plugin: conformance cells as ordinary pytest items.

    pytest --offload-impl=mypkg.save:save_pretrained [--offload-fixture NAME] [--offload-mode NAME]

adds one item per cell, `test_conformance[<fixture>-<mode>[-max_shard_size=S]]`, so `-k`,
`--junitxml` and pytest-xdist work as for any test. Without --offload-impl the plugin adds nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from fixtures import DEFAULT_FIXTURES, FixtureSpec
from fixtures import by_name as fixture_by_name
from fixtures.generate import generate
from fixtures.registry import SMALL_SHARDS
from harness.impls import ImplError, resolve
from harness.modes import MODES
from harness.modes import by_name as mode_by_name
from harness.runner import Cell, Execution, baseline_of, execute, judge, safe_name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("offload-conformance", "offload-conformance: offloaded save_pretrained conformance")
    group.addoption("--offload-impl", help="the save implementation to test: upstream | reference | pkg.mod:func")
    group.addoption("--offload-fixture", action="append", default=[], help="fixture (repeatable; default: all)")
    group.addoption("--offload-mode", action="append", default=[], help="offload mode (repeatable; default: all)")
    group.addoption(
        "--offload-max-shard-size",
        action="append",
        default=[],
        help=f"'default' or a size (repeatable; default: default and {SMALL_SHARDS})",
    )
    group.addoption("--offload-require", choices=("bytes", "tensors"), default="bytes", help="grade to pass")
    group.addoption("--offload-timeout", type=float, default=600.0, help="seconds before a cell is killed")
    group.addoption("--offload-out", help="where cells write (default: a new temporary directory)")


class ConformanceItem(pytest.Item):
    def __init__(self, *, cell: Cell, plugin: _Plugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cell = cell
        self.plugin = plugin

    def runtest(self) -> None:
        result = self.plugin.judge(self.cell)
        if result.outcome == "unsupported":
            pytest.skip(f"unsupported: {result.detail}")
        if result.outcome != "pass":
            raise ConformanceFailure(result.outcome, result.classes, result.detail)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int, str]:
        return "offload-conformance", 0, self.name


class ConformanceFailure(Exception):
    def __init__(self, outcome: str, classes: tuple[str, ...], detail: str) -> None:
        what = f"{outcome}: {', '.join(classes)}" if classes else outcome
        super().__init__(f"{what}: {detail}")


class _Plugin:
    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        self.impl: str = opt("--offload-impl")
        self.require: str = opt("--offload-require")
        self.timeout: float = opt("--offload-timeout")
        self.out = Path(opt("--offload-out") or tempfile.mkdtemp(prefix="offload-conformance-"))
        self._baselines: dict[Cell, Execution] = {}
        self._fixture_dirs: dict[FixtureSpec, Path] = {}
        try:
            resolve(self.impl)
            fixtures = [fixture_by_name(n) for n in opt("--offload-fixture")] or list(DEFAULT_FIXTURES)
            modes = [mode_by_name(n) for n in opt("--offload-mode")] or list(MODES)
        except (ImplError, ValueError) as e:
            raise pytest.UsageError(str(e)) from None
        sizes = opt("--offload-max-shard-size") or ["default", SMALL_SHARDS]
        options = [() if s == "default" else (("max_shard_size", s),) for s in sizes]
        self.cells = [Cell(f, m, self.impl, o) for f in fixtures for o in options for m in modes]

    def _execute(self, cell: Cell, kind: str) -> Execution:
        if cell.fixture not in self._fixture_dirs:  # generated or verified once per process
            self._fixture_dirs[cell.fixture] = generate(cell.fixture)
        fixture = self._fixture_dirs[cell.fixture]
        return execute(cell, fixture, self.out / kind / safe_name(cell.cell_id), self.timeout)

    def judge(self, cell: Cell) -> Any:
        control = baseline_of(cell)
        if control not in self._baselines:  # one per (fixture, save options) and process
            self._baselines[control] = self._execute(control, "baselines")
        return judge(cell, self._execute(cell, "cells"), self._baselines[control], self.require)


def _item_name(cell: Cell) -> str:
    parts = [cell.fixture.name, cell.mode.name] + ([cell.options_id] if cell.save_options else [])
    return f"test_conformance[{'-'.join(parts)}]"


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--offload-impl"):
        os.environ["HF_HUB_OFFLINE"] = "1"
        config.pluginmanager.register(_Plugin(config), "offload-conformance-cells")


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection sees the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    plugin = config.pluginmanager.get_plugin("offload-conformance-cells")
    if plugin is None:
        return
    items.extend(ConformanceItem.from_parent(session, name=_item_name(c), cell=c, plugin=plugin) for c in plugin.cells)
