r"""The synchronous many-to-many structure of the notes: one output per input step, here one
part-of-speech tag per word, read with the whole sentence on both sides.

For a sentence of words w_1 .. w_n, each word w_t spelled as characters c_1 .. c_m:

    e_t   = E w_t                                      (word embedding, M wide; E learned)
    g_j   = cells_c(C c_j, g_{j-1})                    (character cells, forward and backward)
    s_t   = [g_m^->; g_1^<-]                           (each direction's state at its own end;
                                                        :class:`~rnnlab.models.spelling.Spelling`)
    x_t   = [e_t; s_t]                                 (M + 2 H_c)
    h_t   = [h_t^->; h_t^<-] = cells(x_t, h_{t-1}^->, h_{t+1}^<-)     (bidirectional, L layers)
    y_t   = softmax(W h_t + b)                         (K tags)

trained on the cross-entropy of every word, Div = - sum_t log y_t[tag_t], averaged over the words
of a batch. The character states s_t give a word never seen in training a representation from its
spelling (suffixes, capitals, digits, hyphens). Word dropout: while training, each occurrence of a
word seen k times in the training data is replaced by ``<unk>`` with probability
alpha / (alpha + k), so ``<unk>``'s embedding is learned from rare words, the kind a new word is.

Padding never reaches a real word's output: both recurrences run each sequence only over its own
steps (``lengths``); the backward direction starts at the true end of each sentence and of each
word.

Shapes: words (T, B) int64, lengths (B,), chars (S, U) int64 holding the U distinct words of the
batch spelled out, char_lengths (U,), spelling (T, B) the index in 0..U-1 of each word's
spelling -> logits (T, B, K).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options
from .spelling import Spelling


@dataclass
class TaggerConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`Tagger` (saved in the run's config.json)."""
    vocab_size: int = from_data()          # words, set from the data
    char_vocab_size: int = from_data()     # characters, set from the data
    num_tags: int = from_data()            # set from the data
    embed_size: int = 100        # M, the word embedding
    char_embed_size: int = 50    # the character embedding
    char_hidden_size: int = 50   # H_c per direction; 0: no character features
    cell: str = "lstm"           # for both recurrences
    hidden_size: int = 150       # H per direction of the sentence layer
    layers: int = 1
    bidirectional: bool = True   # of the sentence layer (the character layer always is)
    dropout: float = 0.25        # on x_t, between layers and on h_t
    word_dropout: float = 0.25   # alpha; 0: off
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "TaggerConfig":
        check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        for name in ("vocab_size", "char_vocab_size", "num_tags", "embed_size", "char_embed_size",
                     "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if isinstance(self.char_hidden_size, bool) or not isinstance(self.char_hidden_size, int) \
                or self.char_hidden_size < 0:
            raise ConfigError(f"char_hidden_size must be a whole number >= 0 (0: no character "
                              f"features), got {self.char_hidden_size!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not isinstance(self.word_dropout, (int, float)) or self.word_dropout < 0:
            raise ConfigError(f"word_dropout (alpha) must be a number >= 0, got {self.word_dropout!r}")
        return self


class Tagger(nn.Module):
    """Words in, a tag distribution per word out; see the module docstring for the equations.

    ``word_counts``: how often each word of the vocabulary occurs in the training data (index 0,
    ``<unk>``, counts nothing); word dropout needs them, and is off without them.
    """

    def __init__(self, config: TaggerConfig, word_counts: Optional[Sequence[int]] = None):
        super().__init__()
        self.config = c = config.check()
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        nn.init.normal_(self.embedding.weight, 0.0, 0.1)
        char_out = 0
        if c.char_hidden_size:
            self.spelling = Spelling(c.char_vocab_size, c.char_embed_size, c.char_hidden_size, c.cell,
                                     engine=c.engine, init=c.init, **c.cell_options)
            char_out = self.spelling.output_size                          # 2 H_c
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.embed_size + char_out, c.hidden_size, num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0, bidirectional=c.bidirectional,
            engine=c.engine, init=c.init)
        self.drop = Dropout(c.dropout)
        self.output = nn.Linear(self.output_mlp.out_size, c.num_tags)
        p_unk = torch.zeros(c.vocab_size)
        if word_counts is not None and c.word_dropout > 0:
            if len(word_counts) != c.vocab_size:
                raise ConfigError(f"word_counts has {len(word_counts)} entries for a vocabulary of "
                                  f"{c.vocab_size} words")
            k = torch.tensor(list(word_counts), dtype=torch.float32)
            p_unk = torch.where(k > 0, c.word_dropout / (c.word_dropout + k), torch.zeros(()))
        self.register_buffer("unk_probability", p_unk, persistent=False)      # (V,)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, chars: Optional[torch.Tensor] = None,
                char_lengths: Optional[torch.Tensor] = None,
                spelling: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(T, B) word ids, (B,) lengths and the batch's spellings -> (T, B, K) logits."""
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.unk_probability[words]
            words = words.masked_fill(drop, 0)                            # (T, B), some <unk>
        x = self.embedding(words)                                         # (T, B, M)
        if self.config.char_hidden_size:
            if chars is None or char_lengths is None or spelling is None:
                raise ValueError("this tagger reads characters: give chars, char_lengths and spelling")
            s = self.spelling(chars, char_lengths)                        # (U, 2 H_c)
            x = torch.cat([x, s[spelling]], dim=-1)                       # (T, B, M + 2 H_c)
        out, _ = self.rnn(self.input_mlp(self.drop(x)), lengths=lengths)  # (T, B, D H)
        return self.output(self.drop(self.output_mlp(out)))                                # (T, B, K)
