"""The vocabulary of a language model: symbols (characters or words) <-> indices.

The notes present each symbol as a one-hot vector over a fixed, ordered vocabulary of N symbols;
the vocabulary fixes that order. Word level follows the Penn Treebank convention: words are
split on whitespace, every line ends with ``<eos>``, and a word outside the vocabulary becomes
``<unk>`` (a corpus that already writes ``<unk>`` keeps it). Character level keeps every character,
newlines included; ``<unk>`` stands for a character never seen in training.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from ..errors import ConfigError, DataError, check_choice
from .lines import split_lines

UNK = "<unk>"
EOS = "<eos>"
LEVELS = ("char", "word")


def tokenize(text: str, level: str) -> List[str]:
    """The symbols of ``text``: its characters, or its whitespace-split words with ``<eos>``
    closing every line."""
    if level == "char":
        return list(text)
    tokens: List[str] = []
    for line in split_lines(text):
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


class Vocabulary:
    """An ordered list of symbols; index 0 is ``<unk>``, and for words index 1 is ``<eos>``."""

    def __init__(self, symbols: Sequence[str], level: str):
        check_choice("level", level, LEVELS)
        self.level = level
        self.symbols: List[str] = list(symbols)
        self.index: Dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        if len(self.index) != len(self.symbols):
            twice = next(s for i, s in enumerate(self.symbols) if s in self.symbols[:i])
            raise DataError(f"expected a vocabulary of distinct symbols, found {twice!r} twice")
        if self.symbols[:1] != [UNK] or (level == "word" and self.symbols[1:2] != [EOS]):
            raise DataError(f"vocabulary must start with {UNK!r}"
                            f"{' and ' + repr(EOS) if level == 'word' else ''}; got {self.symbols[:2]}")

    @classmethod
    def build(cls, text: str, level: str, max_size: Optional[int] = None,
              min_count: int = 1) -> "Vocabulary":
        """The symbols of ``text`` seen at least ``min_count`` times, most frequent first (ties in
        symbol order), at most ``max_size`` in all (the specials included)."""
        check_choice("level", level, LEVELS)
        if max_size is not None and max_size < 3:
            raise ConfigError(f"max_vocab must be at least 3, got {max_size}")
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {min_count}")
        specials = [UNK] if level == "char" else [UNK, EOS]
        counts = Counter(tokenize(text, level))
        for s in specials:
            counts.pop(s, None)
        ranked = sorted((c, s) for s, c in counts.items() if c >= min_count)
        ranked.sort(key=lambda cs: -cs[0])  # stable: equal counts stay in symbol order
        symbols = specials + [s for _, s in ranked]
        if max_size is not None:
            symbols = symbols[:max_size]
        return cls(symbols, level)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> torch.Tensor:
        """(N,) int64 indices of the symbols of ``text``; unknown symbols become ``<unk>``."""
        get = self.index.get
        return torch.tensor([get(s, 0) for s in tokenize(text, self.level)], dtype=torch.long)

    def encode_symbols(self, symbols: Iterable[str]) -> List[int]:
        return [self.index.get(s, 0) for s in symbols]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the indices: characters joined; words joined by spaces, ``<eos>`` a newline."""
        out, first = [], True
        for i in ids:
            out.append(self.render(int(i), first))
            first = out[-1] == "\n"
        return "".join(out)

    def render(self, i: int, first: bool = False) -> str:
        """The text one generated symbol adds: for words a space before it (none at the start of
        a line), ``<eos>`` a newline; for characters ``<unk>`` is U+FFFD."""
        s = self.symbols[i]
        if self.level == "char":
            return "\ufffd" if i == 0 else s
        if s == EOS:
            return "\n"
        return s if first else " " + s

    def to_json(self) -> dict:
        return {"level": self.level, "symbols": self.symbols}

    @classmethod
    def from_json(cls, obj) -> "Vocabulary":
        if not isinstance(obj, dict) or not isinstance(obj.get("symbols"), list) \
                or not all(isinstance(s, str) for s in obj["symbols"]):
            raise DataError("vocabulary file must hold {'level': ..., 'symbols': [str, ...]}")
        return cls(obj["symbols"], obj.get("level"))

    def save(self, path) -> None:
        from ..training.atomic import write_text
        write_text(path, json.dumps(self.to_json(), ensure_ascii=False))

    @classmethod
    def load(cls, path) -> "Vocabulary":
        from ..training.atomic import read_json
        from ..errors import RnnlabError
        obj = read_json(path, "vocabulary")
        try:
            return cls.from_json(obj)
        except RnnlabError as e:                      # name the file the mistake is in
            raise DataError(f"{path}: {e}") from None
