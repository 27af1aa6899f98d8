r"""Polyphonic music as piano rolls: the JSB Chorales JSON and plain chord text.

A *piece* is a list of time steps; a *step* is the list of the MIDI note numbers sounding during it
(at the JSB Chorales' resolution, one quarter note), an empty list for a rest. Its *piano roll* is
the binary matrix

    r_t[k] = 1  if MIDI note  k + 21  sounds at step t, else 0       t = 0 .. T-1, k = 0 .. 87

over the 88 keys of a piano (A0 = 21 .. C8 = 108).

Two file formats:

- JSON, as github.com/czhuang/JSB-Chorales-dataset ships it: ``{"train": [...], "valid": [...],
  "test": [...]}``, each a list of pieces, each piece a list of steps, each step a list of note
  numbers (``[[60, 64, 67], [], ...]``); or a bare list of pieces (a file without splits).
- chord text: one step per line, its note numbers separated by spaces (``60 64 67``), ``-`` for a
  rest; a blank line ends a piece. ``rnnlab predict`` reads its primer in this format and prints its
  continuation in it.

A bad item is a :class:`~rnnlab.errors.DataError` naming the file and where the item is: the JSON
path (``jsb.json: train[3][17]: expected MIDI note numbers 21..108, found 130``) or the line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

from ..errors import DataError
from .corpus import read_text
from .lines import split_lines

#: MIDI note number of the piano roll's first key (A0) and the number of keys (A0 .. C8)
LOWEST_NOTE = 21
KEYS = 88
HIGHEST_NOTE = LOWEST_NOTE + KEYS - 1
SPLITS = ("train", "valid", "test")
#: the split name of a file that has none (a bare JSON list, chord text)
UNSPLIT = "all"
REST = "-"

Step = List[int]
Piece = List[Step]


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _note(value, where: str) -> int:
    """A note number of a JSON file, checked to be a key of the piano roll."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok or not LOWEST_NOTE <= value <= HIGHEST_NOTE:
        raise DataError(f"{where}: expected MIDI note numbers {LOWEST_NOTE}..{HIGHEST_NOTE}, "
                        f"found {_show(value)}")
    return value


def check_pieces(pieces, where: str) -> List[Piece]:
    """``pieces`` (parsed JSON) as a list of pieces, each step's notes sorted and distinct;
    ``where`` is the file and JSON path that errors name (``jsb.json: train``)."""
    if not isinstance(pieces, list):
        raise DataError(f"{where}: expected a list of pieces, found {_kind(pieces)}")
    out = []
    for i, piece in enumerate(pieces):
        if not isinstance(piece, list):
            raise DataError(f"{where}[{i}]: expected a piece (a list of time steps), found {_kind(piece)}")
        if not piece:
            raise DataError(f"{where}[{i}]: expected a piece of at least one time step, found an empty list")
        steps = []
        for t, step in enumerate(piece):
            if not isinstance(step, list):
                raise DataError(f"{where}[{i}][{t}]: expected a time step (a list of MIDI note numbers), "
                                f"found {_show(step)}")
            steps.append(sorted({_note(n, f"{where}[{i}][{t}]") for n in step}))
        out.append(steps)
    return out


def parse_music_json(text: str, source: str) -> Dict[str, List[Piece]]:
    """The pieces of a JSON document (the contents of file ``source``) by split: the file's own
    splits, or ``{"all": pieces}`` for a bare list."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{source}:{e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(doc, list):
        return {UNSPLIT: check_pieces(doc, f"{source}: ")}
    if not isinstance(doc, dict):
        raise DataError(f"{source}: expected a JSON object {{\"train\": [...], \"valid\": [...], "
                        f"\"test\": [...]}} or a list of pieces, found {_kind(doc)}")
    unknown = [k for k in doc if k not in SPLITS]
    if unknown:
        raise DataError(f"{source}: expected the splits {', '.join(SPLITS)}, found {unknown[0]!r}")
    if not doc:
        raise DataError(f"{source}: expected the splits {', '.join(SPLITS)}, found an empty object")
    return {name: check_pieces(doc[name], f"{source}: {name}") for name in SPLITS if name in doc}


def parse_chord(line: str) -> Step:
    """One line of chord text as a step (raises ValueError when it is not one)."""
    words = line.split()
    if words == [REST]:
        return []
    notes = [int(w, 10) for w in words]
    if not words or any(not LOWEST_NOTE <= n <= HIGHEST_NOTE for n in notes):
        raise ValueError(line)
    return sorted(set(notes))


def parse_chords(text: str, source: str) -> List[Piece]:
    """The pieces of chord text (one step per line, ``-`` a rest, a blank line between pieces)."""
    pieces: List[Piece] = [[]]
    for n, line in enumerate(split_lines(text), 1):
        if not line.strip():
            if pieces[-1]:
                pieces.append([])
            continue
        try:
            pieces[-1].append(parse_chord(line))
        except ValueError:
            raise DataError(f"{source}:{n}: expected MIDI note numbers {LOWEST_NOTE}..{HIGHEST_NOTE} "
                            f"separated by spaces, or {REST} for a rest; found {_show(line.strip())}") \
                from None
    return [p for p in pieces if p]


def format_chord(step: Sequence[int]) -> str:
    """A step as a line of chord text: ``60 64 67``, or ``-`` for a rest."""
    return " ".join(str(n) for n in step) if len(step) else REST


def read_music(path, encoding: str = "utf-8") -> Dict[str, List[Piece]]:
    """The pieces of a music file by split: a JSON file (``.json``, or text opening with ``{`` or
    ``[``) or chord text. A file without splits gives ``{"all": pieces}``."""
    p = Path(path)
    text = read_text(p, encoding)
    if p.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
        splits = parse_music_json(text, str(path))
    else:
        splits = {UNSPLIT: parse_chords(text, str(path))}
    if not any(splits.values()):
        raise DataError(f"{path}: expected at least one piece of music, found none")
    return splits


def piano_roll(piece: Sequence[Sequence[int]]) -> torch.Tensor:
    """A piece as its piano roll, (T, 88) float32 of 0 and 1."""
    roll = torch.zeros(len(piece), KEYS)                                    # (T, K)
    for t, step in enumerate(piece):
        for n in step:
            roll[t, n - LOWEST_NOTE] = 1.0
    return roll


def roll_to_piece(roll: torch.Tensor) -> Piece:
    """A piano roll (T, 88), nonzero where a key sounds, back to a piece of note numbers."""
    if roll.dim() != 2 or roll.shape[1] != KEYS:
        raise ValueError(f"a piano roll is (T, {KEYS}), got shape {tuple(roll.shape)}")
    return [[k + LOWEST_NOTE for k in torch.nonzero(row).flatten().tolist()] for row in roll]


def cut_pieces(pieces: List[Piece], fraction: float) -> Tuple[List[Piece], List[Piece]]:
    """(head, tail): the last ``fraction`` of the pieces (at least one if fraction > 0 and there
    are two or more) as the tail."""
    n = round(len(pieces) * fraction)
    if fraction > 0 and len(pieces) >= 2:
        n = max(n, 1)
    n = min(n, len(pieces) - 1)
    return (pieces[:len(pieces) - n], pieces[len(pieces) - n:]) if n > 0 else (pieces, [])
