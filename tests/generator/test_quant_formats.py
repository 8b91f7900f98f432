"""fixtures/quantization/ct_formats.py writes what compressed-tensors writes: same qparams, same bytes, same config.

Each writer's output is compared byte for byte with compressed-tensors' own compressor (`BaseCompressor` registry,
`compress(state_dict, scheme)`) run on the module state of a Linear in the model dtype: the weight rounded to that
dtype, the scales as parameters of that dtype and the zero-point of zeros quantized modules carry; the scales
themselves are compared with `calculate_qparams` / `generate_gparam`, the config with the library's presets.
The weights include exact rounding ties, values within two ulps of every rounding threshold, an all-zero row and
values that underflow to -0, so a wrong tie rule, division order, nibble order or sign convention changes bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from offload_conformance.fixtures.quantization import ct_formats as qf

ct = pytest.importorskip(
    "compressed_tensors", reason="compressed-tensors is not installed: nothing to cross-check the writers against"
)
from compressed_tensors.compressors import BaseCompressor  # noqa: E402
from compressed_tensors.compressors.format import infer_module_format  # noqa: E402
from compressed_tensors.quantization import (  # noqa: E402
    QuantizationConfig,
    QuantizationScheme,
    preset_name_to_scheme,
)
from compressed_tensors.quantization.utils import calculate_qparams, generate_gparam  # noqa: E402

ROWS, COLS = 48, 64

# One row per format whose group / channel / block absmax makes the stored scale exactly 1 (global scale 448 for
# NVFP4), so w / scale hits the rounding ties of the target grid exactly. Tiled to COLS columns.
TIES = {
    "int4": [7.5, -7.5, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 6.5, -6.5, 0.0, -0.0, 0.49, -0.51, 3.5, 7.0],
    # 1.0625: tie between 1 and 1.125 (-> 1); 1.1875 (-> 1.25); 432: tie between 416 and 448; 2**-10: half the
    # smallest subnormal (-> 0); 3 * 2**-10 (-> 2**-8); -0.0 must come out as +0 (zero-point addition).
    "fp8": [448.0, -448.0, 1.0625, -1.1875, 432.0, 2**-10, -(2**-10), 3 * 2**-10, 0.0, -0.0, 17.0, -19.0, 0.3, 1, 2, 3],
    "fp4": [6.0, -6.0, 0.25, -0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -5.0, -0.1, -0.0, 0.0, 0.26, 4.9],
    "int8": [-127.5, 126.5, 0.5, -0.5, 1.5, -2.5, 0.0, -0.0, 127.0, 3.49, -3.51, 64.5, 1, 2, 3, 4],
}

Writer = Callable[[torch.Tensor, torch.dtype], dict[str, torch.Tensor]]
CASES: dict[str, tuple[Writer, dict, str]] = {
    "w4a16-g32": (lambda w, d: qf.pack_quantized(w, d, 32), qf.pack_quantized_config(["lm_head"], 32), "int4"),
    "w4a16-g16": (lambda w, d: qf.pack_quantized(w, d, 16), qf.pack_quantized_config(["lm_head"], 16), "int4"),
    "fp8-channel": (qf.float_quantized, qf.float_quantized_config(["lm_head"]), "fp8"),
    "fp8-block-16": (lambda w, d: qf.float_quantized(w, d, (16, 16)), qf.float_quantized_config([], (16, 16)), "fp8"),
    # 48 x 64 in 32 x 48 blocks: a zero-padded partial block in both directions.
    "fp8-block-ragged": (
        lambda w, d: qf.float_quantized(w, d, (32, 48)),
        qf.float_quantized_config([], (32, 48)),
        "fp8",
    ),
    "nvfp4a16": (qf.nvfp4_pack_quantized, qf.nvfp4_pack_quantized_config(["lm_head", "re:.*mlp.gate$"]), "fp4"),
    "w8a8": (qf.int_quantized, qf.int_quantized_config(["lm_head"]), "int8"),
}
DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def _weight(ties: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    w = torch.randn(ROWS, COLS, generator=g) * 0.05
    pattern = torch.tensor(TIES[ties], dtype=torch.float32)
    w[0] = pattern.repeat(COLS // len(pattern))
    w[1] = 0.0  # zero scales: float32 eps (int / fp8), 0.125 (NVFP4)
    # Tiny negatives that round to zero: -0 in FP8 (0x80) and NVFP4 (nibble 0x8); plain 0 in the int formats.
    w[2] = torch.tensor([1.0, -1e-5, 1e-5, -0.3]).repeat(COLS // 4)
    return w


def _scheme(config: dict) -> QuantizationScheme:
    return QuantizationScheme.model_validate(config["config_groups"]["group_0"])


def _minmax(w: torch.Tensor, scheme: QuantizationScheme) -> tuple[torch.Tensor, torch.Tensor]:
    """The min / max a weight observer reduces to, for the scheme's strategy."""
    args = scheme.weights
    if args.strategy == "channel":
        return w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    if args.strategy in ("group", "tensor_group"):
        g = w.reshape(w.shape[0], -1, args.group_size)
        return g.amin(dim=-1), g.amax(dim=-1)
    bh, bw = args.block_structure
    padded = torch.nn.functional.pad(w, (0, -w.shape[1] % bw, 0, -w.shape[0] % bh))
    b = padded.reshape(padded.shape[0] // bh, bh, padded.shape[1] // bw, bw)
    return b.amin(dim=(1, 3)), b.amax(dim=(1, 3))


def _differences(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> list[str]:
    """Every way the two tensor dicts differ: names, dtypes, shapes, bytes."""
    if set(ours) != set(theirs):
        return [f"names: ours {sorted(ours)} vs compressed-tensors {sorted(theirs)}"]
    out = []
    for name in sorted(ours):
        a, b = ours[name], theirs[name]
        if (a.dtype, a.shape) != (b.dtype, b.shape):
            out.append(f"{name}: ours {a.dtype} {list(a.shape)} vs {b.dtype} {list(b.shape)}")
            continue
        ab, bb = a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
        if not torch.equal(ab, bb):
            n = int((ab != bb).sum())
            out.append(f"{name}: {n} of {ab.numel()} bytes differ (first at byte {int((ab != bb).nonzero()[0])})")
    return out


def _reference(w: torch.Tensor, dtype: torch.dtype, ours: dict[str, torch.Tensor], config: dict) -> dict:
    """compressed-tensors' compressor on the module state a quantized Linear of this dtype holds."""
    scheme = _scheme(config)
    # A Linear of a model in `dtype`: weight and scale parameter in that dtype.
    state = {"weight": w.to(dtype), "weight_scale": ours["weight_scale"].to(dtype)}
    if "weight_global_scale" in ours:
        state["weight_global_scale"] = ours["weight_global_scale"]
    state["weight_zero_point"] = torch.zeros(ours["weight_scale"].shape, dtype=scheme.weights.zp_dtype)
    compressor = BaseCompressor.get_value_from_registry(config["format"])
    return dict(compressor.compress(state, scheme))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bytes_match_compressed_tensors(case: str, dtype: torch.dtype) -> None:
    write, config, ties = CASES[case]
    w = _weight(ties)
    ours = write(w, dtype)
    assert _differences(ours, _reference(w, dtype, ours, config)) == []


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
def test_scales_match_calculate_qparams(case: str, dtype: torch.dtype) -> None:
    write, config, ties = CASES[case]
    w = _weight(ties)
    ours = write(w, dtype)
    args = _scheme(config).weights
    w = w.to(dtype).float()  # the module's weight, observed in float32
    lo, hi = _minmax(w, _scheme(config))
    expected: dict[str, torch.Tensor] = {}
    if "weight_global_scale" in ours:
        gs = generate_gparam(w.amin(), w.amax())
        expected["weight_global_scale"] = gs
        expected["weight_scale"] = calculate_qparams(lo, hi, args, global_scale=gs)[0].to(args.scale_dtype)
    else:
        expected["weight_scale"] = calculate_qparams(lo, hi, args)[0].to(dtype)
    assert _differences({k: ours[k] for k in expected}, expected) == []


def _thresholds(ties: str) -> list[float]:
    """Rounding thresholds of the target grid (in units of the effective scale), both signs."""
    if ties == "int4":
        half = [k + 0.5 for k in range(-8, 7)]
    elif ties == "int8":
        half = [k + 0.5 for k in (-128, -100, -3, -1, 0, 1, 50, 126)]
    elif ties == "fp4":
        half = [b for b, _ in qf._FP4_BUCKETS]
    else:  # fp8: midpoints between neighbouring E4M3 values, from 2**-10 to 440
        grid = torch.arange(0, 0x7F, dtype=torch.uint8).view(torch.float8_e4m3fn).to(torch.float32)
        half = ((grid[:-1] + grid[1:]) / 2).tolist()
    return sorted({*half, *(-t for t in half)})


def _near_threshold_weight(write: Writer, ties: str, dtype: torch.dtype) -> torch.Tensor:
    """One row: every 16 columns start with the absmax 0.9 (so every group / block / channel gets the same,
    inexact scale), the rest sit within two float32 ulps of each rounding threshold times that scale. A writer
    that divides differently (w * (1 / s), w * global / s) lands on the other side of some threshold."""
    absmax = 0.9
    probe = torch.zeros(1, 64)
    probe[0, ::16] = absmax
    stored = write(probe, dtype)
    eff = stored["weight_scale"].to(torch.float32)[0, 0]
    if "weight_global_scale" in stored:
        eff = eff / stored["weight_global_scale"][0]
    values = []
    for t in _thresholds(ties):
        x = torch.tensor(t, dtype=torch.float32) * eff
        below, above = x, x
        values.append(x)
        for _ in range(2):
            below = torch.nextafter(below, torch.tensor(-torch.inf))
            above = torch.nextafter(above, torch.tensor(torch.inf))
            values += [below, above]
    values = [v for v in values if abs(float(v)) < absmax]
    chunks = [values[i : i + 15] for i in range(0, len(values), 15)]
    cols = -(-len(chunks) * 16 // 64) * 64
    w = torch.zeros(1, cols)
    for i, chunk in enumerate(chunks):
        w[0, i * 16] = absmax
        w[0, i * 16 + 1 : i * 16 + 1 + len(chunk)] = torch.stack(chunk)
    for j in range(len(chunks) * 16, cols, 16):
        w[0, j] = absmax
    return w


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bytes_match_near_rounding_thresholds(case: str, dtype: torch.dtype) -> None:
    write, config, ties = CASES[case]
    w = _near_threshold_weight(write, ties, dtype)
    ours = write(w, dtype)
    assert _differences(ours, _reference(w, dtype, ours, config)) == []


# compressed-tensors' preset scheme each case is, with the sizes changed for tiny models (weights, inputs).
PRESETS: dict[str, tuple[str, dict, dict]] = {
    "w4a16-g32": ("W4A16", {"group_size": 32}, {}),
    "w4a16-g16": ("W4A16", {"group_size": 16}, {}),
    "fp8-channel": ("FP8_DYNAMIC", {}, {}),
    "fp8-block-16": ("FP8_BLOCK", {"block_structure": [16, 16]}, {"group_size": 16}),
    "fp8-block-ragged": ("FP8_BLOCK", {"block_structure": [32, 48]}, {"group_size": 48}),
    "nvfp4a16": ("NVFP4A16", {}, {}),
    "w8a8": ("W8A8", {}, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_is_what_compressed_tensors_serializes(case: str) -> None:
    """The config equals the model_dump of a QuantizationConfig built from the library's preset scheme, with the
    format ModelCompressor.from_pretrained_model infers for a Linear (it writes that into each group)."""
    _, config, _ = CASES[case]
    preset, weights, inputs = PRESETS[case]
    scheme = preset_name_to_scheme(preset, ["Linear"])
    for key, value in weights.items():
        setattr(scheme.weights, key, value)
    for key, value in inputs.items():
        setattr(scheme.input_activations, key, value)
    scheme.format = infer_module_format(torch.nn.Linear, scheme)
    expected = QuantizationConfig(
        config_groups={"group_0": scheme},
        format=scheme.format.value,
        quantization_status="compressed",
        ignore=config["ignore"],
    ).model_dump()
    assert config == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_single_wrong_byte_is_reported(case: str) -> None:
    """The byte comparison is not vacuous: flipping one bit of any tensor shows up."""
    write, config, ties = CASES[case]
    w = _weight(ties)
    ours = write(w, torch.bfloat16)
    theirs = _reference(w, torch.bfloat16, ours, config)
    for name, t in theirs.items():
        bad = dict(theirs)
        raw = t.contiguous().clone().reshape(-1).view(torch.uint8)
        raw[-1] ^= 1
        bad[name] = raw.view(t.dtype).reshape(t.shape)
        assert len(_differences(ours, bad)) == 1, name


def test_nvfp4_nibble_order_and_signed_zero() -> None:
    """Element 2k is the low nibble of byte k; negative values that round to 0 keep the sign bit (0x8)."""
    w = torch.zeros(1, 16)
    w[0, :4] = torch.tensor([6.0, -0.5, -0.1, 1.0])  # global scale 448, group scale 448: w / scale == w
    packed = qf.nvfp4_pack_quantized(w, torch.bfloat16)["weight_packed"]
    assert packed[0, :2].tolist() == [0x7 | (0x9 << 4), 0x8 | (0x2 << 4)]
    assert packed[0, 2:].tolist() == [0] * 6
