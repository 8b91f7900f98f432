"""Start writing a file's dirty pages back to disk while the save is still writing it.

Durability needs every file fsynced before the atomic swap. Left alone, the kernel starts writeback
only when dirty memory passes its background threshold (or after 30 s), so the whole checkpoint would
be written back during the final fsyncs, after all the copying. Asking for writeback of what is written
so far (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: start, do not wait) overlaps the two; the fsync then
waits only for the tail. Where the call does not exist (not Linux) this does nothing, and the fsyncs
alone still make the save durable.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

_SYNC_FILE_RANGE_WRITE = 2
# Bytes written between two requests: large enough that the requests cost nothing, small enough
# that writeback starts early.
EVERY = 32 * 2**20


def _sync_file_range() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if os.uname().sysname != "Linux":
        return None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return fn
    return None


_FN = _sync_file_range()


class Writeback:
    """Asks for writeback of the range of one file written since the last request, every EVERY bytes.
    Written front to back, as the save writes its byte ranges, that is a stream of sequential writes
    trailing the copy. The request returns at once unless the disk's queue is full (a thread of its
    own measured slower here: two cores, and the copying is kernel work of this thread already)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = 0
        self._low = 2**63
        self._high = 0

    def wrote(self, offset: int, nbytes: int) -> None:
        self._pending += nbytes
        self._low, self._high = min(self._low, offset), max(self._high, offset + nbytes)
        if self._pending >= EVERY and _FN is not None:
            # A failure only means no head start: the fsync before the swap still makes it durable.
            _FN(self._fd, self._low, self._high - self._low, _SYNC_FILE_RANGE_WRITE)
            self._pending, self._low, self._high = 0, 2**63, 0
