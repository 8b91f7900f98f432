"""What the fork server executes before any cell forks is every cell's reach (worker.preloaded)."""

from __future__ import annotations

import inspect

from offload_conformance.harness.tools.mutants.worker import _lines, preloaded


def test_the_conversion_ops_built_by_the_warm_up_are_reached_before_any_fork() -> None:
    """harness.run.warm builds transformers' conversion mapping in the server: Concatenate.__init__ runs there, and
    a cell's own coverage (started after the fork) never sees it (survivor `Concatenate.__init__:193`)."""
    from transformers import core_model_loading

    file = inspect.getsourcefile(core_model_loading)
    assert file is not None
    lines, first = inspect.getsourcelines(core_model_loading.Concatenate.__init__)
    body = set(range(first + 1, first + len(lines)))
    shared = preloaded([file])
    assert shared[file] & body, "the warm-up's Concatenate.__init__ is not reached"
    assert first in shared[file] or first - 1 in shared[file], "the def line runs at import"


def test_a_cell_gets_the_shared_lines_unless_it_recorded_nothing() -> None:
    shared = {"f.py": frozenset({1, 2})}
    assert _lines({"f.py": frozenset({5})}, shared) == {"f.py": [1, 2, 5]}
    assert _lines({"g.py": frozenset({7})}, shared) == {"f.py": [1, 2], "g.py": [7]}
    assert _lines({}, shared) == {}
