"""A copy of installed packages, first on the path of every process a run starts; a mutant is applied to the copy.

The copy is a tree of real directories holding symbolic links to the installed files, so building it costs
one link per file and importing from it runs exactly the installed code. Applying a mutant replaces one link
by a real file with the mutated text; restoring puts the link back. The installed package is never written.
Compiled bytecode of the copy lives in the copy's own `__pycache__` directories; the mutated module's is
removed on both sides of the swap, so a cached compilation of one text is never taken for another.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from offload_conformance.harness.tools.mutants.model import Mutant

# The packages a target can live in: each is copied whole, so a process importing it takes all of it from the copy.
PACKAGES = ("transformers", "accelerate", "huggingface_hub")


class OverlayError(RuntimeError):
    pass


def installed(package: str) -> Path:
    """The directory of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OverlayError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


class Overlay:
    """`root` goes first on sys.path (PYTHONPATH) of the processes that must import the copy."""

    def __init__(self, root: Path, packages: tuple[str, ...] = PACKAGES) -> None:
        self.root = root.resolve()
        self.packages = {name: installed(name) for name in packages}

    def build(self) -> Overlay:
        if self.root.exists():
            shutil.rmtree(self.root)
        for name, source in self.packages.items():
            for directory, dirs, files in os.walk(source):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                here = self.root / name / Path(directory).relative_to(source)
                here.mkdir(parents=True, exist_ok=True)
                for f in files:
                    if not f.endswith((".pyc", ".pyo")):
                        (here / f).symlink_to(Path(directory) / f)
        return self

    def path(self, file: str) -> Path:
        """A file of the copy, `file` relative to the packages' parent directory (Target.file)."""
        return self.root / file

    def original(self, file: str) -> Path:
        package, _, rest = file.partition("/")
        return self.packages[package] / rest

    @contextlib.contextmanager
    def applied(self, mutant: Mutant | None, text: str | None) -> Iterator[None]:
        """The copy with `mutant`'s file holding `text` (its mutated source); unmutated for None."""
        if mutant is None:
            yield
            return
        link = self.path(mutant.file)
        if not link.is_symlink():
            raise OverlayError(f"{link} is not an unmutated file of the overlay (another mutant applied?)")
        _drop_bytecode(link)
        link.unlink()
        try:
            link.write_text(text or "", encoding="utf-8")
            yield
        finally:
            link.unlink(missing_ok=True)
            _drop_bytecode(link)
            link.symlink_to(self.original(mutant.file))


def _drop_bytecode(module: Path) -> None:
    for cached in (module.parent / "__pycache__").glob(f"{module.stem}.*.pyc"):
        cached.unlink(missing_ok=True)
