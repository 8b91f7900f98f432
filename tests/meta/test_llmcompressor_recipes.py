"""The recipes of the DeepSeek-V4 / GLM-5 workflow quantize what they say: every Linear of the real models (built on
the meta device from the fixtures' configs, routed experts unfused per expert as llm-compressor's oneshot does) gets
the preset its role calls for, judged by rules written here, not by the recipe's own regexes."""

from __future__ import annotations

import re

import pytest

from offload_conformance.fixtures import by_name, generate
from offload_conformance.harness.tools.llmcompressor.plan import TRACKS, scheme_by_name

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
WORKFLOW_FIXTURES = TRACKS[1].fixtures


def _linears(fixture: str) -> list[str]:
    """Linear names after oneshot's linearization: a fused experts module becomes experts.N.{gate,up,down}_proj."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    config = transformers.AutoConfig.from_pretrained(generate(by_name(fixture)))
    if config.model_type not in CONFIG_MAPPING_NAMES:
        pytest.skip(f"transformers {transformers.__version__} has no {config.model_type}")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            names.append(name)
        elif name.endswith(".mlp.experts") and hasattr(module, "gate_up_proj"):
            names += [f"{name}.{e}.{p}_proj" for e in range(module.num_experts) for p in ("gate", "up", "down")]
    return names


def _role(name: str) -> str | None:
    """What the workflow quantizes how: NVFP4 routed experts; FP8 blocks on attention's own projections, the shared
    expert and dense MLPs; router, head, DSA indexer and DeepSeek-V4's compressor unquantized."""
    if re.search(r"\.mlp\.experts\.\d+\.(gate|up|down)_proj$", name):
        return "NVFP4A16"
    if re.search(r"\.mlp\.(shared_experts\.)?(gate|up|down)_proj$", name) or re.search(r"\.self_attn\.\w+$", name):
        return "FP8_BLOCK"
    return None


@pytest.mark.parametrize("fixture", WORKFLOW_FIXTURES)
def test_mixed_recipe_targets_each_linear_by_its_role(fixture: str) -> None:
    scheme = scheme_by_name("nvfp4_fp8_mixed")
    names = _linears(fixture)
    wrong = {n: (scheme.preset_for(n), _role(n)) for n in names if scheme.preset_for(n) != _role(n)}
    assert not wrong, f"{fixture}: (recipe, role) differ for {dict(list(wrong.items())[:5])}"
    roles = {_role(n) for n in names}
    assert roles == {"NVFP4A16", "FP8_BLOCK", None}, roles  # each group has targets on this model
    assert any(".shared_experts." in n and scheme.preset_for(n) == "FP8_BLOCK" for n in names)


@pytest.mark.parametrize("fixture", WORKFLOW_FIXTURES)
def test_nvfp4_quantizes_every_linear_but_the_head(fixture: str) -> None:
    scheme = scheme_by_name("nvfp4")
    for name in _linears(fixture):
        assert scheme.preset_for(name) == (None if name == "lm_head" else "NVFP4A16"), name


def test_a_module_in_two_groups_is_refused() -> None:
    from dataclasses import replace

    scheme = replace(scheme_by_name("nvfp4_fp8_mixed"), groups=(("A", ("re:.*experts.*",)), ("B", ("re:.*shared.*",))))
    with pytest.raises(ValueError, match="is a target of"):
        scheme.preset_for("model.layers.1.mlp.shared_experts.up_proj")
