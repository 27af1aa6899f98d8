"""Bad input to every command, table by table: each case must end in exactly one line on stderr
(``rnnlab: error: ...``) naming what was expected and what was found (the file and line where
there is one), a non-zero exit status, no traceback, and every file that existed before the
command byte-identical after it (nothing new written either).

All cases run in one folder built once for the module: small valid inputs of every reader, their
broken variants, tiny trained runs of six tasks (two updates each) and broken copies of the
language-model run (another model's weights, another vocabulary, truncated / random / pickled
weights, a rewritten format version, ...). Commands run in this process through
``rnnlab.cli.main``.
"""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from rnnlab.cli import main
from rnnlab.errors import RnnlabError

ROOT = Path(__file__).resolve().parents[2]

#: settings that make every training run two updates of a tiny model
TINY = ["--max-steps", "2", "--epochs", "0", "--threads", "1", "--no-progress", "--hidden-size", "8"]
#: the valid training command of each task (paths relative to the module's folder)
TRAIN = {
    "lm": ["--data", "corpus.txt", "--embed-size", "4", "--batch-size", "2", "--tbptt", "8",
           "--sample-length", "5"],
    "classify": ["--task", "classify", "--data", "s.txt", "--embed-size", "4", "--char-embed-size", "0",
                 "--min-count", "1", "--batch-size", "4"],
    "tag": ["--task", "tag", "--data", "t.conllu", "--embed-size", "4", "--char-embed-size", "4",
            "--char-hidden-size", "4", "--batch-size", "4"],
    "translate": ["--task", "translate", "--data", "par", "--tokenized", "false", "--min-count", "1",
                  "--embed-size", "4", "--batch-size", "4"],
    "forecast": ["--task", "forecast", "--data", "s.csv", "--targets", "load", "--lookback", "8",
                 "--horizons", "2", "--batch-size", "4"],
    "music": ["--task", "music", "--data", "m.json", "--batch-size", "2", "--sample-length", "0"],
}


def conllu_token(k, word, tag):
    return f"{k}\t{word}\t{word}\t{tag}\t_\t_\t0\tdep\t_\t_"


def write_inputs(root: Path) -> None:
    """The valid inputs of every reader, and broken ones (each named after what is wrong)."""
    (root / "corpus.txt").write_text("".join(f"x = {i}\n" for i in range(200)))
    (root / "s.txt").write_text("".join(f"{i % 2} {'good fine' if i % 2 else 'bad dull'} film {i}\n"
                                        for i in range(40)))
    sents = [("the dog runs", "DET NOUN VERB"), ("a cat sleeps", "DET NOUN VERB"),
             ("I saw it", "PRON VERB PRON")]
    blocks = ["\n".join([f"# sent_id = {i}"] + [conllu_token(k, w, t) for k, (w, t) in
                                               enumerate(zip(*(x.split() for x in sents[i % 3])), 1)])
              for i in range(12)]
    (root / "t.conllu").write_text("\n\n".join(blocks) + "\n\n")
    (root / "par").mkdir()
    for split in ("train", "val", "test"):
        (root / "par" / f"{split}.en").write_text("a man runs\ntwo dogs\na cat\n" * 2)
        (root / "par" / f"{split}.de").write_text("ein mann läuft\nzwei hunde\neine katze\n" * 2)
    rows = [f"2020-01-01 {t:05d},{20 + 5 * math.sin(2 * math.pi * t / 16):.5f},{math.cos(t):.5f}"
            for t in range(120)]
    (root / "s.csv").write_text("date,load,temp\n" + "\n".join(rows) + "\n")
    doc = {"train": [[[60 + (i + k) % 5] for k in range(8)] for i in range(8)],
           "valid": [[[60], [62]]], "test": [[[61], [63], [60]]]}
    (root / "m.json").write_text(json.dumps(doc))
    # broken inputs
    (root / "empty.txt").write_text("")
    (root / "short.txt").write_text("x = 1\n")
    (root / "one.txt").write_text("x")
    (root / "latin.txt").write_bytes("a line\ncaf\xe9 = 1\n".encode("latin-1"))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no split in this name\n")
    (root / "bad.txt").write_text("1 good film\nbadline\n")
    (root / "bad.tsv").write_text("sentence\tlabel\ngood film\t1\nbad\n")
    (root / "one_label.txt").write_text("1 good film\n1 fine film\n")
    (root / "bad.conllu").write_text(conllu_token(1, "dog", "NOUN") + "\n" + conllu_token(3, "runs", "VERB") + "\n")
    (root / "badtag.conllu").write_text(conllu_token(1, "dog", "NONE") + "\n\n")
    (root / "bad.csv").write_text("date,load,temp\n2020,1,2\n2021,x,3\n")
    (root / "cells.csv").write_text("date,load\n2020,1\n2021,2,3\n")
    (root / "short.csv").write_text("date,load,temp\n2020,1,2\n2021,2,3\n")
    (root / "bad.json").write_text(json.dumps({"train": [[[60], [200]]]}))
    (root / "syntax.json").write_text('{"train": [[[60], [62]]],\n "test": [[[60]]\n')
    (root / "bad.chords").write_text("60 64\nxx\n")
    (root / "two.chords").write_text("60\n\n62\n")
    (root / "primer.chords").write_text("60 64\n62\n")
    (root / "in.txt").write_text("a man runs\n")
    (root / "past.txt").write_text("1,2\n")
    (root / "existing.mid").write_bytes(b"not to be overwritten")
    (root / "latinpair.en").write_text("a man runs\n")
    (root / "latinpair.de").write_bytes("ein mann l\xe4uft\n".encode("latin-1"))
    for name, lines in (("misaligned", ("a\nb\n", "a\n")), ("blank", ("a\n\nc\n", "a\nb\nc\n"))):
        (root / name).mkdir()
        (root / name / "train.en").write_text(lines[0])
        (root / name / "train.de").write_text(lines[1])
    for name, text in (("unknown_key.toml", "[model]\nhiden_size = 3\n"),
                       ("wrong_type.toml", 'hidden_size = "big"\n'),
                       ("nan.toml", "lr = nan\n"), ("syntax.toml", "lr = \n"),
                       ("cell_options.toml", "cell_options = 5\n")):
        (root / name).write_text(text)


def rewrite(path: Path, change) -> None:
    """Rewrite a safetensors file with ``change(tensors, metadata)`` applied."""
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k).clone() for k in f.keys()}
    change(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


def edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def set_key(obj, keys, value):
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


#: broken copies of the language-model run: name -> how its files are broken
def _first(t):
    return sorted(k for k in t if k.startswith("model/"))[0]


BROKEN_RUNS = {
    "other-model": lambda r: shutil.copy(r.parent / "run-classify" / "model.safetensors", r / "model.safetensors"),
    "other-vocab": lambda r: edit_json(r / "vocab.json", lambda v: v["symbols"].pop()),
    "repeated-vocab": lambda r: edit_json(r / "vocab.json", lambda v: set_key(v, ["symbols", 3], v["symbols"][4])),
    "vocab-not-a-list": lambda r: (r / "vocab.json").write_text('{"level": "char", "symbols": 5}'),
    "truncated": lambda r: (r / "model.safetensors").write_bytes((r / "model.safetensors").read_bytes()[:300]),
    "cut-short": lambda r: (r / "model.safetensors").write_bytes((r / "model.safetensors").read_bytes()[:-50]),
    "random-bytes": lambda r: (r / "model.safetensors").write_bytes(bytes(range(256)) * 8),
    "empty-weights": lambda r: (r / "model.safetensors").write_bytes(b""),
    "weights-a-folder": lambda r: ((r / "model.safetensors").unlink(), (r / "model.safetensors").mkdir()),
    "no-weights": lambda r: (r / "model.safetensors").unlink(),
    "format-version": lambda r: rewrite(r / "model.safetensors", lambda t, m: m.update(
        format_version="99", rnnlab_version="99.0")),
    "other-format": lambda r: rewrite(r / "model.safetensors", lambda t, m: m.update(format="other")),
    "no-metadata": lambda r: rewrite(r / "model.safetensors", lambda t, m: m.clear()),
    "torch-save": lambda r: torch.save({}, r / "model.safetensors"),
    "pickle": lambda r: (r / "model.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 40),
    "nan-weights": lambda r: rewrite(r / "model.safetensors", lambda t, m: t[_first(t)].fill_(float("nan"))),
    "wrong-shape": lambda r: rewrite(r / "model.safetensors", lambda t, m: t.update({_first(t): torch.zeros(3)})),
    "integer-weights": lambda r: rewrite(r / "model.safetensors", lambda t, m: t.update(
        {k: v.to(torch.int64) for k, v in t.items()})),
    "config-version": lambda r: edit_json(r / "config.json", lambda c: c.update(format_version=7)),
    "config-syntax": lambda r: (r / "config.json").write_text('{"format": "rnnlab-run", "format_'),
    "config-list": lambda r: (r / "config.json").write_text("[1, 2]"),
    "config-task": lambda r: edit_json(r / "config.json", lambda c: c.update(task="lmm")),
    "config-key": lambda r: edit_json(r / "config.json", lambda c: set_key(c, ["model", "hiden_size"], 3)),
    "config-value": lambda r: edit_json(r / "config.json", lambda c: set_key(c, ["model", "hidden_size"], -4)),
    "checkpoint-truncated": lambda r: (r / "checkpoint.safetensors").write_bytes(
        (r / "checkpoint.safetensors").read_bytes()[:500]),
    "checkpoint-version": lambda r: rewrite(r / "checkpoint.safetensors", lambda t, m: m.update(
        format_version="2", rnnlab_version="9.9")),
}


def train_runs(root: Path) -> None:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for task, argv in TRAIN.items():
            assert main(["train", *argv, *TINY, "--out", f"run-{task}"]) == 0, task
    finally:
        os.chdir(cwd)
    for name, breaking in BROKEN_RUNS.items():
        shutil.copytree(root / "run-lm", root / f"ck-{name}")
        breaking(root / f"ck-{name}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("battery")
    write_inputs(root)
    train_runs(root)
    return root


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root``: path -> bytes (None for a folder)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def run_refused(world, capsys, monkeypatch, argv):
    """Run ``rnnlab argv`` in the world's folder; check the contract of a refused command and
    return its one line."""
    monkeypatch.chdir(world)
    capsys.readouterr()
    before = snapshot(world)
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code not in (0, None), f"exit status {code} for {argv}: {captured.err}"
    assert "Traceback" not in captured.err
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error: "), lines
    after = snapshot(world)
    changed = sorted(k for k in set(before) | set(after) if before.get(k, 0) != after.get(k, 0))
    assert not changed, f"{argv} changed {changed}"
    return lines[0]


def check(message: str, fragments):
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ------------------------------------------------------------------ train, one table per task
#: (case, argv after "train", fragments the message must hold)
TRAIN_CASES = [
    # the language model: files
    ("lm missing path", ["--data", "missing.txt"], ["expected a text file at missing.txt", "nothing is there"]),
    ("lm folder without a training file", ["--data", "notes"], ["notes", "expected a training file", "found readme.txt"]),
    ("lm empty file", ["--data", "empty.txt"], ["empty.txt", "expected text", "empty"]),
    ("lm shorter than one window", ["--data", "short.txt", "--batch-size", "2", "--tbptt", "8"],
     ["training text has 6 tokens", "expected at least 9 per stream", "window of 8 steps"]),
    ("lm shorter than two tokens a stream", ["--data", "one.txt", "--batch-size", "1"],
     ["training text has 1 tokens", "at least 2 tokens"]),
    ("lm bytes not in the encoding", ["--data", "latin.txt"], ["latin.txt:2:", "not valid utf-8", "--encoding"]),
    ("lm unknown encoding", ["--data", "corpus.txt", "--encoding", "nope"], ["unknown text encoding 'nope'"]),
    # names
    ("unknown cell", ["--cell", "lstn"], ["cell takes one of", "got 'lstn'", "did you mean 'lstm'"]),
    ("unknown task", ["--task", "clasify"], ["task takes one of", "got 'clasify'", "did you mean 'classify'"]),
    ("unknown setting", ["--hiden-size", "8"], ["unknown option --hiden-size", "did you mean 'hidden_size'"]),
    ("unknown cell option", ["--cell-option", "peeephole=full"],
     ["cell 'lstm' takes the cell options", "got 'peeephole'", "did you mean 'peephole'"]),
    ("unknown choice of a flag", ["--level", "chars"], ["--level", "invalid choice: 'chars'", "did you mean 'char'"]),
    ("ambiguous abbreviation", ["--cel", "lstm"], ["ambiguous option: --cel", "--cell"]),
    ("cell option not KEY=VALUE", ["--cell-option", "peephole"], ["KEY=VALUE", "'peephole'"]),
    # numbers: zero, negative, non-finite, not a number
    ("hidden size 0", ["--hidden-size", "0"], ["hidden_size must be a positive whole number, got 0"]),
    ("hidden size negative", ["--hidden-size", "-3"], ["hidden_size must be a positive whole number, got -3"]),
    ("hidden size not a number", ["--hidden-size", "nan"], ["--hidden-size", "invalid int value: 'nan'"]),
    ("layers 0", ["--layers", "0"], ["layers must be a positive whole number, got 0"]),
    ("embed size negative", ["--embed-size", "-1"], ["embed_size must be positive", "got -1"]),
    ("batch size 0", ["--batch-size", "0"], ["batch_size must be a whole number >= 1, got 0"]),
    ("eval batch size 0", ["--eval-batch-size", "0"], ["eval_batch_size must be a whole number >= 1, got 0"]),
    ("tbptt 0", ["--tbptt", "0"], ["tbptt needs 1 <= k1 <= k2", "k1=0"]),
    ("tbptt negative", ["--tbptt", "-5"], ["tbptt needs 1 <= k1 <= k2", "k1=-5"]),
    ("tbptt k1 > k2", ["--tbptt", "8", "4"], ["k1 <= k2", "k1=8, k2=4"]),
    ("tbptt not a number", ["--tbptt", "x"], ["--tbptt takes", "got x"]),
    ("learning rate 0", ["--lr", "0"], ["lr must be a finite number > 0, got 0"]),
    ("learning rate negative", ["--lr", "-0.1"], ["lr must be a finite number > 0, got -0.1"]),
    ("learning rate nan", ["--lr", "nan"], ["lr must be a finite number > 0, got nan"]),
    ("learning rate inf", ["--lr", "inf"], ["lr must be a finite number > 0, got inf"]),
    ("dropout above 1", ["--dropout", "1.5"], ["dropout must lie in [0, 1), got 1.5"]),
    ("dropout nan", ["--dropout", "nan"], ["dropout must lie in [0, 1), got nan"]),
    ("momentum nan", ["--momentum", "nan"], ["momentum must be a finite number >= 0, got nan"]),
    ("weight decay negative", ["--weight-decay", "-1"], ["weight_decay must be a finite number >= 0"]),
    ("clip norm nan", ["--clip-norm", "nan"], ["clip_norm must be a finite number >= 0, got nan"]),
    ("clip value inf", ["--clip-value", "inf"], ["clip_value must be a finite number >= 0, got inf"]),
    ("min lr inf", ["--min-lr", "inf"], ["min_lr must be a finite number >= 0, got inf"]),
    ("decay factor nan", ["--decay-factor", "nan"], ["decay_factor must lie in (0, 1], got nan"]),
    ("target loss nan", ["--target-loss", "nan"], ["target_loss must be a finite number >= 0, got nan"]),
    ("max time inf", ["--max-time", "inf"], ["max_time must be a finite number >= 0, got inf"]),
    ("max time nan", ["--max-time", "nan"], ["max_time must be a finite number >= 0, got nan"]),
    ("max steps negative", ["--max-steps", "-1"], ["max_steps must be a whole number >= 0, got -1"]),
    ("epochs negative", ["--epochs", "-1"], ["epochs must be a whole number >= 0, got -1"]),
    ("no limit", ["--epochs", "0", "--max-steps", "0"], ["training needs a limit"]),
    ("validate every negative", ["--validate-every", "-1"], ["validate_every must be a whole number >= 0"]),
    ("checkpoint every negative", ["--checkpoint-every", "-1"], ["checkpoint_every must be a whole number >= 0"]),
    ("seed negative", ["--seed", "-1"], ["seed must be a whole number >= 0, got -1"]),
    ("threads negative", ["--threads", "-1"], ["threads must be a whole number >= 0, got -1"]),
    ("valid fraction nan", ["--valid-fraction", "nan"], ["valid_fraction must lie in [0, 1), got nan"]),
    ("test fraction 1", ["--test-fraction", "1"], ["test_fraction must lie in [0, 1), got 1.0"]),
    ("max vocab negative", ["--max-vocab", "-1"], ["max_vocab must be a whole number >= 0, got -1"]),
    ("min count 0", ["--min-count", "0"], ["min_count must be a whole number >= 1, got 0"]),
    ("sample length negative", ["--data", "corpus.txt", "--sample-length", "-5"],
     ["--sample-length takes a whole number >= 0", "got -5"]),
    ("context not a number", ["--architecture", "nplm", "--context", "nan"], ["context takes a int, got 'nan'"]),
    # run directories
    ("existing run directory", [*TRAIN["lm"], *TINY, "--out", "run-lm"],
     ["the run directory run-lm already exists", "--force"]),
    ("run directory is a file", [*TRAIN["lm"], *TINY, "--out", "corpus.txt"],
     ["expected a folder for the run at corpus.txt", "found a file"]),
    ("--force with bad data keeps the run", ["--data", "missing.txt", "--out", "run-lm", "--force"],
     ["expected a text file at missing.txt"]),
    ("--force with a bad setting keeps the run", [*TRAIN["lm"], "--out", "run-lm", "--force", "--lr", "-1"],
     ["lr must be a finite number > 0"]),
    ("resume nothing", ["--resume", "nowhere"], ["expected a run directory at nowhere", "nothing is there"]),
    ("resume a file", ["--resume", "corpus.txt"], ["expected a run directory at corpus.txt", "found a file"]),
    ("resume with other settings", ["--resume", "run-lm", "--hidden-size", "3"],
     ["--resume continues a run with its own settings", "got 'hidden_size'"]),
    ("resume as another task", ["--resume", "run-lm", "--task", "classify"], ["a run of task 'lm', not 'classify'"]),
    ("resume a truncated checkpoint", ["--resume", "ck-checkpoint-truncated", "--max-steps", "4"],
     ["ck-checkpoint-truncated/checkpoint.safetensors", "not a readable rnnlab checkpoint"]),
    ("resume a checkpoint of another format version", ["--resume", "ck-checkpoint-version", "--max-steps", "4"],
     ["ck-checkpoint-version/checkpoint.safetensors", "format version '2'", "reads version 1"]),
    ("resume a run of another format version", ["--resume", "ck-config-version", "--max-steps", "4"],
     ["ck-config-version/config.json", "run format version 7", "reads version 1"]),
    ("resume with another vocabulary", ["--resume", "ck-other-vocab", "--max-steps", "4"],
     ["vocab_size 15 does not match the vocabulary's 14 symbols"]),
    # TOML settings
    ("config missing", ["--config", "missing.toml"], ["expected a TOML config file at missing.toml", "nothing is there"]),
    ("config a folder", ["--config", "notes"], ["expected a TOML config file at notes", "found a folder"]),
    ("config not TOML", ["--config", "syntax.toml"], ["syntax.toml: not valid TOML", "line 1"]),
    ("config not UTF-8", ["--config", "latin.txt"], ["latin.txt: not valid TOML"]),
    ("config unknown key", ["--config", "unknown_key.toml"], ["unknown setting 'hiden_size'", "did you mean 'hidden_size'"]),
    ("config wrong type", ["--config", "wrong_type.toml"], ["hidden_size must be a positive whole number, got 'big'"]),
    ("config nan", ["--config", "nan.toml"], ["lr must be a finite number > 0, got nan"]),
    ("config cell options not a table", ["--config", "cell_options.toml"], ["cell_options takes a table", "got 5"]),
    # classification: labelled lines and TSV
    ("classify missing", ["--task", "classify", "--data", "missing.txt"],
     ["expected a file or folder of labelled sentences at missing.txt", "nothing is there"]),
    ("classify folder without a training file", ["--task", "classify", "--data", "notes"], ["expected a training file"]),
    ("classify empty", ["--task", "classify", "--data", "empty.txt"], ["empty.txt", "expected text"]),
    ("classify malformed line", ["--task", "classify", "--data", "bad.txt"],
     ["bad.txt:2:", 'expected "LABEL TEXT"', "found 'badline'"]),
    ("classify malformed TSV", ["--task", "classify", "--data", "bad.tsv"],
     ["bad.tsv:3:", "expected 2 tab-separated columns, found 1"]),
    ("classify not utf-8", ["--task", "classify", "--data", "latin.txt"], ["latin.txt:2:", "not valid utf-8"]),
    ("classify one label", ["--task", "classify", "--data", "one_label.txt"],
     ["one_label.txt", "expected at least 2 labels", "found ['1']"]),
    ("classify unknown pooling", ["--task", "classify", "--data", "s.txt", "--pooling", "maxx"],
     ["pooling takes one of", "got 'maxx'", "did you mean 'max'"]),
    ("classify word dropout nan", ["--task", "classify", "--data", "s.txt", "--word-dropout", "nan"],
     ["word_dropout must lie in [0, 1), got nan"]),
    ("classify unknown setting", ["--task", "classify", "--data", "s.txt", "--poolin", "max"],
     ["unknown option --poolin", "did you mean 'pooling'"]),
    ("classify has no tbptt", ["--task", "classify", "--data", "s.txt", "--tbptt", "5"],
     ["'tbptt' is not a setting of --task classify"]),
    # tagging: CoNLL-U
    ("tag missing", ["--task", "tag", "--data", "missing.conllu"],
     ["expected a CoNLL-U file or a folder of them at missing.conllu", "nothing is there"]),
    ("tag empty", ["--task", "tag", "--data", "empty.txt"], ["empty.txt", "expected text"]),
    ("tag not CoNLL-U", ["--task", "tag", "--data", "corpus.txt"],
     ["corpus.txt:1:", "expected 10 tab-separated columns", "found 1"]),
    ("tag word IDs out of order", ["--task", "tag", "--data", "bad.conllu"], ["bad.conllu:2:", "expected word ID 2", "found 3"]),
    ("tag unknown UPOS", ["--task", "tag", "--data", "badtag.conllu"],
     ["badtag.conllu:1:", "expected a universal POS tag", "found 'NONE'"]),
    ("tag not utf-8", ["--task", "tag", "--data", "latin.txt"], ["latin.txt:2:", "not valid utf-8"]),
    ("tag unknown tagset", ["--task", "tag", "--data", "t.conllu", "--tagset", "upos2"],
     ["tagset takes one of", "got 'upos2'", "did you mean 'upos'"]),
    # translation: parallel text
    ("translate missing", ["--task", "translate", "--data", "missing"],
     ["expected a folder of parallel files at missing", "nothing is there"]),
    ("translate a file", ["--task", "translate", "--data", "corpus.txt"],
     ["expected a folder of parallel files at corpus.txt", "found a file"]),
    ("translate no tok folder", ["--task", "translate", "--data", "par"], ["expected a tok/ subfolder"]),
    ("translate misaligned", ["--task", "translate", "--data", "misaligned", "--tokenized", "false"],
     ["misaligned/train.en has 2 lines", "misaligned/train.de has 1", "expected aligned files"]),
    ("translate blank line", ["--task", "translate", "--data", "blank", "--tokenized", "false"],
     ["blank/train.en:2:", "expected a sentence", "found an empty line"]),
    ("translate unknown context", ["--task", "translate", "--data", "par", "--tokenized", "false", "--context", "attn"],
     ["context takes one of", "got 'attn'", "did you mean 'attention'"]),
    ("translate sampling rate nan", ["--task", "translate", "--data", "par", "--tokenized", "false",
                                     "--sampling-rate", "nan"], ["sampling_rate must lie in [0, 1], got nan"]),
    # forecasting: CSV series
    ("forecast missing", ["--task", "forecast", "--data", "missing.csv", "--targets", "load"],
     ["expected a text file at missing.csv", "nothing is there"]),
    ("forecast empty", ["--task", "forecast", "--data", "empty.txt", "--targets", "load"], ["empty.txt", "expected text"]),
    ("forecast not a number", ["--task", "forecast", "--data", "bad.csv", "--targets", "load"],
     ["bad.csv:3:", "expected a finite number in column 'load'", "found 'x'"]),
    ("forecast too many cells", ["--task", "forecast", "--data", "cells.csv", "--targets", "load"],
     ["cells.csv:3:", "expected 2 comma-separated cells", "found 3"]),
    ("forecast unknown column", ["--task", "forecast", "--data", "s.csv", "--targets", "lod"],
     ["s.csv:1:", "expected a column named 'lod'", "did you mean 'load'"]),
    ("forecast shorter than one window", ["--task", "forecast", "--data", "s.csv", "--targets", "load",
                                          "--lookback", "1000"], ["s.csv", "a window needs lookback 1000"]),
    ("forecast lookback 0", ["--task", "forecast", "--data", "s.csv", "--targets", "load", "--lookback", "0"],
     ["lookback must be a whole number >= 1, got 0"]),
    ("forecast horizon negative", ["--task", "forecast", "--data", "s.csv", "--targets", "load", "--horizons", "-1"],
     ["horizons must be a whole number >= 1, got -1"]),
    ("forecast stride 0", ["--task", "forecast", "--data", "s.csv", "--targets", "load", "--stride", "0"],
     ["stride must be a whole number >= 1, got 0"]),
    ("forecast not utf-8", ["--task", "forecast", "--data", "latin.txt", "--targets", "load"], ["latin.txt:2:", "not valid utf-8"]),
    # music: JSON and chord text
    ("music without data", ["--task", "music"], ["--task music needs --data"]),
    ("music missing", ["--task", "music", "--data", "missing.json"], ["expected a text file at missing.json"]),
    ("music empty", ["--task", "music", "--data", "empty.txt"], ["empty.txt", "expected text"]),
    ("music note out of range", ["--task", "music", "--data", "bad.json"],
     ["bad.json", "train[0][1]", "expected MIDI note numbers 21..108, found 200"]),
    ("music JSON syntax", ["--task", "music", "--data", "syntax.json"], ["syntax.json:3:", "not valid JSON"]),
    ("music malformed chord line", ["--task", "music", "--data", "bad.chords"],
     ["bad.chords:2:", "expected MIDI note numbers", "found 'xx'"]),
    ("music not utf-8", ["--task", "music", "--data", "latin.txt"], ["latin.txt:2:", "not valid utf-8"]),
    ("music input dropout nan", ["--task", "music", "--data", "m.json", "--input-dropout", "nan"],
     ["input_dropout must lie in [0, 1), got nan"]),
]


@pytest.mark.slow_cases
@pytest.mark.parametrize("case, argv, fragments", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses(world, capsys, monkeypatch, case, argv, fragments):
    if not {"--data", "--resume", "--config", "--task"} & set(argv):   # the setting's own check,
        argv = ["--data", "corpus.txt", "--batch-size", "2", "--tbptt", "8", *argv]   # not the data's
    check(run_refused(world, capsys, monkeypatch, ["train", *argv]), fragments)


# ------------------------------------------------------------------ the saved-run commands
#: (case, argv, fragments)
RUN_CASES = [
    # evaluate
    ("evaluate no run", ["evaluate", "missing"], ["expected a run directory at missing", "nothing is there"]),
    ("evaluate a file", ["evaluate", "corpus.txt"], ["expected a run directory at corpus.txt", "found a file"]),
    ("evaluate missing data", ["evaluate", "run-lm", "--data", "missing.txt"], ["expected a text file at missing.txt"]),
    ("evaluate folder without a test file", ["evaluate", "run-lm", "--data", "notes"],
     ["notes: expected a", "found readme.txt"]),
    ("evaluate empty data", ["evaluate", "run-lm", "--data", "empty.txt"], ["empty.txt", "expected text"]),
    ("evaluate one symbol", ["evaluate", "run-lm", "--data", "one.txt"],
     ["one.txt", "needs at least 2 symbols, found 1"]),
    ("evaluate not utf-8", ["evaluate", "run-lm", "--data", "latin.txt"], ["latin.txt:2:", "not valid utf-8", "--encoding"]),
    ("evaluate unknown encoding", ["evaluate", "run-lm", "--data", "latin.txt", "--encoding", "nope"],
     ["unknown text encoding 'nope'"]),
    ("evaluate unknown option", ["evaluate", "run-lm", "--batch-sise", "3"],
     ["unknown option --batch-sise", "did you mean 'batch_size'"]),
    ("evaluate batch size 0", ["evaluate", "run-lm", "--batch-size", "0"], ["batch_size must be a whole number >= 1, got 0"]),
    ("evaluate stray word", ["evaluate", "run-lm", "extra"], ["expected an option (--name value), found 'extra'"]),
    ("evaluate classify malformed", ["evaluate", "run-classify", "--data", "bad.txt"], ["bad.txt:2:", 'expected "LABEL TEXT"']),
    ("evaluate classify unknown label", ["evaluate", "run-classify", "--data", "latin.txt", "--encoding", "latin-1"],
     ["latin.txt:1:", "expected a label among 0, 1", "found 'a'"]),
    ("evaluate tag malformed", ["evaluate", "run-tag", "--data", "bad.conllu"], ["bad.conllu:2:", "expected word ID 2"]),
    ("evaluate translate missing", ["evaluate", "run-translate", "--data", "missing"], ["missing.en", "missing.de", "found neither"]),
    ("evaluate translate not utf-8", ["evaluate", "run-translate", "--data", "latinpair"],
     ["latinpair.de:1:", "not valid utf-8"]),
    ("evaluate translate beam 0", ["evaluate", "run-translate", "--beam-size", "0"], ["beam_size must be a whole number >= 1, got 0"]),
    ("evaluate translate length penalty nan", ["evaluate", "run-translate", "--length-penalty", "nan"],
     ["length_penalty must be a finite number >= 0, got nan"]),
    ("evaluate forecast malformed", ["evaluate", "run-forecast", "--data", "bad.csv"], ["bad.csv:3:", "expected a finite number"]),
    ("evaluate forecast shorter than a window", ["evaluate", "run-forecast", "--data", "short.csv"],
     ["short.csv", "a window needs lookback 8 + horizon 2"]),
    ("evaluate forecast unknown part", ["evaluate", "run-forecast", "--part", "tst"],
     ["part takes one of", "got 'tst'", "did you mean 'test'"]),
    ("evaluate music malformed", ["evaluate", "run-music", "--data", "bad.json"], ["bad.json", "found 200"]),
    # predict
    ("predict missing input", ["predict", "run-lm", "--input", "missing.txt"], ["expected a text file at missing.txt"]),
    ("predict input a folder", ["predict", "run-lm", "--input", "notes"], ["expected a text file at notes", "found a folder"]),
    ("predict empty input", ["predict", "run-lm", "--input", "empty.txt"], ["empty.txt", "expected text"]),
    ("predict not utf-8", ["predict", "run-classify", "--input", "latin.txt"], ["latin.txt:2:", "not valid utf-8"]),
    ("predict unknown encoding", ["predict", "run-tag", "--input", "in.txt", "--encoding", "nope"],
     ["unknown text encoding 'nope'"]),
    ("predict unknown option", ["predict", "run-music", "--input", "primer.chords", "--lenght", "3"],
     ["unknown option --lenght", "did you mean 'length'"]),
    ("predict lm length negative", ["predict", "run-lm", "--input", "in.txt", "--length", "-1"], ["length must be >= 0, got -1"]),
    ("predict lm temperature nan", ["predict", "run-lm", "--input", "in.txt", "--temperature", "nan"],
     ["temperature must be a finite number >= 0", "got nan"]),
    ("predict lm top-p above 1", ["predict", "run-lm", "--input", "in.txt", "--top-p", "2"], ["top_p must lie in (0, 1], got 2.0"]),
    ("predict lm top-k negative", ["predict", "run-lm", "--input", "in.txt", "--top-k", "-1"],
     ["top_k must be a whole number >= 1, got -1"]),
    ("predict translate beam 0", ["predict", "run-translate", "--input", "in.txt", "--beam-size", "0"],
     ["beam_size must be a whole number >= 1, got 0"]),
    ("predict translate max length negative", ["predict", "run-translate", "--input", "in.txt", "--max-length", "-1"],
     ["max_length must be a whole number >= 0, got -1"]),
    ("predict forecast too few values", ["predict", "run-forecast", "--input", "past.txt"],
     ["input:1:", "expected at least 8 finite past values", "found 2"]),
    ("predict forecast steps negative", ["predict", "run-forecast", "--input", "past.txt", "--steps", "-1"],
     ["steps must be 0 (the run's horizon) or more", "got -1"]),
    ("predict music primer malformed", ["predict", "run-music", "--input", "in.txt", "--output", ""],
     ["primer:1:", "expected MIDI note numbers", "found 'a man runs'"]),
    ("predict music two primers", ["predict", "run-music", "--input", "two.chords", "--output", ""],
     ["expected one piece", "found 2"]),
    ("predict music length 0", ["predict", "run-music", "--input", "primer.chords", "--length", "0"],
     ["length must be a whole number >= 1, got 0"]),
    ("predict music tempo nan", ["predict", "run-music", "--input", "primer.chords", "--tempo", "nan"],
     ["tempo must be a finite number > 0, got nan"]),
    ("predict music temperature inf", ["predict", "run-music", "--input", "primer.chords", "--temperature", "inf"],
     ["temperature must be a finite number >= 0, got inf"]),
    ("predict music output exists", ["predict", "run-music", "--input", "primer.chords", "--output", "existing.mid"],
     ["output existing.mid already exists", "--force"]),
    ("predict music output a folder", ["predict", "run-music", "--input", "primer.chords", "--output", "notes"],
     ["output expected a MIDI file name", "found the folder notes"]),
    ("predict music output in no folder", ["predict", "run-music", "--input", "primer.chords", "--output", "nodir/x.mid"],
     ["expected an existing folder nodir", "nothing is there"]),
    # sample
    ("sample no run", ["sample", "missing"], ["expected a run directory at missing"]),
    ("sample a classifier", ["sample", "run-classify"], ["a run of task 'classify'", "needs a language model"]),
    ("sample length negative", ["sample", "run-lm", "--length", "-1"], ["length must be >= 0, got -1"]),
    ("sample length not a number", ["sample", "run-lm", "--length", "nan"], ["--length", "invalid int value: 'nan'"]),
    ("sample temperature nan", ["sample", "run-lm", "--temperature", "nan"], ["temperature must be a finite number >= 0", "got nan"]),
    ("sample temperature negative", ["sample", "run-lm", "--temperature", "-1"], ["temperature must be a finite number >= 0"]),
    ("sample top-k negative", ["sample", "run-lm", "--top-k", "-1"], ["top_k must be a whole number >= 1, got -1"]),
    ("sample top-p nan", ["sample", "run-lm", "--top-p", "nan"], ["top_p must lie in (0, 1], got nan"]),
    ("sample unknown option", ["sample", "run-lm", "--lenght", "3"], ["sample: unknown option --lenght"]),
    # diagnose
    ("diagnose no run", ["diagnose", "missing"], ["expected a run directory at missing"]),
    ("diagnose missing text", ["diagnose", "run-lm", "--text", "missing.txt"], ["expected a text file at missing.txt"]),
    ("diagnose empty text", ["diagnose", "run-lm", "--text", "empty.txt"], ["empty.txt", "expected text"]),
    ("diagnose text not utf-8", ["diagnose", "run-lm", "--text", "latin.txt"], ["latin.txt:2:", "not valid utf-8"]),
    ("diagnose text shorter than a window", ["diagnose", "run-lm", "--text", "short.txt", "--window", "50"],
     ["needs at least 51 symbols", "found 6"]),
    ("diagnose batch 0", ["diagnose", "run-lm", "--batch", "0"], ["batch must be a whole number >= 1, got 0"]),
    ("diagnose window negative", ["diagnose", "run-lm", "--window", "-3"], ["window must be a whole number >= 1, got -3"]),
    ("diagnose window not a number", ["diagnose", "run-lm", "--window", "nan"], ["--window", "invalid int value: 'nan'"]),
    ("diagnose units malformed", ["diagnose", "run-lm", "--units", "h12"], ["--units takes STATE:UNIT", "got 'h12'"]),
    ("diagnose out a file", ["diagnose", "run-lm", "--out", "corpus.txt"],
     ["--out expected a folder", "found the file corpus.txt"]),
    ("diagnose unknown task", ["diagnose", "--task", "addng"], ["task takes one of", "did you mean 'adding'"]),
    ("diagnose unknown setting", ["diagnose", "--task", "adding", "--hiden-size", "3"],
     ["unknown option --hiden-size", "did you mean 'hidden_size'"]),
    ("diagnose hidden size 0", ["diagnose", "--task", "adding", "--hidden-size", "0"],
     ["hidden_size must be a positive whole number, got 0"]),
    ("diagnose a music run", ["diagnose", "run-music"], ["diagnose knows the models of tasks", "found --task music"]),
    ("diagnose initial without a run", ["diagnose", "--initial"], ["initial reads the starting weights", "give RUN_DIR"]),
    ("diagnose settings of a saved run", ["diagnose", "run-lm", "--hidden-size", "3"], ["the run keeps its own settings"]),
    # bench
    ("bench unknown size", ["bench", "--sizes", "huge"], ["--sizes takes small, medium, large; got huge"]),
    ("bench steps 0", ["bench", "--steps", "0"], ["--steps must be positive", "0"]),
    ("bench repeats negative", ["bench", "--repeats", "-1"], ["--repeats and --steps must be positive, got -1"]),
    ("bench unknown cell", ["bench", "--cells", "lstn"], ["--cells takes", "got 'lstn'"]),
    ("bench unknown engine", ["bench", "--engines", "natve"], ["invalid choice: 'natve'", "did you mean 'native'"]),
    ("bench threads negative", ["bench", "--threads", "-1"], ["--threads takes a whole number >= 0", "got -1"]),
    ("bench unknown device", ["bench", "--device", "nope"], ["device takes one of", "got 'nope'"]),
    ("bench json a folder", ["bench", "--json", "notes"], ["--json expected a file name", "found the folder notes"]),
    ("bench json in no folder", ["bench", "--json", "nodir/b.json"], ["expected an existing folder nodir"]),
    ("bench unknown option", ["bench", "--bogus", "3"], ["bench: unknown option --bogus"]),
    # tasks and the command itself
    ("tasks unknown", ["tasks", "clasify"], ["task takes one of", "did you mean 'classify'"]),
    ("unknown command", ["trian"], ["invalid choice: 'trian'", "did you mean 'train'"]),
]


@pytest.mark.slow_cases
@pytest.mark.parametrize("case, argv, fragments", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_commands_refuse(world, capsys, monkeypatch, case, argv, fragments):
    check(run_refused(world, capsys, monkeypatch, argv), fragments)


# ------------------------------------------------------------------ broken runs, every command
#: broken run -> fragments of the message every command that loads it must give
BROKEN_MESSAGES = {
    "other-model": ["ck-other-model/model.safetensors", "weights of another model", "expected 'decoder.bias'"],
    "other-vocab": ["ck-other-vocab", "vocab_size 15 does not match the vocabulary's 14 symbols"],
    "repeated-vocab": ["ck-repeated-vocab/vocab.json", "expected a vocabulary of distinct symbols", "twice"],
    "vocab-not-a-list": ["ck-vocab-not-a-list/vocab.json", "must hold"],
    "truncated": ["ck-truncated/model.safetensors", "not a readable rnnlab checkpoint"],
    "cut-short": ["ck-cut-short/model.safetensors", "not a readable rnnlab checkpoint"],
    "random-bytes": ["ck-random-bytes/model.safetensors", "not a readable rnnlab checkpoint"],
    "empty-weights": ["ck-empty-weights/model.safetensors", "not a readable rnnlab checkpoint"],
    "weights-a-folder": ["expected a checkpoint file ck-weights-a-folder/model.safetensors", "found a folder"],
    "no-weights": ["expected a checkpoint file ck-no-weights/model.safetensors", "does not exist"],
    "format-version": ["ck-format-version/model.safetensors", "format version '99'", "reads version 1"],
    "other-format": ["ck-other-format/model.safetensors", "expected an rnnlab checkpoint", "found format 'other'"],
    "no-metadata": ["ck-no-metadata/model.safetensors", "expected an rnnlab checkpoint", "found format None"],
    "torch-save": ["ck-torch-save/model.safetensors", "expected a safetensors file", "torch.save zip archive",
                   "never loads"],
    "pickle": ["ck-pickle/model.safetensors", "expected a safetensors file", "found a pickle", "never loads"],
    "nan-weights": ["ck-nan-weights/model.safetensors", "NaN or infinite"],
    "wrong-shape": ["ck-wrong-shape/model.safetensors", "weights of another model", "has shape (3,)"],
    "integer-weights": ["ck-integer-weights/model.safetensors", "holds torch.int64", "expects torch.float32"],
    "config-version": ["ck-config-version/config.json", "run format version 7", "reads version 1"],
    "config-syntax": ["ck-config-syntax/config.json", "not valid JSON"],
    "config-list": ["ck-config-list/config.json", "not an rnnlab run config"],
    "config-task": ["ck-config-task", "a run of task 'lmm'", "did you mean 'lm'"],
    "config-key": ["ck-config-key/config.json [model]", "unknown setting 'hiden_size'", "did you mean 'hidden_size'"],
    "config-value": ["ck-config-value", "hidden_size must be a positive whole number, got -4"],
}
COMMANDS = {"evaluate": [], "predict": ["--input", "in.txt"], "sample": ["--length", "3"],
            "diagnose": ["--window", "5", "--batch", "2"]}
BROKEN_CASES = [(name, command) for name in BROKEN_MESSAGES for command in COMMANDS
                if command != "diagnose" or name in ("other-model", "torch-save", "format-version", "other-vocab")]


@pytest.mark.slow_cases
@pytest.mark.parametrize("name, command", BROKEN_CASES, ids=[f"{c} {n}" for n, c in BROKEN_CASES])
def test_broken_runs_are_refused(world, capsys, monkeypatch, name, command):
    message = run_refused(world, capsys, monkeypatch, [command, f"ck-{name}", *COMMANDS[command]])
    check(message, BROKEN_MESSAGES[name])


def test_every_broken_run_is_checked():
    assert set(BROKEN_MESSAGES) | {"checkpoint-truncated", "checkpoint-version"} == set(BROKEN_RUNS)


# ------------------------------------------------------------------ what does work
def test_force_replaces_a_run_only_when_asked(world, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(world)
    run = tmp_path / "run"
    assert main(["train", *TRAIN["classify"], *TINY, "--out", str(run)]) == 0
    first = (run / "config.json").read_text()
    argv = ["train", *TRAIN["classify"], *TINY, "--out", str(run), "--hidden-size", "6"]
    assert main(argv) == 2 and (run / "config.json").read_text() == first
    assert main([*argv, "--force"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["hidden_size"] == 6
    capsys.readouterr()


def test_encoding_chooses_how_every_reader_decodes(world, capsys, monkeypatch, tmp_path):
    """The bytes that utf-8 refuses (latin.txt) are read with --encoding latin-1 by the commands
    of every task that reads text."""
    monkeypatch.chdir(world)
    (tmp_path / "l.txt").write_bytes("1 caf\xe9 film\n0 dull film\n".encode("latin-1"))
    assert main(["evaluate", "run-classify", "--data", str(tmp_path / "l.txt"), "--encoding", "latin-1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 2
    assert main(["evaluate", "run-lm", "--data", "latin.txt", "--encoding", "latin-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == len("a line\ncafé = 1\n") - 1
    assert main(["predict", "run-tag", "--input", "latin.txt", "--encoding", "latin-1"]) == 0
    assert "café/" in capsys.readouterr().out
    conllu = (world / "t.conllu").read_text().replace("\tdog\tdog\t", "\tdogé\tdogé\t")
    (tmp_path / "l.conllu").write_bytes(conllu.encode("latin-1"))
    assert main(["evaluate", "run-tag", "--data", str(tmp_path / "l.conllu"), "--encoding", "latin-1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["words"] == 36
    (tmp_path / "p.en").write_bytes("a man runs\n".encode("latin-1"))
    (tmp_path / "p.de").write_bytes("ein mann läuft\n".encode("latin-1"))
    assert main(["evaluate", "run-translate", "--data", str(tmp_path / "p"), "--encoding", "latin-1",
                 "--json", "--beam-size", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 1
    csv = (world / "s.csv").read_text().replace("date,load,temp", "daté,load,temp")
    (tmp_path / "l.csv").write_bytes(csv.encode("latin-1"))
    assert main(["evaluate", "run-forecast", "--data", str(tmp_path / "l.csv"), "--encoding", "latin-1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["windows"] > 0
    (tmp_path / "l.chords").write_bytes("60 64\n62\n".encode("latin-1"))
    assert main(["evaluate", "run-music", "--data", str(tmp_path / "l.chords"), "--encoding", "latin-1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    (tmp_path / "l.chords").write_bytes("60 64\n62 \xe9\n".encode("latin-1"))      # chords have no words:
    argv = ["evaluate", "run-music", "--data", str(tmp_path / "l.chords")]           # the encoding reads
    assert main(argv) == 2 and "l.chords:2: bytes that are not valid utf-8" in capsys.readouterr().err
    assert main([*argv, "--encoding", "latin-1"]) == 2                               # the é, the reader
    assert "l.chords:2: expected MIDI note numbers" in capsys.readouterr().err       # refuses it


def test_debug_shows_the_traceback(world, capsys, monkeypatch):
    monkeypatch.chdir(world)
    with pytest.raises(RnnlabError, match="expected a text file at missing.txt"):
        main(["train", "--debug", "--data", "missing.txt"])
    with pytest.raises(RnnlabError, match="not a readable rnnlab checkpoint"):
        main(["--debug", "sample", "ck-truncated"])
    assert main(["sample", "ck-truncated"]) == 2             # the same, without --debug: one line
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_a_real_process_exits_non_zero_with_one_line_or_a_traceback(world):
    """As a shell runs it: exit status 2 and one line; with --debug, Python's traceback."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "rnnlab", "sample", "ck-format-version"]
    quiet = subprocess.run(argv, cwd=world, env=env, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2 and quiet.stderr.count("\n") == 1
    assert quiet.stderr.startswith("rnnlab: error: ck-format-version/model.safetensors: checkpoint format")
    loud = subprocess.run([*argv, "--debug"], cwd=world, env=env, capture_output=True, text=True, timeout=120)
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr
    assert "CheckpointError" in loud.stderr


def test_an_error_from_below_rnnlabs_checks_says_that_debug_shows_where(monkeypatch, capsys):
    import rnnlab.api
    import rnnlab.cli
    from rnnlab.errors import DataError
    monkeypatch.setattr(rnnlab.cli, "_run_options", lambda *a: {})
    for error, shown in ((ValueError("math domain error"), "math domain error (--debug shows where)"),
                         (DataError("x.csv:3: expected a number, found 'a'"),
                          "x.csv:3: expected a number, found 'a'")):
        def evaluate(*a, **k):
            raise error
        monkeypatch.setattr(rnnlab.api, "evaluate", evaluate)
        assert main(["evaluate", "runs/none"]) == 2
        assert capsys.readouterr().err == f"rnnlab: error: {shown}\n"
        with pytest.raises(type(error)):
            main(["evaluate", "runs/none", "--debug"])
