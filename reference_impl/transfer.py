"""Copy a byte range of one file into another inside the kernel: no buffer of ours, no page of the
source mapped into this process, and the speed of `cp` (which does the same).

`copy_file_range` first; where the kernel or filesystem refuses it (another filesystem on older
kernels, filesystems without it), `sendfile`; failing that, `pread`/`pwrite` through one bounded buffer.
"""

from __future__ import annotations

import errno
import os

# What a kernel or filesystem says when it cannot do this kind of copy (not: the copy went wrong).
_UNSUPPORTED = {
    errno.EXDEV,
    errno.EINVAL,
    errno.ENOSYS,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EPERM,
    errno.EBADF,
    errno.ENOTSOCK,
}
_BUFFER = 8 * 2**20


def _copy_file_range(src: int, src_offset: int, dst: int, dst_offset: int, nbytes: int) -> int:
    return os.copy_file_range(src, dst, nbytes, src_offset, dst_offset)


def _sendfile(src: int, src_offset: int, dst: int, dst_offset: int, nbytes: int) -> int:
    os.lseek(dst, dst_offset, os.SEEK_SET)  # sendfile writes at the destination's position
    return os.sendfile(dst, src, src_offset, nbytes)


def _pread_pwrite(src: int, src_offset: int, dst: int, dst_offset: int, nbytes: int) -> int:
    data = os.pread(src, min(nbytes, _BUFFER), src_offset)
    return os.pwrite(dst, data, dst_offset) if data else 0


_METHODS = (
    (_copy_file_range, _sendfile, _pread_pwrite) if hasattr(os, "copy_file_range") else (_sendfile, _pread_pwrite)
)


def copy_range(src: int, src_offset: int, dst: int, dst_offset: int, nbytes: int) -> None:
    """Copy `nbytes` bytes of file `src` from `src_offset` to file `dst` at `dst_offset`.
    Raises EOFError when `src` ends first."""
    method = 0
    while nbytes:
        try:
            n = _METHODS[method](src, src_offset, dst, dst_offset, nbytes)
        except OSError as e:
            if e.errno in _UNSUPPORTED and method + 1 < len(_METHODS):
                method += 1
                continue
            raise
        if n == 0:
            raise EOFError(f"the source ended {nbytes} bytes early")
        src_offset, dst_offset, nbytes = src_offset + n, dst_offset + n, nbytes - n
