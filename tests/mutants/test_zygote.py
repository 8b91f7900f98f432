"""What the worker server preloads must never bring a target package in from site-packages (it would shadow the
overlay): a module whose distribution requires a target is left to the workers."""

from __future__ import annotations

from offload_conformance.harness.tools.mutants.zygote import _independent


def test_a_module_of_a_distribution_requiring_a_target_is_not_preloaded() -> None:
    # tokenizers requires huggingface_hub (transformers 5.25's kernels does too); torch and numpy require neither.
    modules = ["torch", "torch.fx", "tokenizers", "tokenizers.models", "numpy"]
    assert _independent(modules, ("huggingface_hub",)) == ["torch", "torch.fx", "numpy"]


def test_an_optional_extra_is_not_a_requirement() -> None:
    # safetensors names huggingface_hub only under an extra: importing it imports no hub.
    modules = ["safetensors", "safetensors.torch"]
    assert _independent(modules, ("huggingface_hub",)) == modules
