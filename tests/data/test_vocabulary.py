"""Vocabularies and corpora: Penn Treebank conventions, caps, round trips, and clear errors."""
import pytest
import torch

from rnnlab.data import EOS, UNK, Vocabulary, load_text_corpus, tokenize
from rnnlab.data.corpus import builtin_text, cut_at_line, read_text
from rnnlab.errors import ConfigError, DataError


def test_word_level_follows_penn_treebank():
    text = " the cat <unk> sat \n the dog sat \n"
    assert tokenize(text, "word") == ["the", "cat", UNK, "sat", EOS, "the", "dog", "sat", EOS]
    v = Vocabulary.build(text, "word")
    assert v.symbols[:2] == [UNK, EOS]
    assert v.symbols[2:4] == ["sat", "the"]            # most frequent first, ties in symbol order
    assert v.symbols.count(UNK) == 1                   # the corpus' own <unk> is the special one
    ids = v.encode(text)
    assert ids.tolist() == [v.index[s] for s in tokenize(text, "word")]
    assert v.decode(ids) == "the cat <unk> sat\nthe dog sat\n"
    assert v.encode("the zebra").tolist() == [v.index["the"], 0, v.index[EOS]]


def test_caps_and_min_count():
    text = "a a a b b c\n"
    assert Vocabulary.build(text, "word", min_count=2).symbols == [UNK, EOS, "a", "b"]
    assert Vocabulary.build(text, "word", max_size=3).symbols == [UNK, EOS, "a"]
    with pytest.raises(ConfigError, match="max_vocab"):
        Vocabulary.build(text, "word", max_size=2)


def test_char_level_round_trip_and_save(tmp_path):
    text = "def f(x):\n    return x  # é\n"
    v = Vocabulary.build(text, "char")
    assert v.decode(v.encode(text)) == text
    assert v.encode("\u2603").tolist() == [0]
    v.save(tmp_path / "v.json")
    w = Vocabulary.load(tmp_path / "v.json")
    assert w.symbols == v.symbols and w.level == "char"
    assert torch.equal(w.encode(text), v.encode(text))


def test_builtin_corpus_is_python_help():
    text = builtin_text()
    assert len(text) > 300_000 and "assert" in text
    c = load_text_corpus(None, 0.05, 0.05)
    assert c.train + c.valid + c.test == text
    assert abs(len(c.test) / len(text) - 0.05) < 0.01 and abs(len(c.valid) / len(text) - 0.05) < 0.01
    assert c.train.endswith("\n") and c.valid.endswith("\n")


def test_cut_at_line():
    text = "".join(f"line {i}\n" for i in range(1000))
    head, tail = cut_at_line(text, 0.1)
    assert head + tail == text and head.endswith("\n") and tail.startswith("line")


def test_folder_splits(tmp_path):
    (tmp_path / "ptb.train.txt").write_text("a b\n" * 50)
    (tmp_path / "ptb.valid.txt").write_text("b a\n")
    (tmp_path / "ptb.test.txt").write_text("a a\n")
    (tmp_path / "SOURCE.md").write_text("notes")
    c = load_text_corpus(str(tmp_path))
    assert (c.train, c.valid, c.test) == ("a b\n" * 50, "b a\n", "a a\n")


def test_folder_without_train_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "more.txt").write_text("y")
    with pytest.raises(DataError, match="training file"):
        load_text_corpus(str(tmp_path))


def test_a_folder_of_one_data_file_beside_its_documentation_reads_that_file(tmp_path):
    """A data set as it ships (tinyshakespeare: SOURCE.md and input.txt): the one data file is the
    text, valid and test cut from it; a folder of only documentation is still refused."""
    (tmp_path / "SOURCE.md").write_text("where it comes from")
    (tmp_path / "README").write_text("about")
    (tmp_path / "LICENSE.txt").write_text("terms")
    (tmp_path / "input.txt").write_text("a b\n" * 100)
    c = load_text_corpus(str(tmp_path), valid_fraction=0.1, test_fraction=0.1)
    assert c.train + c.valid + c.test == "a b\n" * 100 and c.valid and c.test
    assert read_text(tmp_path) == "a b\n" * 100
    (tmp_path / "input.txt").unlink()
    with pytest.raises(DataError, match="training file"):
        load_text_corpus(str(tmp_path))


@pytest.mark.parametrize("make, match", [
    (lambda p: p, "nothing is there"),
    (lambda p: (p.mkdir(), p)[1], "found a folder with no file in it"),
    (lambda p: (p.mkdir(), (p / "data.json").write_text("{}"), (p / "more.json").write_text("{}"),
                (p / "SOURCE.md").write_text("x"), p)[-1],
     "found a folder holding SOURCE.md, data.json, more.json: give one of its files"),
    (lambda p: (p.write_text("  \n"), p)[1], "empty"),
    (lambda p: (p.write_bytes(b"ok\nok\n\xff\xfe bad\n"), p)[1], r":3: bytes that are not valid utf-8"),
])
def test_read_text_errors(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        read_text(make(tmp_path / "corpus.txt"))


def test_other_encoding(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("caf\xe9\n".encode("latin-1"))
    assert read_text(p, "latin-1") == "café\n"
    with pytest.raises(ConfigError, match="unknown text encoding"):
        read_text(p, "no-such-codec")


def test_evaluating_on_a_folder_of_one_data_file_reads_all_of_it(tmp_path):
    from rnnlab.tasks.language_modelling import held_out_text
    (tmp_path / "SOURCE.md").write_text("where it comes from")
    (tmp_path / "input.txt").write_text("a b\n" * 10)
    assert held_out_text(None, str(tmp_path), "utf-8", "run") == "a b\n" * 10
