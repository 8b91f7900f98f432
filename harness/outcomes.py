"""The names a verdict is made of, defined once: outcomes, grades, failure classes, stages, and the verdicts of the
alternative oracles a mutation analysis sets beside them.

Every report is drawn from these fields; none is ever parsed back out of a message. They are
`StrEnum`s, so results.json holds their plain string values.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # compared, and the save differs (or a cost budget was exceeded)
    ERROR = "error"  # no checkpoint to compare: a crash, timeout or memory limit, with the reason
    UNSUPPORTED = "unsupported"  # this environment cannot run the cell at all, with the reason

    @property
    def is_failure(self) -> bool:
        return self in (Outcome.FAIL, Outcome.ERROR)


class Grade(StrEnum):
    """How close a save came to the in-memory save; strictest first."""

    BYTES = "bytes"  # every file identical
    TENSORS = "tensors"  # identical named tensors; layout, header or index differ

    def meets(self, required: Grade) -> bool:
        order = list(Grade)
        return order.index(self) <= order.index(required)


class FailureClass(StrEnum):
    """What differs, in report order. Content classes mean the named tensors themselves differ."""

    MISSING_TENSOR = "missing-tensor"
    EXTRA_TENSOR = "extra-tensor"
    DTYPE = "dtype"
    SHAPE = "shape"
    VALUES = "values"
    PERMUTED = "permuted"
    META_OR_EMPTY = "meta-or-empty"
    UNREADABLE_FILE = "unreadable-file"
    QUANTIZATION_CONFIG = "quantization-config"  # config.json's quantization_config lost or changed
    HEADER_METADATA = "header-metadata"
    INDEX = "index"
    SHARD_LAYOUT = "shard-layout"
    ORDER = "order"
    FILE_SET = "file-set"
    OTHER_FILE = "other-file"
    SHARD_OVERSIZE = "shard-oversize"  # a shard over max_shard_size though no single tensor in it is
    DROPPED_ON_LOAD = "dropped-on-load"  # a tensor of the fixture's own files that no save contains
    ROUND_TRIP = "round-trip"  # an in-memory load then save does not give the fixture's own tensors back
    RELOAD = "reload"  # the directory after the save, loaded back with from_pretrained, is not what the save wrote
    DIRECTORY_CHANGED = "directory-changed"  # a save that raised did not leave the target directory as it was
    # A save with push_to_hub=True did not upload exactly what it wrote (to the repo it created, with the token it was
    # given), or a save not asked to push (or not the main process) contacted the Hub (harness.judge.hub).
    HUB_UPLOAD = "hub-upload"
    MODEL_CHANGED = "model-changed"  # the model after the save differs from the model before it
    # An offloaded tensor reads back from offload storage as another dtype or shape, or that storage does not list it
    OFFLOAD_READ = "offload-read"
    # The model as loaded holds in memory a tensor its placement offloads (its RAM spent anyway), or a tensor the
    # placement keeps in memory is meta (harness.run.placement).
    PLACEMENT = "placement"
    # The model as loaded for the save computes other logits than the same checkpoint loaded in memory (its
    # baseline), or its forward pass raises where that one runs: what the save reads is not what a user computes with.
    OFFLOAD_FORWARD = "offload-forward"
    # The fixture loaded in memory computes other logits than the model that wrote it (a generated fixture records
    # them): a load conversion its save undoes gives the files back and a user a wrong model (harness.judge.verdict).
    LOAD_FIDELITY = "load-fidelity"
    RESAVE = "resave"  # the save, loaded back in the same mode and saved again, gives other bytes
    READ_AMPLIFICATION = "read-amplification"
    MEMORY_BUDGET = "memory-budget"
    # The load wrote a copy of a checkpoint tensor stored as-is (or only renamed) into offload_folder: transformers
    # reads those in place from the checkpoint, so the copy costs disk (a full copy of a 700 GB model), not bytes saved.
    OFFLOAD_COPY = "offload-copy"

    @property
    def is_content(self) -> bool:
        return self in CONTENT_CLASSES


CONTENT_CLASSES = frozenset(
    {
        FailureClass.MISSING_TENSOR,
        FailureClass.EXTRA_TENSOR,
        FailureClass.DTYPE,
        FailureClass.SHAPE,
        FailureClass.VALUES,
        FailureClass.PERMUTED,
        FailureClass.META_OR_EMPTY,
        FailureClass.UNREADABLE_FILE,
        FailureClass.QUANTIZATION_CONFIG,
    }
)
COST_CLASSES = frozenset({FailureClass.READ_AMPLIFICATION, FailureClass.MEMORY_BUDGET, FailureClass.OFFLOAD_COPY})
# Judged on the cell itself, not against the in-memory save: they fail a cell whatever its grade.
LIFECYCLE_CLASSES = frozenset(
    {
        FailureClass.MODEL_CHANGED,
        FailureClass.OFFLOAD_READ,
        FailureClass.PLACEMENT,
        FailureClass.OFFLOAD_FORWARD,
        FailureClass.LOAD_FIDELITY,
        FailureClass.RESAVE,
    }
)


def ordered(classes: set[FailureClass] | frozenset[FailureClass]) -> tuple[FailureClass, ...]:
    """Classes in report order, each once."""
    return tuple(c for c in FailureClass if c in classes)


class Stage(StrEnum):
    """Where a cell (or its baseline) stopped without a checkpoint."""

    LOAD = "load"
    FORWARD = "forward"  # the forward pass a `+forward` mode runs before the save
    SAVE = "save"
    PROCESS = "process"  # the cell process itself: timeout, memory limit, died before reporting


class Fp8OnCpu(StrEnum):
    """What a fine-grained FP8 checkpoint (`quant_method: fp8`) becomes when loaded on a machine with no GPU/XPU.

    transformers' FP8 quantizer dequantizes it to bf16 there (so every save writes bf16, and no quantized byte
    would be compared); `keep` makes the quantizer keep float8 weights and `*_scale_inv`, as it does on a GPU.
    The save path exercised is then the real one: only the accelerator check is bypassed (harness.run.fp8_on_cpu).
    """

    KEEP = "keep"
    DEQUANTIZE = "dequantize"


class Oracle(StrEnum):
    """The alternative judges upstream's and its neighbours' tests use, applied to the same saves: a cell process
    runs them (harness.run.oracles), a mutation analysis scores them beside the byte verdict."""

    LOGITS = "logits"  # reloaded in memory, logits allclose to the in-memory model's (test_save_offloaded_model)
    STATE_DICT = "state-dict"  # reloaded state dict torch.equal to the in-memory model's (llm-compressor)
    NAMES = "names"  # the reloaded state dict has the in-memory model's tensor names


class OracleVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"  # it cannot judge this cell (e.g. no forward pass on CPU for float8 weights)
