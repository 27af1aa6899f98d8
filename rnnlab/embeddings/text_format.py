"""Word vectors as text, the word2vec format: a header line ``N D``, then N lines ``word v_1 .. v_D``
(numbers separated by single spaces). fastText's ``.vec`` files are the same; GloVe's files are the
same without the header, and are read too.

Reading keeps only the words asked for (a file of millions of words is streamed, not held), and a
file that is not in the format is one DataError naming the line.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Collection, Dict, Optional, Sequence, Tuple

import torch

from ..errors import DataError


def write_word2vec_text(path, words: Sequence[str], vectors: torch.Tensor) -> None:
    """Write ``words`` and their (N, D) ``vectors`` to ``path`` (atomically); 9 significant
    digits, so float32 vectors read back unchanged."""
    from ..training.atomic import write_text
    N, D = vectors.shape
    if len(words) != N:
        raise ValueError(f"{len(words)} words for {N} vectors")
    rows = vectors.detach().cpu().double().tolist()
    lines = [f"{N} {D}"] + [word + " " + " ".join(format(x, ".9g") for x in row)
                            for word, row in zip(words, rows)]
    write_text(path, "\n".join(lines) + "\n")


def _fields(line: str):
    return [f for f in line.rstrip().split(" ") if f]


def read_word2vec_text(path, wanted: Optional[Collection[str]] = None, fold_case: bool = False,
                       encoding: str = "utf-8") -> Tuple[int, Dict[str, torch.Tensor]]:
    """(D, {word: (D,) float32 vector}) of the file at ``path``: every word, or only those in
    ``wanted`` (with ``fold_case``, also those whose lower case is; the first line of a word
    listed twice). A DataError names the line of the first
    mistake (a line of another width, a value that is not a finite number, a header's count that
    the lines do not meet)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"expected a word-vector file (word2vec text format) at {p}; "
                        f"{'found a folder that is not a run' if p.is_dir() else 'nothing is there'}")
    found: Dict[str, torch.Tensor] = {}
    dim, declared, count = None, None, 0
    try:
        with open(p, encoding=encoding, newline="\n") as f:
            for n, line in enumerate(f, 1):
                parts = _fields(line)
                if n == 1 and len(parts) == 2 and all(s.isdigit() for s in parts):
                    declared, dim = int(parts[0]), int(parts[1])
                    if dim < 1:
                        raise DataError(f"{p} line 1: expected the header 'N D' with D >= 1, found {line.strip()!r}")
                    continue
                if not parts:
                    raise DataError(f"{p} line {n}: expected a word and {dim or 'its'} numbers, found an empty line")
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise DataError(f"{p} line {n}: expected a word and its numbers "
                                        f"(word2vec text format), found {line.strip()[:40]!r}")
                if len(parts) != dim + 1:
                    raise DataError(f"{p} line {n}: expected a word and {dim} numbers, found "
                                    f"{len(parts) - 1} numbers")
                count += 1
                word = parts[0]
                keep = wanted is None or word in wanted or (fold_case and word.lower() in wanted)
                if keep and word not in found:
                    try:
                        values = [float(v) for v in parts[1:]]
                    except ValueError:
                        raise DataError(f"{p} line {n}: expected {dim} numbers after {word!r}, found "
                                        f"{next(v for v in parts[1:] if not _is_number(v))!r}") from None
                    if not all(math.isfinite(v) for v in values):
                        raise DataError(f"{p} line {n}: the vector of {word!r} holds NaN or infinite values")
                    found[word] = torch.tensor(values, dtype=torch.float32)
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not {encoding} text at byte {e.start} (a binary word2vec file? "
                        f"rnnlab reads the text format)") from None
    if dim is None:
        raise DataError(f"{p}: expected word vectors (word2vec text format), found no vector")
    if declared is not None and declared != count:
        raise DataError(f"{p}: the header announces {declared} vectors, found {count}")
    return dim, found


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
