"""One cell, run in a subprocess of its own: load a fixture in a mode, save it with an IUT.

The runner forks each cell from a server process that has torch and transformers imported
already (multiprocessing's forkserver), so a cell costs its load and save, not the imports.
`python -m offload_conformance.harness.run.cell REQUEST.json` runs one cell in a plain interpreter, for debugging.
The parent compares the saved files; this process only loads and saves, so a crash here
cannot lose anything but this cell.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from offload_conformance.harness.outcomes import Stage
from offload_conformance.harness.plan.options import CELL_OPTIONS, HUB_MESSAGE, HUB_TOKEN, OWN_STATE_DICT
from offload_conformance.harness.results import Failure
from offload_conformance.harness.run.reach import paused, recorded


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:500] if str(e).strip() else ""


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    return f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""


def _cause(e: BaseException) -> str:
    """What a wrapper exception hides: the conversion errors transformers' loading report holds (it logs them,
    then raises a RuntimeError that only points at the log), else the innermost exception of the chain."""
    tb = e.__traceback__
    while tb is not None:
        errors = getattr(tb.tb_frame.f_locals.get("loading_info"), "conversion_errors", None)
        if errors:
            key, text = next(iter(errors.items()))
            more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
            return f"conversion of {key}{more}: {_conversion_error(str(text))[:400]}"
        tb = tb.tb_next
    inner = e
    while (nxt := inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)) is not None:
        inner = nxt
    if inner is e:
        return ""
    where = _where(inner)
    return f"{type(inner).__name__}: {_first_line(inner)}" + (f" ({where})" if where else "")


# An exception line of a formatted traceback (`ValueError: ...`); transformers' own note after it starts `Error: `.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\w*: ")


def _conversion_error(text: str) -> str:
    """One line from a conversion error transformers keeps: the exception of its traceback, with transformers' note
    on which operation and tensor (`Error: Concatenate on tensors destined for ...`) in parentheses."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [""]
    note = next((line.removeprefix("Error: ") for line in reversed(lines) if line.startswith("Error: ")), "")
    exception = next(
        (line for line in reversed(lines) if _EXCEPTION_LINE.match(line) and not line.startswith("Error:")), ""
    )
    if not exception:
        return note or lines[0]
    return f"{exception} ({note})" if note else exception


def _failure(stage: Stage, e: BaseException) -> dict[str, str]:
    tb = traceback.extract_tb(e.__traceback__)
    message = _first_line(e)
    if not message and tb and tb[-1].line:
        message = tb[-1].line  # a bare `assert`: the asserted source line says what failed
    return asdict(Failure(stage, type(e).__name__, message, _where(e), _cause(e)))


def parameter_count(model: Any) -> int:
    """Distinct parameters' elements, a declared tie (lm_head -> embed_tokens) once: what an index's
    `total_parameters` must say. Counted here, not by the model's own num_parameters (the code under test)."""
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    params = dict(model.named_parameters(remove_duplicate=False))
    seen: set[int] = set()
    total = 0
    for name, p in params.items():
        owner = params.get(tied.get(name, name), p)  # accelerate's disk_offload unties a tie into two metas
        if id(owner) not in seen:
            seen.add(id(owner))
            total += owner.numel()
    return total


def _compared(before: Any, model: Any, placed: list[Any]) -> dict[str, Any]:
    """The lifecycle part of a cell's report: how the model as loaded was placed (`placed`, harness.run.placement)
    and how the model after the save differs from `before`."""
    from offload_conformance.harness.outcomes import FailureClass
    from offload_conformance.harness.results import Difference, Lifecycle
    from offload_conformance.harness.run.lifecycle import changes, snapshot, why

    try:
        found = placed + changes(before, snapshot(model, before))
    except Exception as e:
        traceback.print_exc()
        found = [*placed, Difference(FailureClass.MODEL_CHANGED, f"the model cannot be read after the save: {why(e)}")]
    lifecycle = Lifecycle(True, before.forward.skipped, forward_refused=before.forward.refused)
    return {**asdict(lifecycle), "changes": [asdict(d) for d in found]}


def run(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import AutoConfig, __version__
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    from offload_conformance.fixtures.manifest import read_manifest
    from offload_conformance.harness.plan.impls import resolve
    from offload_conformance.harness.plan.modes import Loader, OffloadFolder, Placement, applies, by_name
    from offload_conformance.harness.run.accelerate_load import AccelerateLoadUnsupported, accelerate_loaded
    from offload_conformance.harness.run.cost import measured
    from offload_conformance.harness.run.custom_code import CustomCodeUnsupported, custom_code_twin
    from offload_conformance.harness.run.distributed import as_rank
    from offload_conformance.harness.run.fake_hub import fake_hub
    from offload_conformance.harness.run.fp8_on_cpu import fp8_loading
    from offload_conformance.harness.run.from_config import FromConfigUnsupported, from_config_twin
    from offload_conformance.harness.run.lifecycle import before_save, forked_forward, snapshot
    from offload_conformance.harness.run.placement import misplaced

    fixture = Path(request["fixture_dir"])  # its manifest says how to load
    source = Path(request.get("source_dir") or fixture)  # what to load: the fixture, or a save to resave
    mode = by_name(request["mode"])
    offload = Path(request["offload_dir"])
    out = Path(request["save_dir"])
    spec = read_manifest(fixture)["spec"]
    stored = getattr(torch, spec["dtype"])  # type: ignore[index]  # the checkpoint's
    dtype = getattr(torch, spec.get("load_dtype") or spec["dtype"])  # type: ignore[index, union-attr]
    # Hand-written fixtures are causal LMs; a generated one names the Auto class that builds it.
    auto = getattr(transformers, spec.get("auto_class", "AutoModelForCausalLM"))  # type: ignore[union-attr]
    report: dict[str, Any] = {"hf_device_map": None}
    stage = Stage.LOAD
    try:
        save = resolve(request["impl"])
        model_type = json.loads((source / "config.json").read_text())["model_type"]
        if model_type not in CONFIG_MAPPING_NAMES:
            missing = Failure(Stage.LOAD, "UnknownArchitecture", f"transformers {__version__} has no {model_type!r}")
            report["unsupported"] = asdict(missing)
            return report
        config = AutoConfig.from_pretrained(source)
        with torch.device("meta"):
            skeleton = auto.from_config(config, dtype=dtype)
        if not applies(mode.placement, skeleton):
            what = f"mode {mode.name}: this model has nothing the hand-written map puts on disk"
            report["unsupported"] = asdict(Failure(Stage.LOAD, "NothingToOffload", what))
            return report
        kwargs = mode.load_kwargs(skeleton, offload)
        if mode.offload_folder is OffloadFolder.EXISTING:
            offload.mkdir(parents=True)
        del skeleton
        t0 = time.perf_counter()
        try:
            if mode.loader is Loader.TRANSFORMERS:
                with fp8_loading(request.get("fp8_on_cpu", "keep"), source):
                    model = auto.from_pretrained(source, dtype=dtype, **kwargs)
            else:
                model = accelerate_loaded(auto, source, (stored, dtype), mode, kwargs, offload.parent)
            if mode.placement is Placement.FROM_CONFIG:
                model = from_config_twin(auto, model, dtype)
            elif mode.placement is Placement.CUSTOM_CODE:
                model = custom_code_twin(model, source)
        except (FromConfigUnsupported, CustomCodeUnsupported, AccelerateLoadUnsupported) as e:
            report["unsupported"] = asdict(Failure(Stage.LOAD, type(e).__name__, str(e)))
            return report
        if spec.get("save_dtype"):
            # Before accelerate's own offloading (after_load): a model dispatched with offloaded modules refuses it.
            try:
                model.to(getattr(torch, spec["save_dtype"]))  # type: ignore[arg-type]
            except (RuntimeError, ValueError) as e:
                report["unsupported"] = asdict(Failure(Stage.LOAD, "CastRefused", f"mode {mode.name}: {e}"))
                return report
        mode.after_load(model, offload)
        report["load_seconds"] = time.perf_counter() - t0
        report["hf_device_map"] = getattr(model, "hf_device_map", None)
        report["parameters"] = parameter_count(model)
        if mode.step:
            try:
                before_save(model, mode.step)
            except Exception as e:
                # This model cannot run forward here (e.g. FP8 kept on CPU needs GPU kernels): not the save's fault.
                report["unsupported"] = _failure(Stage.FORWARD, e)
                traceback.print_exc()
                return report
        # Before the cost measurement starts and after it ends: the snapshots' reads are not the save's.
        before = snapshot(model) if request.get("lifecycle") else None
        placed = misplaced(model, mode) if before is not None else []
        if before is not None:
            report["logits"] = before.forward.logits
        elif request.get("logits"):
            report["logits"] = forked_forward(model).logits
        if request.get("sync_before_save"):
            # The bench times the save alone: the load's offload files are written back first, so
            # their writeback does not compete with the save (nor land on a `cp` timed later).
            os.sync()
        stage = Stage.SAVE
        options = {k: v for k, v in request["save_options"].items() if k not in CELL_OPTIONS}
        if options.get("state_dict") == OWN_STATE_DICT:
            options["state_dict"] = model.state_dict()  # as a wrapper passes it: meta where a weight is offloaded
        if options.get("push_to_hub"):
            # as a user pushing passes them: every Hub call must carry the token, the commit the message
            options |= {"token": HUB_TOKEN, "commit_message": HUB_MESSAGE}
        # A pushed save is given its directory as a pathlib.Path, every other one as a str: scripts pass both, and
        # only the push branch turns the argument into text (upstream's os.fspath, for the default repo_id).
        target: str | Path = out if options.get("push_to_hub") else str(out)
        try:
            # Every save meets the fake Hub: one that was not asked to push must not contact it either.
            rank = request["save_options"].get("rank", 0)
            with as_rank(rank, offload.parent / "rendezvous"), fake_hub() as report["hub"], measured(model) as cost:
                t0 = time.perf_counter()
                save(model, target, **options)
                report["save_seconds"] = time.perf_counter() - t0
        finally:
            if before is not None:  # also after a save that raised: it must leave the model as it found it
                report["lifecycle"] = _compared(before, model, placed)
        report["cost"] = asdict(cost[0])
    except ImportError as e:
        # This environment lacks what loading the fixture needs (e.g. a quantizer's package):
        # the cell cannot be run here, which is not the IUT's fault.
        report["unsupported" if stage is Stage.LOAD else "failure"] = _failure(stage, e)
        traceback.print_exc()
    except Exception as e:
        report["failure"] = _failure(stage, e)
        traceback.print_exc()
    if request.get("reload") and not {"unsupported", "failure"} & report.keys():
        from offload_conformance.harness.run import oracles

        variant = request["save_options"].get("variant")
        fp8 = request.get("fp8_on_cpu", "keep")
        with paused():
            try:
                report["reloaded"] = oracles.reload_difference(out, fixture, auto, dtype, fp8, variant)
            except Exception as e:  # the fixture itself does not load in memory: nothing to hold the reload to
                traceback.print_exc()
                report["reloaded"] = None
                print(f"reload check skipped: {type(e).__name__}: {e}", flush=True)
    if request.get("oracles") and "unsupported" not in report:
        # The alternative oracles on this save (a mutation analysis compares them with the byte verdict); after a
        # load or save that raised they all fail, as the tests they stand for would.
        from offload_conformance.harness.run import oracles

        fp8 = request.get("fp8_on_cpu", "keep")
        with paused():  # their loads are not the cell's reach
            reference = fixture if request.get("in_place") else source  # in place, the source is overwritten
            report["oracles"] = oracles.judge(out, reference, auto, dtype, "failure" not in report, fp8)
    return report


# Imported once by the fork server; every cell then starts from this warm state.
PRELOAD = [
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "accelerate",
    "safetensors.torch",
    "offload_conformance.harness.run.cell",
    "offload_conformance.harness.run.lifecycle",
    "offload_conformance.harness.run.placement",
    "offload_conformance.harness.run.from_config",
    "offload_conformance.harness.run.custom_code",
    "offload_conformance.harness.run.oracles",
    "offload_conformance.harness.run.fake_hub",
    "offload_conformance.reference_impl",
    "offload_conformance.harness.run.warm",  # last: what a cell's load would do first (see there)
]


def serve(request_path: str) -> None:
    """Entry point of a forked cell: its own session (so a timeout kills its children too) and
    its output to the cell's log file."""
    os.setsid()
    request = json.loads(Path(request_path).read_text())
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    done = Path(request["execution"])
    with recorded(done.parent):  # the lines of mutation targets this cell executes, when a reach run asks
        report = run(request)
    write_execution(done, report)
    sys.stdout.flush()
    sys.stderr.flush()


def write_execution(path: Path, execution: dict[str, Any]) -> None:
    """Atomically: the file on disk means the cell finished, whatever its exit status says."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(execution, indent=2, default=str))
    os.replace(tmp, path)


def main() -> int:
    request = json.loads(Path(sys.argv[1]).read_text())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    write_execution(Path(request["execution"]), run(request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
