"""The load's offload folder on its own terms (class `offload-copy`).

transformers offloads a weight to disk by pointing its offload index at the checkpoint's own safetensors file; only
a weight the load changed (fused experts, a dtype other than the file's, a .bin checkpoint) is written into
`offload_folder`, one safetensors file per tensor (accelerate's own disk_offload writes `.dat` files instead, and
copies everything by design: those modes are not judged here). A file there holding exactly the bytes of a tensor
the checkpoint stores is a copy the load need not have made: as much disk again as the model, for a 700 GB one.

Written here, not taken from transformers: the judge must not share code with what it judges.
"""

from __future__ import annotations

from pathlib import Path

from offload_conformance.fixtures.manifest import FixtureError, has_safetensors, read_manifest
from offload_conformance.harness.judge.checkpoint import UnreadableFile, read_safetensors
from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.results import Difference

EXAMPLES = 3


def offload_copies(fixture_dir: Path, offload_dir: Path) -> list[Difference]:
    """One `offload-copy` difference naming the offloaded tensors whose bytes and shape are a checkpoint tensor's."""
    # A symlink is no copy: compressed-tensors' disk cache links the checkpoint's own file.
    files = sorted(p for p in offload_dir.glob("*.safetensors") if not p.is_symlink()) if offload_dir.is_dir() else []
    if not files or not has_safetensors(fixture_dir):
        return []  # nothing offloaded, or a .bin checkpoint: no file the load could have read in place
    try:
        stored = read_manifest(fixture_dir)["tensors"]
    except FixtureError:
        return []  # a hand-made checkpoint: no list of its tensors
    # (shape, sha256 of the bytes): the dtype is spelled differently by the manifest (torch) and the header
    # (safetensors), and equal bytes of equal shape are a copy whatever the label says.
    checkpoint = {(tuple(t["shape"]), str(t["sha256"])): name for name, t in stored.items()}  # type: ignore[index]
    shapes = {shape for shape, _ in checkpoint}
    copies: list[tuple[str, str]] = []
    for path in files:
        try:
            # Only a tensor of a checkpoint tensor's shape is hashed (not fused experts): the others are no copy.
            tensors = read_safetensors(path, digests=lambda t: t.shape in shapes).tensors
        except (OSError, UnreadableFile):
            continue  # an offload file the load left unreadable shows in the save, not here
        copies += [
            (t.name, checkpoint[(t.shape, t.sha256)])
            for t in tensors
            if t.end > t.begin and (t.shape, t.sha256) in checkpoint
        ]
    if not copies:
        return []
    eg = ", ".join(f"{offloaded} (= checkpoint {source})" for offloaded, source in copies[:EXAMPLES])
    more = f" and {len(copies) - EXAMPLES} more" if len(copies) > EXAMPLES else ""
    what = (
        f"offload_folder holds {len(copies)} tensors the checkpoint stores as they are, copied instead of read in "
        f"place: {eg}{more}"
    )
    return [Difference(FailureClass.OFFLOAD_COPY, what, tensor=copies[0][0])]
