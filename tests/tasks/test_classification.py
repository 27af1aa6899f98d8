"""Sentence classification (--task classify): the reader, the pools, the batches, the commands."""
import json
import os
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.characters import Characters
from rnnlab.data.labelled import parse_labelled, read_labelled
from rnnlab.errors import CheckpointError, ConfigError, DataError
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier, pool
from rnnlab.tasks.examples import epoch_batches, pad
from rnnlab.training.checkpoint import read_checkpoint

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


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


def test_spell_batch_spells_each_distinct_word_once():
    c = Characters.build(["dog", "dogs", "cat"])
    assert c.chars == ["<unk>", "a", "c", "d", "g", "o", "s", "t"]
    b = c.spell_batch([["dog", "cat", "dog"], ["cat"], ["dogs", "zoo"]])
    assert b["spelling"].tolist() == [[0, 1, 2], [1, 0, 3], [0, 0, 0]]    # (T, B); dog 0, cat 1, ...
    assert b["char_lengths"].tolist() == [3, 3, 4, 3]
    assert b["chars"].t().tolist() == [[3, 5, 4, 0], [2, 1, 7, 0], [3, 5, 4, 6], [0, 5, 5, 0]]  # z unseen
    with pytest.raises(DataError, match="must start with '<unk>'"):
        Characters(["a", "b"])


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


def spelled(sentences, characters, char_hidden_size):
    """The character inputs of a batch of word lists, or none for a word-only model."""
    return characters.spell_batch(sentences) if char_hidden_size else {}


@pytest.mark.parametrize("char_hidden_size", [0, 4])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sentence_scores_the_same_alone_and_in_a_padded_batch(pooling, cell, char_hidden_size):
    torch.manual_seed(0)
    characters = Characters.build(["abcdef"])
    model = SequenceClassifier(ClassifierConfig(
        vocab_size=20, num_classes=3, char_vocab_size=len(characters), embed_size=8, char_embed_size=5,
        char_hidden_size=char_hidden_size, hidden_size=6, cell=cell, pooling=pooling, layers=2,
        dropout=0.0)).double().eval()
    lexicon = ["ab", "fed", "cab", "a", "bead", "deaf", "face", "zed"]      # z: an unseen character
    picks = [torch.randint(0, len(lexicon), (n,)) for n in (7, 3, 5)]
    sentences = [[lexicon[i] for i in p.tolist()] for p in picks]          # words repeat across sentences
    seqs = [p + 2 for p in picks]
    tokens, lengths = pad(seqs, value=1)
    batch = model(tokens, lengths, **spelled(sentences, characters, char_hidden_size))
    for b, (s, words) in enumerate(zip(seqs, sentences)):
        alone = model(s[:, None], torch.tensor([len(s)]), **spelled([words], characters, char_hidden_size))
        torch.testing.assert_close(batch[b], alone[0], rtol=1e-10, atol=1e-10)


def test_character_features_tell_unknown_words_apart_by_spelling():
    torch.manual_seed(0)
    characters = Characters.build(["good", "bad"])
    config = dict(vocab_size=5, num_classes=2, char_vocab_size=len(characters), embed_size=4,
                  char_embed_size=3, char_hidden_size=3, hidden_size=4, dropout=0.0)
    model = SequenceClassifier(ClassifierConfig(**config)).eval()
    unknown = torch.tensor([[0]])                                           # (1, 1): <unk>
    a = model(unknown, torch.tensor([1]), **characters.spell_batch([["goodly"]]))
    b = model(unknown, torch.tensor([1]), **characters.spell_batch([["baddish"]]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="reads characters"):
        model(unknown, torch.tensor([1]))
    torch.manual_seed(0)
    words_only = SequenceClassifier(ClassifierConfig(**dict(config, char_hidden_size=0))).eval()
    assert torch.equal(words_only(unknown, torch.tensor([1])),
                       words_only(unknown, torch.tensor([1]), **characters.spell_batch([["goodly"]])))


def test_word_dropout_by_count_replaces_a_word_seen_k_times_with_probability_alpha_over_alpha_plus_k():
    config = ClassifierConfig(vocab_size=4, num_classes=2, embed_size=4, hidden_size=4, dropout=0.0,
                              word_dropout_alpha=1.0)
    model = SequenceClassifier(config, word_counts=[0, 1, 3, 1000])
    assert model.unk_probability.tolist() == pytest.approx([0.0, 0.5, 0.25, 1 / 1001])
    seen = []
    model.embedding.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    words = torch.tensor([1, 2] * 4000).view(-1, 1)                                 # (T, 1)
    model.train()
    model(words, torch.tensor([len(words)]))
    kept = seen[-1][:, 0]
    assert (kept[0::2] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert (kept[1::2] == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    model.eval()
    model(words, torch.tensor([len(words)]))
    assert torch.equal(seen[-1], words)                                               # never at test time
    with pytest.raises(ConfigError, match="give one form of word dropout"):
        ClassifierConfig(vocab_size=4, num_classes=2, word_dropout=0.1, word_dropout_alpha=1.0).check()
    with pytest.raises(ConfigError, match="char_vocab_size must be a positive whole number"):
        ClassifierConfig(vocab_size=4, num_classes=2, char_hidden_size=8).check()


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


def test_character_features_train_evaluate_predict_and_older_runs_still_load(tmp_path, capsys):
    data = _toy(tmp_path / "toy")
    s = rnnlab.train(task="classify", data=str(data), out=str(tmp_path / "run"), char_embed_size=6,
                     char_hidden_size=6, word_dropout_alpha=0.5, **SMALL)
    assert s["test"]["accuracy"] == 1.0
    words = json.loads((tmp_path / "run" / "words.json").read_text())
    assert words["chars"][0] == "<unk>" and set(words["chars"][1:]) == set("theafilmplotactorwasisndgb")
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())["symbols"]
    assert len(words["counts"]) == len(vocab) and words["counts"][:2] == [0, 0]
    assert words["counts"][vocab.index("good")] == 120                       # one in each positive sentence
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert cfg["char_hidden_size"] == 6 and cfg["char_vocab_size"] == len(words["chars"])
    result = rnnlab.evaluate(tmp_path / "run")
    assert result["accuracy"] == 1.0 and result["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5)
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(data / "toy.test"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0
    got = rnnlab.predict(tmp_path / "run", ["this good film", "a bad actor", "", "good"])
    assert [g.split("\t")[0] for g in got] == ["1", "0", "", "1"]
    # a run without character features, saved before words.json existed, still loads
    rnnlab.train(task="classify", data=str(data), out=str(tmp_path / "old"), **SMALL)
    (tmp_path / "old" / "words.json").unlink()
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    for name in ("char_vocab_size", "char_embed_size", "char_hidden_size", "word_dropout_alpha"):
        del cfg["model"][name]
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    assert rnnlab.evaluate(tmp_path / "old")["accuracy"] == 1.0
    assert [g.split("\t")[0] for g in rnnlab.predict(tmp_path / "old", ["good plot"])] == ["1"]
    # but a run with character features needs them
    (tmp_path / "run" / "words.json").unlink()
    with pytest.raises(CheckpointError, match="hold none"):
        rnnlab.evaluate(tmp_path / "run")


@pytest.mark.parametrize("features", [{}, dict(char_embed_size=4, char_hidden_size=4, word_dropout_alpha=2.0)])
def test_resumed_run_ends_with_the_same_weights(tmp_path, features):
    data = _toy(tmp_path / "toy")
    settings = dict(SMALL, epochs=3, **features)
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
    assert listed.index("\ndata:") < listed.index("--min-count") < listed.index("\nmodel:") \
        < listed.index("--pooling") < listed.index("\ntraining:") < listed.index("--lr")
    data = _toy(tmp_path / "toy")
    with pytest.raises(rnnlab.errors.ConfigError, match="'vocab_size' is read from the data"):
        rnnlab.train(task="classify", data=str(data), vocab_size=5, out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
    assert "--tbptt" not in listed                   # no truncated BPTT over independent sentences
    assert main(["train", "--task", "classify", "--data", str(data), "--tbptt", "5",
                 "--out", str(tmp_path / "r")]) == 2
    assert "'tbptt' is not a setting of --task classify" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
