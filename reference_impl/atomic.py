"""Replace a directory with a fully written one in a single atomic step.

A crash at any moment leaves the target as it was or as the new save: the new checkpoint is
written into a staging directory beside the target, files of the target that survive the save
(a tokenizer, a README) are hard-linked into it, and the two directories are exchanged with
renameat2(RENAME_EXCHANGE). Where the kernel or filesystem lacks that, two renames with a backup
are used instead; a crash between them leaves the old save complete under `.<name>.old-*`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's data durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_directory(staging: Path, target: Path, keep: list[str]) -> None:
    """Make `staging` the new `target`; names in `keep` come along from the old target unless
    staging has its own file of that name."""
    for name in keep:
        if (staging / name).exists():
            continue
        src = target / name
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, staging / name, copy_function=os.link, symlinks=True)
        else:
            os.link(src, staging / name, follow_symlinks=False)
    fsync_dir(staging)
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now holds the old save
    else:
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, backup / "old")
        os.rename(staging, target)
        shutil.rmtree(backup)
    fsync_dir(target.parent)
