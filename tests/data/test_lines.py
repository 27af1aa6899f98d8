"""Readers split lines at ``\\n`` (and ``\\r\\n``) only: U+0085, U+2028 and the other characters
``str.splitlines()`` breaks at stay inside their line, in every reader."""
import pytest

from rnnlab.data.labelled import parse_labelled
from rnnlab.data.lines import split_lines
from rnnlab.data.music import parse_chords
from rnnlab.data.series import parse_series
from rnnlab.data.vocabulary import tokenize

INSIDE = ["\u0085", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize("c", INSIDE, ids=[f"U+{ord(c):04X}" for c in INSIDE])
def test_split_lines_breaks_at_newlines_only(c):
    assert split_lines(f"a{c}b\nc\r\nd") == [f"a{c}b", "c", "d"]
    assert split_lines("a\n\nb\n") == ["a", "", "b"] and split_lines("") == []
    assert f"a{c}b".splitlines() != [f"a{c}b"]  # what the readers must not do


@pytest.mark.parametrize("c", ["\u0085", "\u2028"], ids=["U+0085", "U+2028"])
def test_labelled_sentences_keep_their_label(c):
    text = f"pos\ta fine{c}film\nneg\tdull\n"
    got = parse_labelled(text, "train.tsv")
    assert [(s.label, s.line) for s in got] == [("pos", 1), ("neg", 2)]
    assert got[0].words[0] == "a" and len(got) == 2


@pytest.mark.parametrize("c", ["\u0085", "\u2028"], ids=["U+0085", "U+2028"])
def test_vocabulary_tokens_close_only_real_lines(c):
    assert tokenize(f"a b{c}c\nd\n", "word").count("<eos>") == 2


@pytest.mark.parametrize("c", ["\u0085", "\u2028"], ids=["U+0085", "U+2028"])
def test_csv_rows_are_lines(c):
    series = parse_series(split_lines(f"date,x\n2020-01-01{c},1\n2020-01-02,2\n"), "s.csv", ["x"])
    assert len(series) == 2 and series.values[:, 0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("c", ["\u0085", "\u2028"], ids=["U+0085", "U+2028"])
def test_chord_steps_are_lines(c):
    """Inside a line the character is whitespace between notes, not a new step."""
    (piece,) = parse_chords(f"60 64{c}67\n62\n", "chords.txt")
    assert len(piece) == 2 and len(parse_chords("60 64\n67\n62\n", "chords.txt")[0]) == 3
