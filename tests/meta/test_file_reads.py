"""The cost counter sees tensor data read from offload files by os-level calls, and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from offload_conformance.harness.run.cost import FileReads


def test_counts_data_bytes_of_offload_files_only(tmp_path: Path) -> None:
    offload = tmp_path / "w.safetensors"
    save_file({"w": torch.arange(256, dtype=torch.float32)}, offload)  # 1024 data bytes
    start = 8 + int.from_bytes(offload.read_bytes()[:8], "little")
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(4096))
    st = offload.stat()
    reads = FileReads({(st.st_dev, st.st_ino): start})
    real_pread = os.pread
    src, plain = os.open(offload, os.O_RDONLY), os.open(other, os.O_RDONLY)
    dst = os.open(tmp_path / "copy.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    reads.install()
    try:
        assert os.pread is not real_pread
        os.pread(src, start, 0)  # the header: not tensor data
        os.pread(plain, 4096, 0)  # not an offload file
        os.pread(src, 100, start - 10)  # 90 data bytes
        os.copy_file_range(src, dst, 1024, start, 0)  # 1024
        os.lseek(src, start + 1000, os.SEEK_SET)
        os.read(src, 4096)  # 24 (the file ends)
        os.sendfile(dst, src, start, 8)  # 8
    finally:
        reads.uninstall()
        for fd in (src, plain, dst):
            os.close(fd)
    assert os.pread is real_pread
    assert reads.bytes == 90 + 1024 + 24 + 8
