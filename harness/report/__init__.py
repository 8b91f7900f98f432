"""Views of a results.json document: terminal, Markdown, HTML, JUnit XML, PNG, history, gate."""

from __future__ import annotations

import os
from pathlib import Path

from offload_conformance.harness.results import RunResult

REPORT_FILES = ("summary.md", "report.html", "junit.xml", "matrix.png")


def write_reports(result: RunResult, out: Path) -> None:
    """summary.md, report.html, junit.xml and (where matplotlib is installed) matrix.png beside
    results.json; the summary also goes to $GITHUB_STEP_SUMMARY when set."""
    from offload_conformance.harness.report import html, junit, markdown, picture

    md = markdown.markdown(result)
    (out / "summary.md").write_text(md)
    (out / "report.html").write_text(html.html_report(result))
    junit.write(result, out / "junit.xml")
    picture.png(result, out / "matrix.png")
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as f:
            f.write(md + "\n")
