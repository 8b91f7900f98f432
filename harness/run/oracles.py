"""The alternative oracles: the judges transformers' and its neighbours' own tests apply to a save, run on the save
the cell just wrote, so that a mutation analysis can set their verdicts beside the harness's byte-level one.

Each reloads the save in memory (plain `from_pretrained(save_dir, dtype=...)`, no device_map) and compares it with
the in-memory model: the cell's source loaded the same way. The fixture's reference model is built here, not taken
from the cell, because the cell's model is offloaded and has been through the save under test.

- `logits`: transformers' test_save_offloaded_model (tests/utils/test_modeling_utils.py) checks the reloaded save
  with `torch.allclose(presaved_output, postsaved_output)`: torch's defaults, rtol=1e-5 and atol=1e-8 (its atol=1e-4
  is only for offloaded vs on-device, which has no counterpart here). Same tolerances here, on the fixed input of
  `fixtures.forward.forward_logits`.
- `state-dict`: llm-compressor's test_model_reload: the same names, and per tensor the same dtype, shape and
  `torch.equal` values (bytes where torch.equal has no kernel for the dtype, e.g. float8 on CPU).
- `names`: the names the reload took from the save are the names the reference took from the source. A name the
  save lacks is still in the reloaded model's state dict (transformers initialises it), so the loading info decides:
  state-dict names minus `missing_keys`, plus `unexpected_keys`, on both sides.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import torch

from offload_conformance.fixtures.forward import forward_logits
from offload_conformance.harness.outcomes import Oracle, OracleVerdict
from offload_conformance.harness.run.fp8_on_cpu import fp8_loading


def _all(verdict: OracleVerdict) -> dict[str, str]:
    return {o.value: verdict.value for o in Oracle}


def _load(
    auto: Any, path: Path, dtype: Any, fp8_on_cpu: str, source: Path, variant: str | None = None
) -> tuple[Any, set[str]]:
    """The model in memory and the names it took from `path`. The FP8 context is decided by the source's config
    (as cell.py does) for both loads: a save without config.json must fail its load, not this decision."""
    with fp8_loading(fp8_on_cpu, source):
        model, info = auto.from_pretrained(path, dtype=dtype, output_loading_info=True, variant=variant)
    names = (set(model.state_dict()) - set(info["missing_keys"])) | set(info["unexpected_keys"])
    return model, names


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    try:
        return torch.equal(a, b)
    except (RuntimeError, NotImplementedError):  # no kernel for this dtype (float8 on CPU): compare the bytes
        flat_a, flat_b = a.detach().reshape(-1).contiguous(), b.detach().reshape(-1).contiguous()
        return torch.equal(flat_a.view(torch.uint8), flat_b.view(torch.uint8))


def _state_dict_equal(reference: Any, reloaded: Any) -> bool:
    return not _state_dict_difference(reference, reloaded)


def _state_dict_difference(reference: Any, reloaded: Any) -> str:
    """How the reloaded model's state dict differs from the reference's, in one line; '' where it does not."""
    ref, got = reference.state_dict(), reloaded.state_dict()
    if ref.keys() != got.keys():
        name = sorted(ref.keys() ^ got.keys())[0]
        return f"{name} is {'missing' if name in ref else 'unexpected'} in the reloaded model"
    name = next((n for n in ref if not _equal(ref[n], got[n])), None)
    return "" if name is None else f"{name} differs in the reloaded model"


def reload_difference(save_dir: Path, source: Path, auto: Any, dtype: Any, fp8_on_cpu: str, variant: str | None) -> str:
    """A directory a save left, loaded back with `from_pretrained` as a user would (in memory, the save's variant),
    against the source loaded the same way: '' when it gives the same tensors, else what differs (class reload).
    A save into a directory that held other files is only right if loading it reads what this save wrote."""
    reference, _ = _load(auto, source, dtype, fp8_on_cpu, source)
    try:
        reloaded, _ = _load(auto, save_dir, dtype, fp8_on_cpu, source, variant)
    except Exception as e:
        traceback.print_exc()
        message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        return f"from_pretrained raises {type(e).__name__}: {message}"
    return _state_dict_difference(reference, reloaded)


def _verdict(ok: bool) -> str:
    return (OracleVerdict.PASS if ok else OracleVerdict.FAIL).value


def judge(save_dir: Path, source: Path, auto: Any, dtype: Any, saved: bool, fp8_on_cpu: str = "keep") -> dict[str, str]:
    """Oracle -> OracleVerdict (as str) for the save in `save_dir` of a model loaded from `source`. Never raises.
    `saved` False (the load or save raised) or nothing written: every oracle fails, as a test would."""
    t0 = time.perf_counter()
    try:
        written = save_dir.is_dir() and any(save_dir.iterdir())
    except OSError:
        written = False
    if not saved or not written:
        return _all(OracleVerdict.FAIL)
    try:
        reference, reference_names = _load(auto, source, dtype, fp8_on_cpu, source)
    except Exception:
        traceback.print_exc()  # the oracle cannot build what it compares with: it judges nothing
        return _all(OracleVerdict.NOT_APPLICABLE)
    try:
        expected: torch.Tensor | None = forward_logits(reference)
    except Exception:
        traceback.print_exc()  # e.g. float8 weights kept on CPU: the forward needs GPU kernels
        expected = None
    try:
        reloaded, reloaded_names = _load(auto, save_dir, dtype, fp8_on_cpu, source)
    except Exception:
        traceback.print_exc()  # the save does not load: every test reloading it fails
        return _all(OracleVerdict.FAIL)
    verdicts = {Oracle.NAMES.value: _verdict(reloaded_names == reference_names)}
    try:
        verdicts[Oracle.STATE_DICT.value] = _verdict(_state_dict_equal(reference, reloaded))
    except Exception:
        traceback.print_exc()
        verdicts[Oracle.STATE_DICT.value] = OracleVerdict.NOT_APPLICABLE.value
    if expected is None:
        verdicts[Oracle.LOGITS.value] = OracleVerdict.NOT_APPLICABLE.value
    else:
        try:
            got = forward_logits(reloaded)
            # test_save_offloaded_model's tolerances: torch.allclose's defaults (rtol=1e-5, atol=1e-8).
            verdicts[Oracle.LOGITS.value] = _verdict(got.shape == expected.shape and torch.allclose(got, expected))
        except Exception:
            traceback.print_exc()  # the reference runs forward and the reload does not: a test would fail
            verdicts[Oracle.LOGITS.value] = OracleVerdict.FAIL.value
    print(f"oracles: {verdicts} in {time.perf_counter() - t0:.2f}s", flush=True)
    return {o.value: verdicts[o.value] for o in Oracle}
