"""benchmarks/RESULTS.md keeps every script's section once, whichever script wrote last."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "sections.py"
spec = importlib.util.spec_from_file_location("benchmark_sections", SCRIPT)
sections = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sections)


def test_a_section_is_kept_once_whoever_writes_the_report(tmp_path):
    report = tmp_path / "RESULTS.md"
    sections.write_report(report, "# main\n\nfirst run", {})
    sections.write_section(report, "layers", "## layers\n\n| a | b |")
    sections.write_section(report, "matrix", "## matrix\n\nold")
    taken = sections.split(report.read_text())[1]["matrix"]  # as a scratch report's section is spliced in
    sections.write_section(report, "matrix", taken.replace("old", "new"))
    sections.write_report(report, "# main\n\nsecond run", {})
    text = report.read_text()
    assert text.startswith("# main\n\nsecond run\n")
    for name in ("layers", "matrix"):
        assert text.count(f"<!-- {name}: begin -->") == text.count(f"<!-- {name}: end -->") == 1
    assert "new" in text and "old" not in text
    assert text.index("layers: begin") < text.index("matrix: begin")  # each section stays in its place
