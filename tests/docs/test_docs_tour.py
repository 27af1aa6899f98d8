"""Every command of the tour of the notes (docs/tour/*.md) runs as written, on small settings.

Each page's ```sh blocks are run in order in one fresh folder, the way a reader pastes them
(continuation lines joined; ``echo TEXT | rnnlab ...`` feeds TEXT to the command), through
``rnnlab.cli.main`` in this process. To keep the suite quick, every ``rnnlab`` command gets
settings appended that shrink it (fewer updates, smaller models, fewer generated sequences); a
setting given later wins, so the command itself runs unchanged otherwise. Its ```python blocks run
as they are. A page that reads ../shared/data is skipped, with a message, where the data is absent.
"""
from __future__ import annotations

import io
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "docs" / "tour"
SHARED = ROOT.parent / "shared" / "data"
PAGES = sorted(p for p in TOUR.glob("*.md") if p.name != "README.md")

#: settings appended to ``rnnlab train --task T``: two updates of a small model
TRAIN = {"--max-steps": "2", "--epochs": "0", "--validate-every": "0", "--threads": "1",
         "--max-time": "0", "--no-progress": None}
TRAIN_BY_TASK = {
    "lm": {"--hidden-size": "16", "--embed-size": "8", "--batch-size": "4", "--tbptt": "10",
           "--sample-length": "20", "--max-vocab": "300", "--eval-batch-size": "64"},
    "adding": {"--hidden-size": "8", "--train-sequences": "20", "--valid-sequences": "4",
               "--test-sequences": "8"},
    "copy": {"--hidden-size": "8", "--train-sequences": "20", "--valid-sequences": "4",
             "--test-sequences": "8"},
    "caption": {"--hidden-size": "16", "--embed-size": "8", "--channels": "4", "--feature-size": "16",
                "--train-scenes": "40", "--valid-scenes": "8", "--test-scenes": "8"},
    "translate": {"--hidden-size": "16", "--embed-size": "8"},
    "expressions": {"--hidden-size": "8", "--embed-size": "8", "--train-trees": "40",
                    "--valid-trees": "8", "--test-per-depth": "4"},
    "sequence-copy": {"--hidden-size": "8", "--memory-size": "8", "--memory-width": "4",
                      "--train-sequences": "20", "--valid-sequences": "4", "--test-sequences": "8"},
}
#: settings appended to other commands; ``rnnlab diagnose --task T`` of a fresh model also gets
#: FRESH[T]
OTHER = {"diagnose": {"--batch": "4", "--window": "20"}}
FRESH = {task: {"--hidden-size": "8", "--train-sequences": "1", "--valid-sequences": "0",
                "--test-sequences": "4"} for task in ("adding", "copy")}


def blocks(page: Path, kind: str):
    """The fenced blocks of ``kind`` (sh, python) in ``page``, as text."""
    return re.findall(rf"```{kind}\n(.*?)```", page.read_text(), flags=re.S)


def commands(block: str):
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            yield line


def shrink(part: str) -> str:
    """``part`` (one side of a pipe) with the small settings of its rnnlab command appended."""
    words = shlex.split(part)
    if not words or words[0] != "rnnlab" or len(words) < 2:
        return part
    sub = words[1]
    if sub == "train":
        task = words[words.index("--task") + 1] if "--task" in words else "lm"
        extra = {**TRAIN, **TRAIN_BY_TASK.get(task, {})}
        if "--resume" in words:
            extra = {"--max-steps": "4", "--no-progress": None}
    else:
        extra = OTHER.get(sub, {})
        if sub == "diagnose" and (len(words) < 3 or words[2].startswith("-")):   # a fresh model
            extra = {**extra, **FRESH.get(words[words.index("--task") + 1] if "--task" in words
                                          else "adding", {})}
    added = [w for k, v in extra.items() for w in ((k,) if v is None else (k, v))]
    return part + (" " + " ".join(added) if added else "")


def run_command(command: str, capsys, monkeypatch) -> None:
    """One command of a page through ``rnnlab.cli.main``, small settings appended."""
    stdin = ""
    if " | " in command:
        left, command = command.split(" | ", 1)
        words = shlex.split(left)
        assert words[0] == "echo", f"only 'echo TEXT | rnnlab ...' pipes are supported: {left!r}"
        stdin = " ".join(words[1:]) + "\n"
    argv = shlex.split(shrink(command))
    assert argv[0] == "rnnlab", f"a tour command runs rnnlab: {command!r}"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    threads = torch.get_num_threads()
    try:
        code = main(argv[1:])
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert code == 0, f"{' '.join(argv)}\n{err[-1500:]}"


@pytest.mark.slow_cases
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_tour_page_runs_as_written(page, tmp_path, capsys, monkeypatch):
    sh = [c for b in blocks(page, "sh") for c in commands(b)]
    py = blocks(page, "python")
    assert sh or py, f"{page.name} has no command to run"
    if any("../shared/data" in c for c in sh) and not SHARED.exists():
        pytest.skip(f"{page.name} reads ../shared/data, absent here")
    work = tmp_path / "work"          # ../shared/data from here is the real shared data
    work.mkdir()
    if SHARED.exists():
        (tmp_path / "shared").symlink_to(SHARED.parent)
    monkeypatch.chdir(work)
    for command in sh:
        run_command(command, capsys, monkeypatch)
    for code in py:
        exec(compile(code, f"{page.name} (python block)", "exec"), {"__name__": "__main__"})
