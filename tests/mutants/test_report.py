"""mutants.md / mutants.html from hand-made analyses, merging the parts of a split analysis, and the
`merge` command on mutants.json parts. Every expected number is worked out by hand below."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from offload_conformance.harness.cli import main
from offload_conformance.harness.tools.mutants import report
from offload_conformance.harness.tools.mutants.merge import MergeError, merge
from offload_conformance.harness.tools.mutants.model import (
    Analysis,
    CellChange,
    MissingTarget,
    MutantResult,
    ShardPart,
    Status,
    Target,
    Timing,
    UnreachedLine,
)
from tests.meta.documents import CAND

SAVE = "transformers.modeling_utils.PreTrainedModel.save_pretrained"
OFFLOAD = "accelerate.utils.offload.offload_state_dict"
HUB = "huggingface_hub.serialization.save_torch_state_dict"
CELLS = ("qwen3_moe-disk-full-upstream", "qwen3_moe-cpu-upstream", "mixtral-disk-full-upstream", "mixtral-cpu-upstream")
ORACLES_NONE = {"logits": False, "state-dict": False, "names": False}


def _m(target: str, line: int, n: int, status: Status, **kw: object) -> MutantResult:
    file = {SAVE: "transformers/modeling_utils.py", OFFLOAD: "accelerate/utils/offload.py", HUB: "hub/ser.py"}[target]
    judged = status in (Status.KILLED, Status.SURVIVED)
    fields: dict = {"cells": CELLS[:3], "reached": 4, "oracles": ORACLES_NONE} if judged else {}
    fields.update(kw)
    return MutantResult(
        id=f"{target}:{line}:compare:{n}",
        target=target,
        file=file,
        line=line,
        operator="compare",
        description=f"`a == b` -> `a != b` (#{n})",
        status=status,
        **fields,
    )


MUTANTS = (
    # save_pretrained: 2 killed, 1 survived, 1 unreached, 1 equivalent, 1 killed-by-crash
    _m(
        SAVE,
        100,
        0,
        Status.KILLED,
        oracles={"logits": True, "state-dict": True, "names": False},
        changes=(CellChange(CELLS[0], "pass", "fail values,index"),),
        classes=("values", "index"),
    ),
    _m(SAVE, 101, 1, Status.KILLED, oracles={"logits": False, "state-dict": True, "names": False}),
    _m(SAVE, 102, 2, Status.SURVIVED, cells=CELLS[:2], reached=3),
    _m(SAVE, 120, 3, Status.UNREACHED, reason="no cell saves with push_to_hub"),
    _m(SAVE, 130, 4, Status.EQUIVALENT, reason="the dict is rebuilt either way"),
    # not judged: its oracle verdicts must not count
    _m(SAVE, 140, 5, Status.KILLED_BY_CRASH, reason="SyntaxError on import", oracles={"logits": True}),
    # offload_state_dict: 1 killed, 2 survived, 1 timeout, 2 unreached (one line)
    _m(OFFLOAD, 10, 0, Status.KILLED, oracles={"logits": True, "state-dict": True, "names": True}),
    _m(OFFLOAD, 11, 1, Status.SURVIVED),
    _m(OFFLOAD, 12, 2, Status.SURVIVED),
    _m(OFFLOAD, 13, 3, Status.TIMEOUT, reason="timed out after 60 s", cells=CELLS[:1]),
    _m(OFFLOAD, 40, 4, Status.UNREACHED, reason="GPU-only: needs a CUDA device"),
    _m(OFFLOAD, 40, 5, Status.UNREACHED, reason="GPU-only: needs a CUDA device"),
    # save_torch_state_dict: 1 unreached, nothing judged
    _m(HUB, 7, 0, Status.UNREACHED, reason="GPU-only: needs a CUDA device"),
)
TARGETS = (
    Target(SAVE, "transformers", "transformers/modeling_utils.py", "PreTrainedModel.save_pretrained", 90, 200),
    Target(OFFLOAD, "accelerate", "accelerate/utils/offload.py", "offload_state_dict", 5, 50),
    Target(HUB, "huggingface_hub", "hub/ser.py", "save_torch_state_dict", 1, 20),
)
UNREACHED = (
    UnreachedLine(SAVE, "transformers/modeling_utils.py", 120, "if push_to_hub:", "no cell saves with push_to_hub", 1),
    UnreachedLine(OFFLOAD, "accelerate/utils/offload.py", 40, "if x | y:", "GPU-only: needs a CUDA device", 2),
    UnreachedLine(HUB, "hub/ser.py", 7, "torch.cuda.synchronize()", "GPU-only: needs a CUDA device", 1),
)
STALE = ("transformers.modeling_utils.PreTrainedModel.save_pretrained:999:compare:0",)
STALE_KILLERS = ("transformers.modeling_utils.PreTrainedModel.save_pretrained:998:remove-stmt:0",)
WHOLE = Analysis(
    environment={"transformers": "5.24.0", "accelerate": "1.15.0", "torch": "2.13.0"},
    cells=CELLS,
    targets=TARGETS,
    missing=(MissingTarget("huggingface_hub.nope", "huggingface_hub has no attribute nope"),),
    mutants=MUTANTS,
    unreached=UNREACHED,
    stale_equivalents=STALE,
    stale_killers=STALE_KILLERS,
    # 8 mutants needed a worker (13 minus 4 unreached minus 1 equivalent)
    timing=Timing(total_seconds=600.0, reach_seconds=60.0, import_seconds=120.0, cell_seconds=360.0, mutants_run=8),
)

# Worked out by hand from MUTANTS: mutants, killed, survived, unreached, equivalent, killed-by-crash, timeout,
# harness score, logits, state dict, names (each score over killed + survived of the row).
EXPECTED = {
    f"`{SAVE}`": ["6", "2", "1", "1", "1", "1", "0", "66.7% (2/3)", "33.3% (1/3)", "66.7% (2/3)", "0.0% (0/3)"],
    f"`{OFFLOAD}`": ["6", "1", "2", "2", "0", "0", "1", "33.3% (1/3)", "33.3% (1/3)", "33.3% (1/3)", "33.3% (1/3)"],
    f"`{HUB}`": ["1", "0", "0", "1", "0", "0", "0", "—", "—", "—", "—"],
    "**Total**": [
        *("**13**", "**3**", "**3**", "**4**", "**1**", "**1**", "**1**"),
        *("**50.0% (3/6)**", "**33.3% (2/6)**", "**50.0% (3/6)**", "**16.7% (1/6)**"),
    ],
}


def _tables(md: str) -> list[tuple[list[str], dict[str, list[str]]]]:
    """Every Markdown table: its header and rows by first cell."""
    tables, current = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split(" | ")])
        elif current:
            tables.append((current[0], {r[0]: r[1:] for r in current[2:]}))
            current = []
    return tables


def test_markdown_leads_with_the_total_then_the_side_by_side_table_per_target() -> None:
    md = report.markdown(WHOLE)
    lines = md.splitlines()
    assert lines[0] == "# Mutation analysis" and lines[1] == "" and lines[2].startswith("| target |")
    (header, total), (per_header, per_target) = _tables(md)[:2]
    assert (
        header
        == per_header
        == [
            *("target", "mutants", "killed", "survived", "unreached", "equivalent", "killed-by-crash", "timeout"),
            *("harness score", "logits allclose", "state dict torch.equal", "tensor names"),
        ]
    )
    assert total == {"**Total**": EXPECTED["**Total**"]}
    assert list(per_target) == [k for k in EXPECTED if k != "**Total**"]  # the targets in order
    assert per_target == {k: v for k, v in EXPECTED.items() if k != "**Total**"}
    assert md.index("## Per target") < md.index("## Environment")


def test_markdown_sections() -> None:
    md = report.markdown(WHOLE)
    assert "accelerate 1.15.0 · torch 2.13.0 · transformers 5.24.0" in md
    # import share 120 / (120 + 360) = 25%; 8 mutants in 600 s = 0.8 per minute
    assert "600.0 s total, reach run 60.0 s, import share 25% (120.0 s of 480.0 s in mutant workers)" in md
    assert "0.8 mutants/minute (8 mutants run, 0 of them patched in)" in md
    assert "huggingface_hub.nope`: huggingface_hub has no attribute nope" in md
    assert f"`{STALE[0]}`" in md and f"`{STALE_KILLERS[0]}`" in md
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Per target",
        "## Environment",
        "## Timing",
        "## Missing targets (1)",
        "## Stale equivalents (1)",
        "## Stale killers (1)",
        "## Survivors (3)",
        "## Unreached lines (3 lines, 4 mutants)",
        "## Killed by crash (1)",
        "## Timeout (1)",
        "## Equivalent (1)",
    ]
    survivors = md.split("## Survivors (3)")[1].split("## Unreached")[0]
    # id, file:line, description, reached cells, cells run
    assert (
        f"| `{SAVE}:102:compare:2` | `transformers/modeling_utils.py:102` | `a == b` -> `a != b` (#2) | 3 | 2 |"
        in survivors
    )
    assert f"`{OFFLOAD}:11:compare:1`" in survivors and f"`{OFFLOAD}:12:compare:2`" in survivors
    assert "compare:0`" not in survivors  # killed mutants are not survivors
    unreached = md.split("## Unreached lines")[1].split("## Killed by crash")[0]
    # the reason leaving more mutants unreached first; a | in source is escaped for the table
    gpu, push = (
        unreached.index("### GPU-only: needs a CUDA device (2 lines, 3 mutants)"),
        unreached.index("### no cell saves with push_to_hub (1 line, 1 mutant)"),
    )
    assert gpu < push
    assert f"| `{OFFLOAD}` | `accelerate/utils/offload.py:40` | `if x \\| y:` | 2 |" in unreached
    assert "| `hub/ser.py:7` | `torch.cuda.synchronize()` | 1 |" in unreached
    assert "SyntaxError on import" in md.split("## Killed by crash")[1]
    assert "timed out after 60 s" in md.split("## Timeout")[1]
    assert "the dict is rebuilt either way" in md.split("## Equivalent")[1]


def test_empty_lists_say_none() -> None:
    a = dataclasses.replace(
        WHOLE, mutants=MUTANTS[:2], unreached=(), missing=(), stale_equivalents=(), stale_killers=(), timing=None
    )
    md = report.markdown(a)
    assert "## Missing targets" not in md and "## Stale equivalents" not in md and "## Stale killers" not in md
    assert "## Survivors (0)\n\nNone." in md and "## Unreached lines (0 lines, 0 mutants)\n\nNone." in md
    assert "## Timing\n\nNot recorded." in md


def test_json_round_trips(tmp_path: Path) -> None:
    assert Analysis.from_json(WHOLE.to_json()) == WHOLE
    report.write(WHOLE, tmp_path)
    assert Analysis.read(tmp_path / "mutants.json") == WHOLE
    assert (tmp_path / "mutants.md").read_text() == report.markdown(WHOLE)
    assert (tmp_path / "mutants.html").read_text() == report.html(WHOLE)


def test_html_has_the_tables_filters_and_a_details_per_mutant() -> None:
    page = report.html(WHOLE)
    assert page.count("<details class='cell'") == len(MUTANTS)
    assert "<select name='status'>" in page and "<select name='target'>" in page
    for label in ("harness score", "logits allclose", "state dict torch.equal", "tensor names"):
        assert f"<th>{label}</th>" in page
    assert "<td><b>50.0% (3/6)</b></td>" in page  # the Total harness score
    killed = page.split(f"id='mutant-{SAVE.replace('.', '_')}_100_compare_0'")[1].split("</details>")[0]
    assert "logits allclose, state dict torch.equal" in killed  # the oracles that killed it
    assert "<td>pass</td><td>fail values,index</td>" in killed  # its changed verdict, before -> after
    assert "values, index" in killed and CELLS[0] in killed
    assert "SyntaxError on import" in page and "no cell saves with push_to_hub" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page  # self-contained


@pytest.fixture
def parts() -> tuple[Analysis, Analysis]:
    """WHOLE split as `--shard K/2` splits it: mutants alternately, each part with its own unreached lines."""
    planned = tuple(m.id for m in MUTANTS)
    halves = (MUTANTS[0::2], MUTANTS[1::2])
    timings = (Timing(250.0, 30.0, 50.0, 150.0, 4), Timing(350.0, 30.0, 70.0, 210.0, 4))
    # Even indexes: the line 120 mutant, one of the two line 40 mutants, the line 7 mutant; odd: the other.
    unreached = (
        (UNREACHED[0], dataclasses.replace(UNREACHED[1], mutants=1), UNREACHED[2]),
        (dataclasses.replace(UNREACHED[1], mutants=1),),
    )
    return tuple(  # type: ignore[return-value]
        dataclasses.replace(
            WHOLE, mutants=halves[k], unreached=unreached[k], timing=timings[k], shard=ShardPart(k + 1, 2, planned)
        )
        for k in range(2)
    )


def test_merge_of_the_parts_is_the_unsplit_analysis(parts: tuple[Analysis, Analysis]) -> None:
    one, two = parts
    assert merge([one, two]) == WHOLE
    assert merge([two, one]) == WHOLE  # in any order


def test_merge_refuses_an_overlap(parts: tuple[Analysis, Analysis]) -> None:
    one, _ = parts
    with pytest.raises(MergeError, match=r"part 1/2 is in both a/mutants.json and b/mutants.json") as e:
        merge([one, one], ["a/mutants.json", "b/mutants.json"])
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)


def test_merge_refuses_a_gap(parts: tuple[Analysis, Analysis]) -> None:
    _, two = parts
    with pytest.raises(MergeError, match=r"part\(s\) 1/2 missing") as e:
        merge([two], ["b/mutants.json"])
    assert "\n" not in str(e.value)


def test_merge_refuses_parts_of_different_runs(parts: tuple[Analysis, Analysis]) -> None:
    one, two = parts
    assert two.shard is not None
    other = dataclasses.replace(two, shard=dataclasses.replace(two.shard, planned=two.shard.planned[::-1]))
    with pytest.raises(MergeError, match=r"b\.json and a\.json planned different mutants"):
        merge([one, other], ["a.json", "b.json"])
    newer = dataclasses.replace(two, environment={**two.environment, "transformers": "5.25.0"})
    with pytest.raises(MergeError, match=r"b\.json and a\.json ran on different environments \(transformers 5.25.0"):
        merge([one, newer], ["a.json", "b.json"])
    with pytest.raises(MergeError, match=r"u\.json is not a part of a split run"):
        merge([WHOLE], ["u.json"])
    with pytest.raises(MergeError, match="ran different cells"):
        merge([one, dataclasses.replace(two, cells=CELLS[:2])], ["a.json", "b.json"])


def _write_parts(tmp_path: Path, parts: tuple[Analysis, Analysis]) -> list[str]:
    paths = []
    for k, part in enumerate(parts, 1):
        (tmp_path / f"mutants-{k}").mkdir()
        part.write(tmp_path / f"mutants-{k}" / "mutants.json")
        paths.append(str(tmp_path / f"mutants-{k}" / "mutants.json"))
    return paths


def test_cli_merge_writes_the_unsplit_reports(
    tmp_path: Path, parts: tuple[Analysis, Analysis], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "merged"
    assert main(["merge", *_write_parts(tmp_path, parts), "--out", str(out)]) == 0
    assert "merged 2 mutants.json parts, 13 mutants" in capsys.readouterr().out
    assert Analysis.read(out / "mutants.json") == WHOLE
    assert (out / "mutants.md").read_text() == report.markdown(WHOLE)
    assert (out / "mutants.html").is_file()
    assert not (out / "results.json").exists()


def test_cli_merge_of_an_overlap_is_a_usage_error(
    tmp_path: Path, parts: tuple[Analysis, Analysis], capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = _write_parts(tmp_path, parts)
    copy = tmp_path / "copy.json"
    shutil.copy(first, copy)
    assert main(["merge", first, str(copy), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "part 1/2 is in both" in err and str(copy) in err
    assert not (tmp_path / "o").exists()


def test_cli_merge_of_results_and_mutants_is_a_usage_error(
    tmp_path: Path, parts: tuple[Analysis, Analysis], capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    CAND.write(results)
    assert "schema" not in json.loads(results.read_text())  # results.json has no schema key
    first, _ = _write_parts(tmp_path, parts)
    assert main(["merge", str(results), first, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(results) in err and "mutants.json" in err
    assert not (tmp_path / "o").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_filters_in_a_browser(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    path = tmp_path / "mutants.html"
    path.write_text(report.html(WHOLE))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page.goto(path.as_uri())
        survived = page.locator("details.cell[data-status='survived']")
        killed = page.locator("details.cell[data-status='killed']")
        page.select_option("#filters select[name='status']", "survived")
        assert survived.first.is_visible() and not killed.first.is_visible()
        page.select_option("#filters select[name='target']", OFFLOAD)
        assert survived.count() == 3 and sum(survived.nth(i).is_visible() for i in range(3)) == 2
        page.locator("#survivors a.mutant:visible").first.click()  # the first survivor of OFFLOAD
        assert survived.nth(1).evaluate("d => d.open")
        browser.close()
    assert errors == []


def test_terminal_summary() -> None:
    text = report.summary(WHOLE)
    total = next(line for line in text.splitlines() if line.startswith("Total"))
    assert total.split() == [
        "Total",
        "13",
        "3",
        "3",
        "4",
        "1",
        "1",
        "1",
        *("50.0%", "(3/6)", "33.3%", "(2/6)", "50.0%", "(3/6)", "16.7%", "(1/6)"),
    ]
    assert "3 survivors, 3 unreached lines (4 mutants), 1 killed by crash, 1 timeout" in text
