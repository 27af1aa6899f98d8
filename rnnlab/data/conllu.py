"""CoNLL-U treebanks (Universal Dependencies) read as tagged sentences.

A CoNLL-U file is a sequence of sentences, each a block of lines ended by a blank line. A line
starting with ``#`` is a comment (``# sent_id = ...``, ``# text = ...``). Every other line is a
token of 10 tab-separated columns::

    ID  FORM  LEMMA  UPOS  XPOS  FEATS  HEAD  DEPREL  DEPS  MISC

The ID of a syntactic word is an integer, 1, 2, 3, ... in order within its sentence. Two other
kinds of line carry no tag of their own and are skipped for tagging: a multiword token ``3-4``
(the surface form "don't" over the words 3 "do" and 4 "n't") and an empty node ``8.1`` (a word
elided in the text, inserted for the enhanced graph). UPOS is one of the 17 universal tags;
XPOS (the treebank's own tag, Penn Treebank tags in English) may be ``_``.

Anything else is a :class:`~rnnlab.errors.DataError` naming the file, the line number, what was
expected there and what was found.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

from ..errors import DataError
from .corpus import SPLIT_NAMES, read_text

#: the universal part-of-speech tags of UD, in the order of the UD guidelines' table
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")

WORD_ID = re.compile(r"[0-9]+")
RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")


@dataclass
class TaggedSentence:
    """The syntactic words of one sentence with their tags, and where each was read."""
    words: List[str]
    upos: List[str]
    xpos: List[str]
    lines: List[int] = field(default_factory=list)     # line number of each word
    source: str = ""

    def __len__(self) -> int:
        return len(self.words)

    def tags(self, tagset: str) -> List[str]:
        return self.upos if tagset == "upos" else self.xpos


def _show(line: str) -> str:
    return repr(line if len(line) <= 60 else line[:57] + "...")


def parse_conllu(text: str, source: str) -> List[TaggedSentence]:
    """The sentences of ``text`` (the contents of file ``source``, named in errors)."""
    sentences: List[TaggedSentence] = []
    current = TaggedSentence([], [], [], [], source)
    started = 0            # line where the current block began (0: between blocks)
    next_id = 1            # the ID the next syntactic word must have
    range_end = 0          # last word ID covered by the latest multiword token

    def close(n: int) -> None:
        nonlocal current, started, next_id, range_end
        if started and not current.words:
            raise DataError(f"{source}:{n}: expected a word line (ID 1) in the sentence begun at "
                            f"line {started}, found the end of the sentence")
        if range_end >= next_id:
            raise DataError(f"{source}:{n}: expected words up to ID {range_end} (the last multiword "
                            f"token's range), found the end of the sentence after ID {next_id - 1}")
        if current.words:
            sentences.append(current)
        current = TaggedSentence([], [], [], [], source)
        started, next_id, range_end = 0, 1, 0

    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()                                  # the final newline ends the last line
    for n, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            if line:
                raise DataError(f"{source}:{n}: expected an empty line between sentences, found "
                                f"whitespace {line!r}")
            close(n)
            continue
        started = started or n
        if line.startswith("#"):
            if current.words:
                raise DataError(f"{source}:{n}: expected a token line (10 tab-separated columns) "
                                f"or an empty line closing the sentence, found the comment {_show(line)}")
            continue
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise DataError(f"{source}:{n}: expected 10 tab-separated columns ({' '.join(COLUMNS)}), "
                            f"found {len(cells)} in {_show(line)}")
        ident, form, upos, xpos = cells[0], cells[1], cells[3], cells[4]
        if RANGE_ID.fullmatch(ident):
            first, last = (int(g) for g in RANGE_ID.fullmatch(ident).groups())
            if first != next_id or last <= first:
                raise DataError(f"{source}:{n}: expected a multiword token range starting at ID "
                                f"{next_id} (\"{next_id}-M\" with M > {next_id}), found {ident!r}")
            range_end = last
            continue
        if EMPTY_ID.fullmatch(ident):
            whole = int(EMPTY_ID.fullmatch(ident).group(1))
            if whole != next_id - 1:
                raise DataError(f"{source}:{n}: expected an empty node after word {next_id - 1} "
                                f"(\"{next_id - 1}.K\"), found {ident!r}")
            continue
        if not WORD_ID.fullmatch(ident):
            raise DataError(f"{source}:{n}: expected an ID (a whole number, \"N-M\" or \"N.K\") in "
                            f"column 1, found {ident!r}")
        if int(ident) != next_id:
            raise DataError(f"{source}:{n}: expected word ID {next_id} (IDs count 1, 2, 3, ... in "
                            f"each sentence), found {ident}")
        if not form:
            raise DataError(f"{source}:{n}: expected a word form in column 2 (FORM), found nothing")
        if upos not in UPOS_TAGS:
            raise DataError(f"{source}:{n}: expected a universal POS tag in column 4 (UPOS), one of "
                            f"{' '.join(UPOS_TAGS)}, found {upos!r}")
        if not xpos:
            raise DataError(f"{source}:{n}: expected a tag or \"_\" in column 5 (XPOS), found nothing")
        current.words.append(form)
        current.upos.append(upos)
        current.xpos.append(xpos)
        current.lines.append(n)
        next_id += 1
    close(len(lines) + 1)
    return sentences


def read_conllu(path, encoding: str = "utf-8") -> List[TaggedSentence]:
    """The tagged sentences of a CoNLL-U file; a DataError if it holds none."""
    sentences = parse_conllu(read_text(path, encoding), str(path))
    if not sentences:
        raise DataError(f"{path}: expected CoNLL-U sentences (token lines of 10 tab-separated "
                        f"columns), found none")
    return sentences


def conllu_files(folder) -> Dict[str, Path]:
    """The ``.conllu`` files of a folder by split: names holding ``train``, ``dev`` / ``valid`` /
    ``val``, ``test`` as a word (``en_ewt-ud-dev.conllu``). Other files (a UD release's ``.txt``
    copies of the text, its README) are ignored."""
    folder = Path(folder)
    found: Dict[str, Path] = {}
    for f in sorted(folder.glob("*.conllu")):
        words = re.split(r"[-_.]", f.name.lower())
        split = next((s for s, keys in SPLIT_NAMES.items() if any(k in words for k in keys)), None)
        if split is None:
            continue
        if split in found:
            raise DataError(f"{folder}: expected one CoNLL-U file for the {split} split, found two: "
                            f"{found[split].name} and {f.name}")
        found[split] = f
    if "train" not in found:
        names = ", ".join(sorted(f.name for f in folder.glob("*.conllu"))) or "none"
        raise DataError(f"{folder}: expected a training file (a .conllu name containing 'train'); "
                        f"found .conllu files: {names}")
    return found


def read_conllu_splits(path, encoding: str = "utf-8") -> Dict[str, List[TaggedSentence]]:
    """{"train", "valid"?, "test"?} of a folder (see :func:`conllu_files`) or of a single file
    (train only)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"expected a CoNLL-U file or a folder of them at {p}; nothing is there")
    if p.is_dir():
        return {k: read_conllu(f, encoding) for k, f in conllu_files(p).items()}
    return {"train": read_conllu(p, encoding)}


def count_words(sentences: List[TaggedSentence]) -> Tuple[int, int]:
    """(sentences, syntactic words)."""
    return len(sentences), sum(len(s) for s in sentences)
