"""Labelled sentences for sequence classification (the notes' many-to-one structure).

Two line formats, told apart by the first line of the file:

- ``LABEL TEXT``: the label, a space, the (tokenized) sentence, as in the SST-2 files
  ``stsa.binary.*`` (``1 a stirring , funny ... film``);
- tab-separated: ``TEXT<TAB>LABEL`` with an optional header naming the columns (GLUE's
  ``sentence<TAB>label``), or ``LABEL<TAB>TEXT`` when the header says so or the first column holds
  the labels.

Labels are any tokens without whitespace (``0``/``1``, ``pos``/``neg``); the classes of a run are
those of its training file, sorted. Blank lines are skipped. A malformed line is a DataError with
the file, the line number, what was expected and what was found.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from ..errors import DataError
from .corpus import read_text, split_files
from .lines import split_lines

TEXT_COLUMNS = ("sentence", "text", "review", "document")
LABEL_COLUMNS = ("label", "labels", "class", "sentiment", "target")


@dataclass
class LabelledSentence:
    words: List[str]
    label: str
    line: int           # where it was read, for error messages
    source: str = ""


def _show(line: str) -> str:
    return repr(line if len(line) <= 60 else line[:57] + "...")


def parse_labelled(text: str, source: str) -> List[LabelledSentence]:
    """The sentences of ``text`` (the contents of file ``source``, named in errors)."""
    lines = split_lines(text)
    first = next((ln for ln in lines if ln.strip()), "")
    if "\t" in first:
        return _parse_tsv(lines, source)
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise DataError(f"{source}:{n}: expected \"LABEL TEXT\" (a label, a space, the sentence), "
                            f"found {_show(line)}")
        out.append(LabelledSentence(parts[1:], parts[0], n, source))
    return out


def _parse_tsv(lines: List[str], source: str) -> List[LabelledSentence]:
    header = [c.strip().lower() for c in next(ln for ln in lines if ln.strip()).split("\t")]
    start = 0
    if any(c in TEXT_COLUMNS for c in header) and any(c in LABEL_COLUMNS for c in header):
        text_col = next(i for i, c in enumerate(header) if c in TEXT_COLUMNS)
        label_col = next(i for i, c in enumerate(header) if c in LABEL_COLUMNS)
        start = next(i for i, ln in enumerate(lines) if ln.strip()) + 1
        width = len(header)
    else:
        width = 2
        cells = next(ln for ln in lines if ln.strip()).split("\t")
        # the label column is the one without spaces; the text is the other
        label_col = 0 if (" " not in cells[0].strip() and " " in cells[-1].strip()) else width - 1
        text_col = width - 1 - label_col
    out = []
    for n, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != width:
            raise DataError(f"{source}:{n}: expected {width} tab-separated columns, found "
                            f"{len(cells)} in {_show(line)}")
        label, words = cells[label_col].strip(), cells[text_col].split()
        if not label or " " in label:
            raise DataError(f"{source}:{n}: expected a label (one token) in column {label_col + 1}, "
                            f"found {cells[label_col]!r}")
        if not words:
            raise DataError(f"{source}:{n}: expected a sentence in column {text_col + 1}, found nothing")
        out.append(LabelledSentence(words, label, n, source))
    return out


def read_labelled(path, encoding: str = "utf-8") -> List[LabelledSentence]:
    """The labelled sentences of a file; a DataError if it has none."""
    sentences = parse_labelled(read_text(path, encoding), str(path))
    if not sentences:
        raise DataError(f"{path}: expected labelled sentences, found none")
    return sentences


def read_labelled_splits(path, encoding: str = "utf-8") -> Dict[str, List[LabelledSentence]]:
    """{"train", "valid"?, "test"?} of a folder (files named by split) or a single file (train)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"expected a file or folder of labelled sentences at {p}; nothing is there")
    if p.is_dir():
        return {k: read_labelled(f, encoding) for k, f in split_files(p).items()}
    return {"train": read_labelled(p, encoding)}


def cut_examples(items: List, fraction: float) -> Tuple[List, List]:
    """(head, tail): the last ``fraction`` of ``items`` held out, in file order."""
    k = int(round(len(items) * fraction))
    return (items[:len(items) - k], items[len(items) - k:]) if k else (items, [])


def check_labels(sentences: List[LabelledSentence], classes: List[str]) -> None:
    """A DataError at the first sentence whose label is not one of ``classes``."""
    known = set(classes)
    for s in sentences:
        if s.label not in known:
            raise DataError(f"{s.source}:{s.line}: expected a label among {', '.join(classes)} "
                            f"(the training file's), found {s.label!r}")
