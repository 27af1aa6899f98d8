"""Sentence classification (--task classify): the reader, the pools, the batches, the commands."""
import json
import os
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.labelled import parse_labelled, read_labelled
from rnnlab.errors import DataError
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier, pool
from rnnlab.tasks.examples import epoch_batches, pad
from rnnlab.training.checkpoint import read_checkpoint

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# ------------------------------------------------------------------------------------ reader
def test_label_text_lines():
    s = parse_labelled("1 a fine film\n\n0 dull .\n", "f.txt")
    assert [(x.words, x.label, x.line) for x in s] == [(["a", "fine", "film"], "1", 1), (["dull", "."], "0", 3)]


def test_tsv_with_header_and_label_first():
    s = parse_labelled("sentence\tlabel\nit is great\t1\nawful\t0\n", "g.tsv")
    assert [(x.words, x.label, x.line) for x in s] == [(["it", "is", "great"], "1", 2), (["awful"], "0", 3)]
    s = parse_labelled("pos\ta very good one\nneg\tbad film\n", "h.tsv")
    assert [(x.words, x.label) for x in s] == [(["a", "very", "good", "one"], "pos"), (["bad", "film"], "neg")]


@pytest.mark.parametrize("text, where, expected", [
    ("1 good\nlonely\n", "f.txt:2", 'expected "LABEL TEXT"'),
    ("sentence\tlabel\ngood\t1\nbad\t0\textra\n", "f.txt:3", "expected 2 tab-separated columns, found 3"),
    ("sentence\tlabel\ngood\t1\n\t0\n", "f.txt:3", "expected a sentence in column 1"),
])
def test_malformed_lines_name_file_line_and_expectation(text, where, expected):
    with pytest.raises(DataError) as e:
        parse_labelled(text, "f.txt")
    assert str(e.value).startswith(where) and expected in str(e.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_labelled(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="nothing is there"):
        read_labelled(tmp_path / "absent.txt")


def test_sst2_reader_counts():
    folder = DATA / "sst2"
    if not folder.is_dir():
        pytest.skip(f"SST-2 not found at {folder}")
    counts = {name: len(read_labelled(folder / f"stsa.binary.{name}")) for name in ("train", "dev", "test")}
    assert counts == {"train": 6920, "dev": 872, "test": 1821}        # SOURCE.md's counts
    labels = [s.label for s in read_labelled(folder / "stsa.binary.train")]
    assert labels.count("0") == 3310 and labels.count("1") == 3610


# ------------------------------------------------------------------------------------ batches
def test_pad_and_lengths():
    x, n = pad([torch.tensor([1, 2, 3]), torch.tensor([4])], value=9)
    assert x.tolist() == [[1, 4], [2, 9], [3, 9]] and n.tolist() == [3, 1]


def test_epoch_batches_cover_each_example_once_and_depend_only_on_seed_and_epoch():
    lengths = [int(x) for x in torch.randint(1, 40, (523,))]
    a = epoch_batches(lengths, 16, seed=3, epoch=2)
    assert sorted(i for b in a for i in b) == list(range(523))
    assert a == epoch_batches(lengths, 16, seed=3, epoch=2)
    assert a != epoch_batches(lengths, 16, seed=3, epoch=3)
    assert a != epoch_batches(lengths, 16, seed=4, epoch=2)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 4     # sorted within pools: little padding (random batches spread ~30)


# ------------------------------------------------------------------------------------ model
def test_pools_use_only_each_sequences_own_steps():
    out = torch.randn(5, 3, 4)
    lengths = torch.tensor([5, 2, 3])
    mean, mx = pool(out, lengths, "mean"), pool(out, lengths, "max")
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(mean[b], out[:n, b].mean(0))
        torch.testing.assert_close(mx[b], out[:n, b].max(0).values)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sentence_scores_the_same_alone_and_in_a_padded_batch(pooling, cell):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(vocab_size=20, num_classes=3, embed_size=8, hidden_size=6,
                                                cell=cell, pooling=pooling, layers=2, dropout=0.0)).double().eval()
    seqs = [torch.randint(2, 20, (n,)) for n in (7, 3, 5)]
    tokens, lengths = pad(seqs, value=1)
    batch = model(tokens, lengths)
    for b, s in enumerate(seqs):
        alone = model(s[:, None], torch.tensor([len(s)]))
        torch.testing.assert_close(batch[b], alone[0], rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------ commands
def _toy(folder: Path) -> Path:
    """Sentences whose label is whether 'good' or 'bad' occurs in them, among filler words."""
    g = torch.Generator().manual_seed(0)
    filler = "the a film plot actor was is and of it this".split()
    folder.mkdir()
    for split, n in (("train", 240), ("dev", 40), ("test", 40)):
        lines = []
        for i in range(n):
            k = int(torch.randint(2, 7, (1,), generator=g))
            words = [filler[int(j)] for j in torch.randint(0, len(filler), (k,), generator=g)]
            label = i % 2
            words.insert(int(torch.randint(0, k, (1,), generator=g)), "good" if label else "bad")
            lines.append(f"{label} {' '.join(words)}")
        (folder / f"toy.{split}").write_text("\n".join(lines) + "\n")
    return folder


SMALL = dict(embed_size=16, hidden_size=16, dropout=0.0, batch_size=16, epochs=6, lr=1e-2,
             threads=1, progress=False)


def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    data = _toy(tmp_path / "toy")
    s = rnnlab.train(task="classify", data=str(data), out=str(tmp_path / "run"), **SMALL)
    assert s["task"] == "classify" and s["test"]["accuracy"] == 1.0
    assert rnnlab.evaluate(tmp_path / "run")["accuracy"] == 1.0
    got = rnnlab.predict(tmp_path / "run", ["this good film", "a bad actor", ""])
    assert [g.split("\t")[0] for g in got] == ["1", "0", ""]
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(data / "toy.test"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == 1.0 and result["sentences"] == 40
    (tmp_path / "in.txt").write_text("good plot\nbad plot\n")
    assert main(["predict", str(tmp_path / "run"), "--input", str(tmp_path / "in.txt")]) == 0
    assert [ln.split("\t")[0] for ln in capsys.readouterr().out.splitlines()] == ["1", "0"]


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    data = _toy(tmp_path / "toy")
    settings = dict(SMALL, epochs=3)
    rnnlab.train(task="classify", data=str(data), out=str(tmp_path / "whole"), **settings)
    rnnlab.train(task="classify", data=str(data), out=str(tmp_path / "cut"), **dict(settings, max_steps=20))
    rnnlab.train(resume=str(tmp_path / "cut"), max_steps=0)
    a = read_checkpoint(tmp_path / "whole" / "checkpoint.safetensors")[0]["model"]
    b = read_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")[0]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_command_line_task_settings_and_errors(tmp_path, capsys):
    data = _toy(tmp_path / "toy")
    args = ["train", "--task", "classify", "--data", str(data), "--out", str(tmp_path / "run"),
            "--embed-size", "8", "--hidden-size", "8", "--epochs", "1", "--threads", "1", "--no-progress",
            "--pooling", "mean", "--no-bidirectional", "--sample-length", "0"]
    assert main(args) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["task"] == "classify" and cfg["model"]["pooling"] == "mean" and cfg["model"]["bidirectional"] is False
    capsys.readouterr()
    assert main(args[:-2] + ["--poolng", "max", "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown option --poolng" in err and "did you mean 'pooling'" in err
    assert main(["train", "--task", "clasify", "--data", str(data)]) == 2
    assert "did you mean 'classify'" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("1 fine\n2 words here\nnolabel\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["train", "--task", "classify", "--data", str(tmp_path / "bad.txt"), "--out",
                 str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'bad.txt'}:3: expected \"LABEL TEXT\"" in err and err.count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    (tmp_path / "other.txt").write_text("1 good\n7 bad\n")
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "other.txt")]) == 2
    assert "other.txt:2: expected a label among 0, 1" in capsys.readouterr().err


def test_sizes_read_from_the_data_are_not_settings(tmp_path, capsys):
    """vocab_size and num_classes come from the data: not listed, not settable, still saved."""
    assert main(["tasks", "classify"]) == 0
    listed = capsys.readouterr().out
    assert "--vocab-size" not in listed and "--num-classes" not in listed and "--pooling" in listed
    data = _toy(tmp_path / "toy")
    with pytest.raises(rnnlab.errors.ConfigError, match="'vocab_size' is read from the data"):
        rnnlab.train(task="classify", data=str(data), vocab_size=5, out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
