"""Every code block of README.md and docs/**/*.md runs as written, on small settings.

What runs: each page's ```bash, ```sh and ```python blocks, in the page's order, in one fresh
folder per page (a later block may read the run an earlier one wrote), the way a reader pastes
them. In a shell block, continuation lines are joined, comments dropped and ``&&`` splits a line
into commands; each ``rnnlab ...`` command runs through ``rnnlab.cli.main`` in this process
(``echo TEXT |`` and ``printf 'A\\nB\\n' |`` feed its stdin). A python block is executed
as it is, with ``rnnlab.train`` given the same small settings as ``rnnlab train``.

The rewrite table (what the test changes, and nothing else):
- every ``rnnlab`` command gets the settings of TRAIN, TRAIN_BY_TASK, OTHER and FRESH appended
  (fewer updates, smaller models, fewer generated examples); a setting given later wins, so the
  command is otherwise unchanged;
- ``pip install ...`` and ``pytest`` (the quick start) are the reader's setup: the test already
  runs inside the installed package and the suite (SETUP);
- a page that needs an optional extra (EXTRAS) is skipped, with a message, without it;
- the files a page names as the reader's own (``corpus.txt``, ...) are written into the folder
  first (READER_FILES); ``../shared/data`` is the project's shared data, and a page that reads it
  is skipped, with a message, where it is absent.

A block that must not run (a long benchmark, a GPU or multi-process command, a shell session)
carries ``<!-- not-run: why -->`` on the line before it; each is reported as a skip with its
reason. Any other block the test cannot run fails, as do an untagged fence and a command hidden
in an indented block (so no code escapes the test). A page whose blocks train, diagnose or read
the shared data is marked ``slow`` (``pytest -m slow``); the rest run in the fast suite.
"""
from __future__ import annotations

import importlib.util
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import rnnlab
import rnnlab.api
from rnnlab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
RUN = {"bash", "sh", "python"}
NOT_CODE = {"text", "math", "toml", "json", "csv", "tsv"}
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->")

#: settings appended to ``rnnlab train --task T``: two updates of a small model
TRAIN = {"--max-steps": "2", "--epochs": "0", "--validate-every": "0", "--threads": "1",
         "--max-time": "0", "--no-progress": None}
_LONG = {"--train-sequences": "20", "--valid-sequences": "4", "--test-sequences": "8"}
TRAIN_BY_TASK = {
    "lm": {"--hidden-size": "16", "--embed-size": "8", "--batch-size": "4", "--tbptt": "10",
           "--sample-length": "20", "--max-vocab": "300", "--eval-batch-size": "64"},
    "adding": {"--hidden-size": "8", **_LONG},
    "copy": {"--hidden-size": "8", **_LONG},
    "classify": {"--hidden-size": "8", "--embed-size": "8", "--eval-batch-size": "256"},
    "tag": {"--hidden-size": "8", "--embed-size": "8", "--char-hidden-size": "4",
            "--char-embed-size": "4"},
    "ctc": {"--hidden-size": "8", **_LONG},
    "caption": {"--hidden-size": "16", "--embed-size": "8", "--channels": "4", "--feature-size": "16",
                "--train-scenes": "40", "--valid-scenes": "8", "--test-scenes": "8"},
    "translate": {"--hidden-size": "16", "--embed-size": "8"},
    "forecast": {"--hidden-size": "8"},
    "music": {"--hidden-size": "8"},
    "expressions": {"--hidden-size": "8", "--embed-size": "8", "--train-trees": "40",
                    "--valid-trees": "8", "--test-per-depth": "4"},
    "tree": {"--hidden-size": "8", "--embed-size": "8"},
    "sequence-copy": {"--hidden-size": "8", "--memory-size": "8", "--memory-width": "4", **_LONG},
    "word2vec": {"--embed-size": "8", "--batch-size": "256"},
    "bars": {"--hidden-size": "4", "--train-images": "40", "--valid-images": "8",
             "--test-images": "8"},
}
#: settings appended to the other commands
OTHER = {"diagnose": {"--batch": "4", "--window": "20"}, "sample": {"--length": "20"}}
#: ``rnnlab diagnose`` of a fresh model (no run directory) also gets FRESH[task]
FRESH = {task: {"--hidden-size": "8", "--train-sequences": "1", "--valid-sequences": "0",
                "--test-sequences": "4"} for task in ("adding", "copy")}
#: pages that need an optional extra (pip install "rnnlab[export]"): skipped, saying so, without it
EXTRAS = {"docs/export.md": ("onnx", "onnxruntime", "onnxscript")}
SETUP = {"pip": "the test runs inside the installed package",
         "pytest": "the test suite runs this test"}


def reader_text(start: int, size: int) -> str:
    """Plain text for the files a page calls the reader's own: Python's help text."""
    from pydoc_data.topics import topics
    text = "\n".join(topics[k] for k in sorted(topics))
    return text[start:start + size]


def conllu_head(sentences: int) -> str:
    """The first sentences of the UD English EWT test file."""
    text = (SHARED / "ud_english_ewt" / "en_ewt-ud-test.conllu").read_text(encoding="utf-8")
    return "\n\n".join(text.split("\n\n")[:sentences]) + "\n\n"


def csv_tail(rows: int) -> str:
    """The header and the last rows of ETTh1."""
    lines = (SHARED / "etth1" / "ETTh1.csv").read_text(encoding="utf-8").strip().split("\n")
    return "\n".join(lines[:1] + lines[-rows:]) + "\n"


def spoken(digits: str) -> bytes:
    """A WAV of FSDD recordings of ``digits`` (speaker theo), one after another."""
    import wave
    frames, params = [], None
    for d in digits:
        with wave.open(str(SHARED / "fsdd" / "recordings" / f"{d}_theo_3.wav"), "rb") as w:
            params = w.getparams()
            frames.append(w.readframes(w.getnframes()))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(b"".join(frames))
    return out.getvalue()


def png(size: int) -> bytes:
    """A noisy RGB image, PNG."""
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def bar_image(size: int) -> str:
    """One ``--task bars`` prediction line: a vertical bar of 6 pixels in a blank image."""
    rows = [["1" if c == 5 and 4 <= r < 10 else "0" for c in range(size)] for r in range(size)]
    return ";".join(",".join(row) for row in rows) + "\n"


#: files a page names as the reader's own, written into the page's folder before it runs
READER_FILES = {
    "corpus.txt": lambda: reader_text(0, 40_000),
    "held_out.txt": lambda: reader_text(40_000, 4_000),
    "other.txt": lambda: reader_text(44_000, 4_000),
    "other.conllu": lambda: conllu_head(20),
    "recent.csv": lambda: csv_tail(200),
    "31415.wav": lambda: spoken("31415"),
    "7_theo_3.wav": lambda: spoken("7"),
    "scene.png": lambda: png(32),
    "images.txt": lambda: bar_image(16),
}


@dataclass
class Block:
    page: Path
    line: int          # of the opening fence, 1-based
    kind: str          # bash, sh, python, or a kind that is not code
    text: str
    not_run: str | None  # the reason of a not-run marker

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, each with the not-run reason on the line before it."""
    lines = page.read_text(encoding="utf-8").split("\n")
    found, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            marker = NOT_RUN.search(lines[i - 1]) if i else None
            found.append(Block(page, i + 1, m.group(1), "\n".join(lines[i + 1:j]) + "\n",
                               marker.group(1) if marker else None))
            i = j
        i += 1
    return found


def commands(block: str):
    """A shell block's commands: continuation lines joined, comments and blank lines dropped,
    ``&&`` splitting a line."""
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.split("\n"):
        line = re.sub(r"(^|\s+)#.*$", "", line).strip()
        for part in line.split(" && "):
            if part.strip():
                yield part.strip()


def shrink_words(words: list[str]) -> list[str]:
    """The settings appended to the rnnlab command ``words`` (the rewrite table)."""
    sub = words[1]
    if sub == "train":
        task = words[words.index("--task") + 1] if "--task" in words else "lm"
        if "--resume" in words:
            return ["--max-steps", "4", "--no-progress"]
        extra = {**TRAIN, **TRAIN_BY_TASK.get(task, {})}
    else:
        extra = OTHER.get(sub, {})
        if sub == "diagnose" and (len(words) < 3 or words[2].startswith("-")):   # a fresh model
            task = words[words.index("--task") + 1] if "--task" in words else "adding"
            extra = {**extra, **FRESH.get(task, {})}
    return [w for k, v in extra.items() for w in ((k,) if v is None else (k, v))]


def run_command(command: str, capsys, monkeypatch) -> None:
    """One shell command of a page: rnnlab through ``rnnlab.cli.main`` with those settings appended."""
    stdin = ""
    if " | " in command:
        left, command = command.split(" | ", 1)
        words = shlex.split(left)
        assert words[0] in ("echo", "printf"), f"only echo or printf pipes run here: {left!r}"
        stdin = (" ".join(words[1:]) + "\n" if words[0] == "echo"
                 else words[1].encode().decode("unicode_escape"))
    words = shlex.split(command)
    if words[0] in SETUP:
        return
    assert words[0] == "rnnlab", (f"cannot run {command!r}: only rnnlab commands run here; mark "
                                  f"the block <!-- not-run: why --> if it must not run")
    argv = words + shrink_words(words)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    threads = torch.get_num_threads()
    try:
        code = main(argv[1:])
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert code == 0, f"{' '.join(argv)}\n{err[-1500:]}"


def small_train(real):
    """``rnnlab.train`` with the settings ``rnnlab train`` gets appended, as keyword arguments."""
    def train(*args, **settings):
        for flag, value in {**TRAIN, **TRAIN_BY_TASK.get(settings.get("task") or "lm", {})}.items():
            key = flag.lstrip("-").replace("-", "_")
            if key == "no_progress":
                settings["progress"] = False
            else:
                settings[key] = float(value) if "." in value or "e-" in value else int(value)
        return real(*args, **settings)
    return train


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.kind in RUN and b.not_run is None]


def is_slow(page: Path) -> bool:
    code = "".join(b.text for b in runnable(page))
    return bool(re.search(r"rnnlab (train|diagnose)|rnnlab\.train\(|\.\./shared/data|"
                          r"--resume", code))


RUN_PAGES = [p for p in PAGES if runnable(p)]
PARAMS = [pytest.param(p, id=str(p.relative_to(ROOT)),
                       marks=[pytest.mark.slow] if is_slow(p) else []) for p in RUN_PAGES]
NOT_RUN_BLOCKS = [b for p in PAGES for b in blocks(p) if b.kind in RUN and b.not_run is not None]


@pytest.mark.parametrize("page", PARAMS)
def test_page_runs_as_written(page, tmp_path, capsys, monkeypatch):
    code = runnable(page)
    missing = [m for m in EXTRAS.get(str(page.relative_to(ROOT)), ()) if not importlib.util.find_spec(m)]
    if missing:
        pytest.skip(f"{page.name} needs {', '.join(missing)} (an optional extra), not installed here")
    if any("../shared/data" in b.text for b in code) and not SHARED.exists():
        pytest.skip(f"{page.name} reads ../shared/data, absent here")
    work = tmp_path / "work"          # ../shared/data from here is the real shared data
    work.mkdir()
    if SHARED.exists():
        (tmp_path / "shared").symlink_to(SHARED.parent)
    for name, make in READER_FILES.items():
        if any(name in b.text for b in code):
            content = make()
            (work / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(work)
    monkeypatch.setattr(rnnlab, "train", small_train(rnnlab.api.train))
    for block in code:
        if block.kind == "python":
            exec(compile(block.text, block.where, "exec"), {"__name__": "__main__"})
        else:
            for command in commands(block.text):
                run_command(command, capsys, monkeypatch)


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS, ids=[b.where for b in NOT_RUN_BLOCKS])
def test_not_run_blocks_say_why(block):
    assert len(block.not_run) >= 10, f"{block.where}: say why the block does not run"
    pytest.skip(f"not run ({block.where}): {block.not_run}")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_code_block_is_fenced_and_tagged(page):
    """No code escapes the test: every fence names its kind (bash, sh, python; text and the like
    for what is not code), and no command sits in an indented block."""
    for block in blocks(page):
        assert block.kind in RUN | NOT_CODE, (
            f"{block.where}: a fence without a known kind ({block.kind!r}): tag it "
            f"```bash, ```python or ```text")
    lines = page.read_text(encoding="utf-8").split("\n")
    inside = False
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            inside = not inside
        elif (not inside and re.match(r"^    (rnnlab |python |pip |torchrun |echo |import |from [\w.]+ import )",
                                      line) and (n < 2 or not lines[n - 2].strip() or
                                                 lines[n - 2].startswith("    "))):
            pytest.fail(f"{page.relative_to(ROOT)}:{n}: a command in an indented block; fence it "
                        f"(```bash / ```python) so that the test runs it: {line.strip()!r}")
