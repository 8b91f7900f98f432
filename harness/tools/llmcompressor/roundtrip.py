"""The compressed save loaded back with transformers, as a user of the checkpoint would: in memory, and fully on disk
(`device_map="auto"` with no RAM to spare, as the seed loads). Runs in the cell process right after the save.

Judged: `from_pretrained` raising; keys the load reports missing, unexpected or mismatched (a compressed tensor it
cannot place, a weight it initialises instead); a tensor loaded in floating point (dequantized, or never quantized)
further from the bf16 source's tensor of that name than quantization can move it (`VALUE_BOUND`); the offloaded
load holding other tensors than the in-memory one.
The result goes beside the save (`RESULT` in the cell's directory, not a file of the checkpoint); run.py turns a
non-empty one into the cell's `reload` class.
"""

from __future__ import annotations

import json
import shutil
import traceback
from pathlib import Path
from typing import Any

RESULT = "roundtrip.json"
LOADING_INFO = ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")
# A dequantized weight may differ from its source by the quantization error: at most a fraction of the source's own
# largest magnitude for NVFP4 (1/6 of a group's maximum) or FP8. A scale applied wrongly lands far outside.
VALUE_BOUND = 0.5


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def _loading_problems(info: dict[str, Any]) -> str:
    found = [
        f"{k} {sorted(map(str, info[k]))[:3]}{' ...' if len(info[k]) > 3 else ''}" for k in LOADING_INFO if info.get(k)
    ]
    return "; ".join(found)


def _bytes_equal(a: Any, b: Any) -> bool:
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    flat_a, flat_b = a.detach().reshape(-1).contiguous(), b.detach().reshape(-1).contiguous()
    return torch.equal(flat_a.view(torch.uint8), flat_b.view(torch.uint8))  # float8 has no torch.equal on CPU


def _difference(in_memory: dict[str, Any], offloaded: dict[str, Any]) -> str:
    if in_memory.keys() != offloaded.keys():
        name = sorted(in_memory.keys() ^ offloaded.keys())[0]
        return f"{name} is {'missing from' if name in in_memory else 'only in'} the offloaded load"
    name = next((n for n in in_memory if not _bytes_equal(in_memory[n], offloaded[n])), None)
    if name is None:
        return ""
    a, b = in_memory[name], offloaded[name]
    return f"{name} differs in the offloaded load ({a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)})"


def _far_from_source(loaded: dict[str, Any], source: dict[str, Any]) -> str:
    """The first floating-point tensor (not float8) further from the source's than VALUE_BOUND x its magnitude."""
    for name, t in loaded.items():
        s = source.get(name)
        if s is None or t.shape != s.shape or not t.is_floating_point() or t.element_size() < 2:
            continue
        diff, size = (t.float() - s.float()).abs().max().item(), s.float().abs().max().item()
        if diff > VALUE_BOUND * size:
            return f"{name} is {diff:.4g} away from the source's values (largest magnitude {size:.4g})"
    return ""


def _in_memory(save_dir: Path, source_dir: Path, dtype: Any) -> tuple[dict[str, Any] | None, str]:
    """The in-memory load's state dict (None where it raised) and what is wrong with it ('' if nothing)."""
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(save_dir, dtype=dtype, output_loading_info=True)
    except Exception as e:
        traceback.print_exc()
        return None, f"from_pretrained raises {_first_line(e)}"
    state = model.state_dict()
    far = _far_from_source(state, AutoModelForCausalLM.from_pretrained(source_dir, dtype=dtype).state_dict())
    return state, "; ".join(p for p in (_loading_problems(info), far) if p)


def _on_disk(save_dir: Path, dtype: Any, scratch: Path) -> tuple[dict[str, Any] | None, str]:
    """The fully disk-offloaded load's tensors (gathered from the offload storage) and what is wrong with its load."""
    from accelerate.utils.modeling import get_state_dict_offloaded_model
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            save_dir,
            dtype=dtype,
            device_map="auto",
            max_memory={"cpu": 1},
            offload_folder=str(scratch),
            output_loading_info=True,
        )
        return get_state_dict_offloaded_model(model), _loading_problems(info)
    except Exception as e:
        traceback.print_exc()
        return None, f"from_pretrained raises {_first_line(e)}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def round_trip(save_dir: Path, source_dir: Path, dtype: Any, scratch: Path) -> str:
    """'' when the save loads back in memory taking every key, with values near the source's, and fully on disk
    taking every key with the same tensors; else what failed, in one line (both loads always run)."""
    in_memory, memory_problems = _in_memory(save_dir, source_dir, dtype)
    offloaded, disk_problems = _on_disk(save_dir, dtype, scratch)
    if not disk_problems and in_memory is not None and offloaded is not None:
        disk_problems = _difference(in_memory, offloaded)
    found = [
        f"in memory: {memory_problems}" if memory_problems else "",
        f"on disk: {disk_problems}" if disk_problems else "",
    ]
    return "; ".join(f for f in found if f)


def record(save_directory: str, source_dir: str, dtype: Any) -> None:
    """Run the round trip and write its result beside the save; never raises (the save itself succeeded).
    `source_dir`: the bf16 checkpoint the model was loaded from."""
    workdir = Path(save_directory).resolve().parent
    try:
        found = round_trip(Path(save_directory), Path(source_dir), dtype, workdir / "roundtrip-offload")
    except Exception as e:  # the probe itself broke: say so rather than pass
        traceback.print_exc()
        found = f"round trip could not run: {_first_line(e)}"
    print(f"round trip: {found or 'loads back in memory and on disk, same tensors'}", flush=True)
    (workdir / RESULT).write_text(json.dumps({"reloaded": found}))


def read(workdir: Path) -> str | None:
    """The recorded round trip of the cell in `workdir`: None where none ran."""
    path = workdir / RESULT
    return json.loads(path.read_text())["reloaded"] if path.exists() else None
