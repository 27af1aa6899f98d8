"""Words spelled out for a character RNN: the characters of the training words, and each batch's
distinct words spelled once (the tagger and the classifier read their batches through here).

The characters are those of the training words, sorted, after index 0 ``<unk>``: a character
never seen in training, and also the padding past a word's end (the character RNN runs each word
only over its own length, so the padding is never read). B sentences holding U distinct words
become

    chars (S, U)           each distinct word's character indices, padded to the longest, S
    char_lengths (U,)      their lengths
    spelling (T, B)        for word t of sentence b, the index in 0..U-1 of its spelling
                           (0 past a sentence's end, which the sentence RNN never reads)

so a word repeated in a batch ("the", ",") is spelled, and run through the character RNN, once.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from ..errors import DataError

UNK = "<unk>"


class Characters:
    """An ordered list of characters, index 0 ``<unk>``; spells words as index tensors."""

    def __init__(self, chars: Sequence[str]):
        self.chars: List[str] = list(chars)
        if self.chars[:1] != [UNK] or len(set(self.chars)) != len(self.chars) \
                or not all(isinstance(c, str) and len(c) == 1 for c in self.chars[1:]):
            raise DataError(f"a character list must start with {UNK!r} and hold distinct single "
                            f"characters, got {self.chars[:5]}...")
        self.index: Dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        self._spelled: Dict[str, torch.Tensor] = {}

    @classmethod
    def build(cls, words: Iterable[str]) -> "Characters":
        """Every character of ``words`` (the training words), sorted, after ``<unk>``."""
        return cls([UNK] + sorted({ch for w in words for ch in w}))

    def __len__(self) -> int:
        return len(self.chars)

    def spell(self, word: str) -> torch.Tensor:
        """(S,) the character indices of ``word``; an unseen character is ``<unk>`` (0)."""
        ids = self._spelled.get(word)
        if ids is None:
            get = self.index.get
            ids = torch.tensor([get(ch, 0) for ch in word], dtype=torch.long)
            self._spelled[word] = ids
        return ids

    def spell_batch(self, sentences: List[List[str]]) -> Dict[str, torch.Tensor]:
        """B sentences -> chars (S, U), char_lengths (U,), spelling (T, B); see the module
        docstring."""
        T = max((len(s) for s in sentences), default=0)
        distinct: Dict[str, int] = {}
        rows = [[distinct.setdefault(w, len(distinct)) for w in s] + [0] * (T - len(s))
                for s in sentences]                                                       # B x T
        spelling = torch.tensor(rows, dtype=torch.long).reshape(len(sentences), T)       # (B, T)
        spelling = spelling.t().contiguous()                                              # (T, B)
        spelled = [self.spell(w) for w in distinct]
        chars = pad_sequence(spelled, padding_value=0)                                    # (S, U)
        char_lengths = torch.tensor([len(s) for s in spelled], dtype=torch.int64)         # (U,)
        return {"chars": chars, "char_lengths": char_lengths, "spelling": spelling}
