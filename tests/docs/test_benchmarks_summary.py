"""BENCHMARKS.md is exactly what benchmarks/summary.py writes from the topic pages' Summary
tables, so the one-screen summary cannot drift from the pages that hold the figures."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_summary():
    spec = importlib.util.spec_from_file_location("summary", ROOT / "benchmarks" / "summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_md_is_the_generated_summary():
    summary = load_summary()
    assert (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8") == summary.render(), \
        "BENCHMARKS.md differs from the topic pages' summaries: run python benchmarks/summary.py"


def test_summary_fits_one_screen_and_every_row_is_complete():
    summary = load_summary()
    text = summary.render()
    assert len(text.split("\n")) <= 50
    rows = [r for p in summary.pages() for r in summary.summary_rows(p)]
    assert len(rows) >= 20
    for row in rows:
        assert set(row) == set(summary.COLUMNS) and all(row.values())
        assert row["claim"] in text and row["figure"] in text


def test_a_malformed_summary_row_is_refused(tmp_path, monkeypatch):
    summary = load_summary()
    page = tmp_path / "topic.md"
    page.write_text("# T\n\n## Summary\n\n| claim | figure | reference | command | processor | date |\n"
                    "|---|---|---|---|---|---|\n| a | 1 | 2 | `x` | cpu | yesterday |\n")
    with pytest.raises(SystemExit, match="line 7: expected a date YYYY-MM-DD, found 'yesterday'"):
        summary.summary_rows(page)
    page.write_text("# T\n\n## Summary\n\n| claim | figure |\n|---|---|\n| a | 1 |\n")
    with pytest.raises(SystemExit, match="expected the summary columns"):
        summary.summary_rows(page)


def test_check_fails_on_a_drifted_file(tmp_path, monkeypatch):
    summary = load_summary()
    out = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(summary, "OUT", out)
    assert summary.main([]) == 0 and summary.main(["--check"]) == 0
    out.write_text(out.read_text().replace("1.22x", "9.99x"))
    assert summary.main(["--check"]) == 1


def test_every_figure_of_the_readme_task_table_is_recorded_on_a_topic_page():
    """The README's table of tasks quotes figures; each number in it stands on a benchmark page."""
    pages = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "benchmarks").glob("*.md"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("\n")
    start = readme.index("| `--task` | structure | measured figure | beside it | processor |")
    rows = [line for line in readme[start + 2:] if line.startswith("|")]
    assert len(rows) >= 14
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for number in re.findall(r"\d+\.\d+", cells[2] + " " + cells[3]):
            assert number in pages, f"README quotes {number} ({cells[0]}), on no docs/benchmarks page"
