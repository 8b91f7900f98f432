"""Architectures of the fixture set `all` that once failed the reference, each offloaded and saved by the
reference against transformers' in-memory save of the same fixture: every file byte-identical."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import transformers

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.spec import GeneratedSpec
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.reference_impl import save_pretrained

# (model type, Auto class, max_shard_size, offload mode, what it exercises)
CASES = [
    ("csm", "AutoModel", None, "disk-full", "save_pretrained override: sub-model generation config copied in first"),
    ("kyutai_speech_to_text", "AutoModelForMultimodalLM", None, "disk-full", "the same, for the codec"),
    ("jev", "AutoModelForDecision", None, "disk-full", "save_pretrained override: decision.json written after"),
    ("lw_detr", "AutoModel", "24KB", "disk-full", "empty tensors share one shard, as their storages do"),
    ("qwen2_5_omni", "AutoModelForMultimodalLM", "24KB", "disk-full", "the same (zero-channel convolutions)"),
    ("lw_detr", "AutoModel", None, "accelerate-disk", "accelerate's .dat of an empty tensor is one byte"),
    ("kimi_k25", "AutoModelForImageTextToText", "24KB", "disk-full", "GroupWeightRename beside PermuteForRope"),
]


def _files(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.mark.parametrize(
    ("model_type", "auto_class", "shard", "placement", "what"),
    CASES,
    ids=[f"{c[0]}-{c[3]}{'-' + c[2] if c[2] else ''}" for c in CASES],
)
def test_reference_writes_the_in_memory_checkpoint(
    tmp_path: Path, model_type: str, auto_class: str, shard: str | None, placement: str, what: str
) -> None:
    cls = getattr(transformers, auto_class)
    fixture = generate(GeneratedSpec(model_type, auto_class))
    options = {"max_shard_size": shard} if shard else {}
    cls.from_pretrained(fixture, dtype=torch.bfloat16).save_pretrained(tmp_path / "in-memory", **options)

    m = mode(placement)  # disk-full and accelerate-disk need no skeleton to place the model
    model = cls.from_pretrained(fixture, dtype=torch.bfloat16, **m.load_kwargs(None, tmp_path / "offload"))  # type: ignore[arg-type]
    m.after_load(model, tmp_path / "offload")
    save_pretrained(model, tmp_path / "reference", **options)
    assert _files(tmp_path / "reference") == _files(tmp_path / "in-memory"), what


def test_a_group_whose_revert_depends_on_the_rest_is_reverted_among_it(tmp_path: Path) -> None:
    """GroupWeightRename is stateful: reverted, `mlp.fc2` becomes `mlp.fc1` only once the revert has seen an
    `mlp.fc1` (its guard, renamed `fc0`). A converter that is not a byte move (a Transpose) on `fc2` sends it through
    transformers' revert at save time, where reverting its group by itself would leave it named `fc2`."""
    from transformers.core_model_loading import Transpose, WeightConverter

    from offload_conformance.reference_impl.schedule import schedule

    cls = transformers.AutoModelForImageTextToText
    fixture = generate(GeneratedSpec("kimi_k25", "AutoModelForImageTextToText"))

    def load(**kwargs: object) -> torch.nn.Module:
        model = cls.from_pretrained(fixture, dtype=torch.bfloat16, **kwargs)
        transpose = WeightConverter(
            source_patterns="mlp.fc2.weight", target_patterns="mlp.fc2.weight", operations=[Transpose(0, 1)]
        )
        model._weight_conversions = [*model._weight_conversions, transpose]
        return model

    load().save_pretrained(tmp_path / "in-memory")
    model = load(**mode("disk-full").load_kwargs(None, tmp_path / "offload"))  # type: ignore[arg-type]
    in_context = [g for g in schedule(model, "5GB").groups if g.in_context]
    assert in_context and all(o.endswith("mlp.fc1.weight") for g in in_context for o in g.outputs), in_context
    save_pretrained(model, tmp_path / "reference")
    assert _files(tmp_path / "reference") == _files(tmp_path / "in-memory")
