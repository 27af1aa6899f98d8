"""Every subcommand's --help: exits 0, stays short, and lists the tasks from their registries (so
a new task cannot be missing from the help), and the main job's time it quotes is the measured one."""
import re
from pathlib import Path

import pytest

from rnnlab.cli import build_parser, main
from rnnlab.diagnostics.probes import PROBED_TASKS
from rnnlab.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
#: the most lines each --help may print at 80 columns
BUDGET = {None: 25, "train": 140, "sample": 40, "evaluate": 25, "predict": 30, "diagnose": 35,
          "tasks": 15, "export": 25, "bench": 35}


def help_text(sub, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as stop:
        main(([sub] if sub else []) + ["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.strip(), f"rnnlab {sub or ''} --help printed nothing"
    return out


def names(text: str, name: str) -> bool:
    """Whether ``name`` appears in ``text`` as a word of its own (copy is not sequence-copy)."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_every_subcommand_is_budgeted():
    assert set(subcommands()) == set(BUDGET) - {None}


@pytest.mark.parametrize("sub", [None] + list(BUDGET)[1:])
def test_help_exits_0_within_its_line_budget(sub, capsys, monkeypatch):
    out = help_text(sub, capsys, monkeypatch)
    assert len(out.split("\n")) <= BUDGET[sub], f"rnnlab {sub} --help: {len(out.split(chr(10)))} lines"


def test_top_level_help_names_every_subcommand(capsys, monkeypatch):
    out = help_text(None, capsys, monkeypatch)
    for sub in subcommands():
        assert names(out, sub), sub


@pytest.mark.parametrize("sub,registry", [("train", TASKS), ("tasks", TASKS),
                                          ("diagnose", PROBED_TASKS)])
def test_help_lists_the_tasks_of_its_registry(sub, registry, capsys, monkeypatch):
    text = " ".join(help_text(sub, capsys, monkeypatch).split())
    missing = [t for t in registry if not names(text, t)]
    assert not missing, f"rnnlab {sub} --help does not name {missing}"


def test_train_help_quotes_the_main_jobs_measured_time(capsys, monkeypatch):
    text = " ".join(help_text("train", capsys, monkeypatch).split())
    quoted = int(re.search(r"about (\d+) s on 2 cores", text).group(1))
    page = (ROOT / "docs" / "benchmarks" / "language-models.md").read_text(encoding="utf-8")
    row = next(line for line in page.split("\n") if line.startswith("| main job"))
    seconds = int(re.search(r"(\d+) s \|", row).group(1))
    assert quoted == seconds


def test_the_engine_choices_are_the_engines():
    """``train --engine`` and ``bench --engines`` offer exactly rnnlab's engines."""
    from rnnlab.engines import ENGINES
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command, dest in (("train", "engine"), ("bench", "engines")):
        action = next(a for a in sub[command]._actions if a.dest == dest)
        assert tuple(action.choices) == ENGINES, command
