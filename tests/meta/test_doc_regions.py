"""The generated regions of README.md and docs/*.md agree in shape with the renderers that rewrite them.

A region's committed tables must have the columns its renderer writes, and rows named from the renderer's fixed
vocabulary (failure classes, verdicts, oracles, bench cases, llm-compressor modes), so a renamed column or class
cannot leave a stale table behind. Each renderer is also run on small synthetic input and must write that shape.
"""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from pathlib import Path

import pytest

from offload_conformance.harness.merge import merge
from offload_conformance.harness.outcomes import FailureClass, Outcome
from offload_conformance.harness.report.regions import CATALOG, RegionError, Table, mismatches, replace, spans, write
from tests.meta.documents import BASE, CAND, E, F, P, cell, doc

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _shape(name: str) -> tuple[Table, ...]:
    module, function = CATALOG[name].shape.split(":")
    return getattr(importlib.import_module(module), function)()


def _committed() -> dict[str, tuple[Path, str]]:
    """Every region in the documents: name -> (file, body)."""
    found: dict[str, tuple[Path, str]] = {}
    for path in DOCUMENTS:
        text = path.read_text()
        for name, (start, end) in spans(text, str(path)).items():
            assert name not in found, f"region {name!r} in both {found[name][0]} and {path}"
            found[name] = (path, text[start:end])
    return found


def test_every_region_is_catalogued_and_in_its_file() -> None:
    committed = _committed()
    unknown = sorted(set(committed) - set(CATALOG))
    assert not unknown, f"regions no renderer owns: {unknown} (add them to CATALOG in harness/report/regions.py)"
    for name, region in CATALOG.items():
        assert name in committed, f"region {name!r} is missing from {region.path}"
        assert committed[name][0] == ROOT / region.path, f"region {name!r} is in {committed[name][0]}"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_committed_region_has_its_renderers_shape(name: str) -> None:
    path, body = _committed()[name]
    problems = mismatches(_shape(name), body)
    rewrite = CATALOG[name].command or "its renderer"
    assert not problems, f"{path.name}, region {name!r} is stale (rerun `{rewrite}`): " + "; ".join(problems)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_generated_region_names_its_provenance(name: str) -> None:
    first = _committed()[name][1].strip().split("\n\n")[0]
    assert first.startswith("<sub>") and first.endswith("</sub>"), f"region {name!r} starts without its provenance"
    if CATALOG[name].command:
        assert CATALOG[name].command.split(" -- ")[0] in first, first


# ---- each renderer, on synthetic input ----


def _bench_document() -> dict:
    from offload_conformance.harness.tools.bench import CASES, SWEPT

    case = {"seconds": 1.0, "extra_rss": 2**20, "extra_anon": 2**20, "read_amplification": 1.0}
    impl = {"extra_rss": 2**20, "extra_anon": 2**20, "seconds": 1.0}
    every = defaultdict(lambda: 1.0)  # any ratio or extrapolated figure the renderer asks for
    return {
        "machine": "test",
        "repeats": 1,
        "fixture": {"name": "bench", "bytes": 2**30, "tensors": 10},
        "largest_tensor": 2**20,
        "cases": {c.key: case | {"label": c.label, "runs": [{"seconds": 1.0}]} for c in CASES},
        "cp": {"seconds": 1.0, "runs": [1.0]},
        "sweeps": {m: [{"layers": 4, "checkpoint_bytes": 2**20, "reference": impl, "upstream": impl}] for m in SWEPT},
        "ratios": every,
        "deepseek_v3": {"extrapolated": every},
    }


def _ledger_document() -> dict:
    entry = {"row": 0, "id": "transformers#1", "class": "a | b", "package": "accelerate", "affected": "1.0.0"}
    return {
        "entries": [
            entry | {"fixed": "open", "verdict": "still-open"},
            entry | {"row": 3, "fixed": "1.1.0", "verdict": "not-caught"},
        ],
        "totals": {"reproduced": 0, "still-open": 1, "not-caught": 0, "needs-gpu": 0},
        "cpu_caught": 1,
    }


def _analysis():  # type: ignore[no-untyped-def]
    from offload_conformance.harness.tools.mutants.model import Analysis, MutantResult, Status

    def mutant(i: int, status: Status) -> MutantResult:
        return MutantResult(f"t:{i}:op:0", "transformers.x.f", "transformers/x.py", i, "op", "d", status)

    return Analysis({}, ("c",), (), (), (mutant(1, Status.KILLED), mutant(2, Status.SURVIVED)))


def _flows():  # type: ignore[no-untyped-def]
    import dataclasses

    def flow(mode: str, saver: str, outcome: Outcome, *classes: FailureClass):  # type: ignore[no-untyped-def]
        c = cell(f"qwen3_moe-x-{saver}", outcome, classes)
        return dataclasses.replace(c, cell_id=f"qwen3_moe-fp8_dynamic-{mode}-{saver}", mode=mode, save_options=scheme)

    scheme = {"scheme": "fp8_dynamic"}
    cells = [
        flow("in-memory", "upstream", P),
        flow("in-memory", "reference", P),
        flow("disk-full", "reference", F, FailureClass.DTYPE),
        flow("disk-full", "upstream", E),
    ]
    return doc("5.17.0", *cells)


def _sweep():  # type: ignore[no-untyped-def]
    import dataclasses

    listed = dataclasses.replace(
        cell("gen_a-disk-full-upstream", F, (FailureClass.SHARD_LAYOUT,)), xfail="other shards (x_layout.py)"
    )
    return doc("5.24.0", listed, cell("gen_b-disk-full-upstream", E), cell("gen_b-disk-full-reference", P))


def _render(name: str) -> str:
    """The region `name` as its renderer writes it from synthetic input."""
    if name == "bench":
        from offload_conformance.harness.tools import bench

        return bench.region(_bench_document())
    if name == "ledger":
        from offload_conformance.harness.ledger import report

        return report.region(_ledger_document())
    if name == "mutants":
        from offload_conformance.harness.tools.mutants import report

        return report.region(_analysis())
    if name == "mutants-scores":
        from offload_conformance.harness.tools.mutants import report

        return report.scores_region(_analysis())
    if name == "llmcompressor":
        from offload_conformance.harness.tools.llmcompressor import report

        return report.region(_flows())
    if name == "sweep":
        from offload_conformance.harness.report import causes

        return causes.region(_sweep())
    if name == "damage":
        from offload_conformance.harness.tools.damage import run

        counts = {"refused": 3, "crash": 1}
        by_kind = {impl: {"truncate": counts, "flip-data": {"undetectable": 2}} for impl in run.REGION_IMPLS}
        verdicts = {impl: {"refused": 3, "crash": 1, "undetectable": 2} for impl in run.REGION_IMPLS}
        document = {"cases": 6, "by_kind": by_kind, "verdicts": verdicts, "seconds": 1.0, "versions": {}, "seed": None}
        return run.region(document)
    if name == "matrix":
        from offload_conformance.harness.report import history

        return history.region(merge([("base", BASE), ("candidate", CAND)]))
    # failure-classes documents a vocabulary: written by hand, checked against the enum.
    return "| class | meaning |\n|---|---|\n" + "".join(f"| `{c.value}` | |\n" for c in FailureClass)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_renderer_writes_the_shape_it_declares(name: str) -> None:
    assert mismatches(_shape(name), _render(name)) == []


def test_a_renamed_column_or_class_is_a_mismatch() -> None:
    shape = _shape("bench")
    text = _render("bench")
    assert mismatches(shape, text.replace("| save s |", "| save seconds |", 1))
    assert mismatches(shape, text.replace("| in-memory save |", "| in-memory |", 1))
    classes = _render("failure-classes")
    assert mismatches(_shape("failure-classes"), classes.replace("`dtype`", "`dtypes`"))
    ledger = _render("ledger")
    assert mismatches(_shape("ledger"), ledger.replace("**still-open**", "**open**"))


def test_the_flows_table_names_modes_and_merges_agreeing_savers() -> None:
    text = _render("llmcompressor")
    assert "| in-memory | ✓ |" in text
    assert "| disk-full | upstream ! NotImplementedError; reference ✗ dtype |" in text
    assert Outcome.ERROR.value in text  # the tally


# ---- markers ----


def test_an_unpaired_nested_or_repeated_marker_is_a_one_line_error() -> None:
    for text in (
        "<!-- region:a -->\n",
        "<!-- /region:a -->\n",
        "<!-- region:a -->\n<!-- region:b -->\n<!-- /region:b -->\n<!-- /region:a -->\n",
        "<!-- region:a -->\n<!-- /region:a -->\n<!-- region:a -->\n<!-- /region:a -->\n",
        "<!-- region:a -->\n<!-- /region:b -->\n",
    ):
        with pytest.raises(RegionError) as e:
            spans(text, "X.md")
        assert "\n" not in str(e.value) and str(e.value).startswith("X.md: ")


def test_an_unknown_region_name_fails_the_catalogue_check(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("<!-- region:nobody -->\n| a |\n|---|\n<!-- /region:nobody -->\n")
    with pytest.raises(RegionError, match="no region named 'nobody'"):
        write(tmp_path, "nobody", "| a |\n|---|\n", "nox -s nothing")
    assert "nobody" not in CATALOG


def test_write_replaces_only_the_body_and_names_its_provenance(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "ledger.md"
    page.write_text("# before\n\n<!-- region:ledger -->\nold\n<!-- /region:ledger -->\n\nafter\n")
    write(tmp_path, "ledger", "new table\n", "nox -s ledger")
    text = page.read_text()
    assert text.startswith("# before\n\n<!-- region:ledger -->\n<sub>Written by `nox -s ledger` on ")
    assert text.endswith("\nnew table\n<!-- /region:ledger -->\n\nafter\n")
    assert re.search(r"on \d{4}-\d\d-\d\d \d\d:\d\d UTC at .+ \(.*cores", text)
    assert [p.name for p in docs.iterdir()] == ["ledger.md"]  # no temporary file left
    with pytest.raises(RegionError, match="no region 'other'"):
        replace(page, "other", "x")


# ---- the front door links every page ----


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_readme_links_every_docs_page_and_every_relative_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name}" in readme, f"README does not link docs/{page.name}"
    for path in [*DOCUMENTS, ROOT / "CONTRIBUTING.md"]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", path.read_text()):
            if "://" in target:
                continue
            linked = (path.parent / target) if target else path
            assert linked.exists(), f"{path.name}: broken link {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{path.name}: no heading #{anchor} in {linked.name}"


# ---- the command the sessions run ----


def test_docs_command_rewrites_the_tools_region_and_fails_in_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from offload_conformance.harness.cli import main

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ledger.md").write_text("<!-- region:ledger -->\n<!-- /region:ledger -->\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ledger.json").write_text(json.dumps(_ledger_document()))
    assert main(["docs", "ledger", str(tmp_path / "out"), "--root", str(tmp_path)]) == 0
    body = (tmp_path / "docs" / "ledger.md").read_text()
    assert "Written by `nox -s ledger`" in body and mismatches(_shape("ledger"), body) == []
    assert main(["docs", "bench", str(tmp_path / "nothing"), "--root", str(tmp_path)]) == 2
    assert main(["docs", "nope", str(tmp_path / "out"), "--root", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors), errors


def test_a_mutants_run_rewrites_its_docs_region_readme_s_scores_and_its_whole_report(tmp_path: Path) -> None:
    from offload_conformance.harness.tools.doc_regions import update

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "mutants.md").write_text("<!-- region:mutants -->\n<!-- /region:mutants -->\n")
    (tmp_path / "README.md").write_text("# x\n<!-- region:mutants-scores -->\nold\n<!-- /region:mutants-scores -->\n")
    import subprocess

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README.md", "docs"], check=True)
    subprocess.run([*git, "commit", "-qm", "docs"], check=True)
    (tmp_path / "out").mkdir()
    _analysis().write(tmp_path / "out" / "mutants.json")
    written = update("mutants", [tmp_path / "out"], "nox -s mutants", tmp_path)
    stamps = {p.read_text().split("<sub>Written by")[1].split("</sub>")[0] for p in written}
    assert len(stamps) == 1 and "+dirty" not in stamps.pop()  # its own first file does not make the rest dirty
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "docs/mutants.md",
        "README.md",
        "docs/results/mutants-transformers-unknown.md",
    ]
    readme = (tmp_path / "README.md").read_text()
    assert "old" not in readme and "| **this harness** | 2 | 1 | 50.0% |" in readme
    assert mismatches(_shape("mutants-scores"), readme) == []
