"""A save on rank 1 of a torch.distributed group: every process of a distributed script calls save_pretrained.

The cell process joins a two-process gloo group as rank 1; a forked helper is rank 0 and only holds the group
open until the save is done (no collective is asked of it). The group is torn down after the save, so the rest of
the cell (snapshots, the reload check) runs as a single process again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

JOIN_TIMEOUT = timedelta(seconds=60)


@contextmanager
def as_rank(rank: int, rendezvous: Path) -> Iterator[None]:
    """Run the body as `rank` (0 or 1) of a two-process gloo group; rank 0 needs no group (a single process)."""
    if rank == 0:
        yield
        return
    if rank != 1:
        raise ValueError(f"rank={rank}: the cell runs as rank 0 or 1 of two processes")
    store = f"file://{rendezvous}"
    # Both processes are on this machine: the loopback, whatever the host name resolves to (in a container, often
    # nothing gloo can bind).
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # rank 0: join, wait for the save to end, leave
        code = 1
        try:
            os.close(done_write)
            dist.init_process_group("gloo", init_method=store, rank=0, world_size=2, timeout=JOIN_TIMEOUT)
            os.read(done_read, 1)
            dist.destroy_process_group()
            code = 0
        finally:
            os._exit(code)
    os.close(done_read)
    try:
        dist.init_process_group("gloo", init_method=store, rank=1, world_size=2, timeout=JOIN_TIMEOUT)
        try:
            yield
        finally:
            os.write(done_write, b"x")
            dist.destroy_process_group()
    finally:
        os.close(done_write)
        os.waitpid(pid, 0)
