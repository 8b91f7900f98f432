"""The shape of the package: what is installed, what imports what."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The only harness modules that may import the reference: the fault catalogue is a mutated reference,
# and the IUT resolver loads it as `--impl reference`. Nothing that reads or judges a checkpoint may.
MAY_IMPORT_REFERENCE = {"harness/plan/faults.py", "harness/plan/impls.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_package_folder_is_installed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        "offload_conformance." + ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("harness", "fixtures", "reference_impl")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert listed == on_disk


def test_no_judging_module_imports_the_reference() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "harness").rglob("*.py"))
        if str(p.relative_to(ROOT)) not in MAY_IMPORT_REFERENCE
        and any(".reference_impl" in name for name in _imports(p))
    ]
    assert offenders == []


def test_no_module_imports_the_old_top_level_names() -> None:
    """Inside the package everything is imported as offload_conformance.*: a bare `fixtures` would be the
    unrelated PyPI distribution of that name in a downstream venv."""
    bare = {"harness", "fixtures", "reference_impl"}
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for top in ("harness", "fixtures", "reference_impl", "tests")
        for p in sorted((ROOT / top).rglob("*.py"))
        for name in _imports(p)
        if name.split(".")[0] in bare
    ]
    assert offenders == []


def test_the_pytest_plugin_imports_nothing_heavy() -> None:
    code = (
        "import offload_conformance.harness.pytest_plugin, sys;"
        " print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
