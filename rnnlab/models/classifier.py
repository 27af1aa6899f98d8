r"""The many-to-one structure of the notes: a sequence in, one label out.

    e_t = P w_t                                     (learned projection of word w_t, M wide)
    s_t = [g_m^->; g_1^<-]                          (w_t's spelling through a character biRNN,
                                                     2 H_c; :class:`~rnnlab.models.spelling.Spelling`)
    x_t = [e_t; s_t]                                (M + 2 H_c; just e_t when char_hidden_size is 0)
    h_t = cells(x_t, h_{t-1})                       (any rnnlab cell; bidirectional: [h_t^->; h_t^<-])
    z   = pool(h_1 .. h_n)                          (n the sentence's own length)
    y   = softmax(W z + b)                          (C classes)

``pooling``: ``"last"`` the final state of each direction at the sentence's true end (the notes'
"the output at the last step"), ``"mean"`` the average of h_1 .. h_n, ``"max"`` their element-wise
maximum. Padding past a sentence's end never reaches z: the layers run each sequence only over its
own steps (``lengths``), and the pools mask the padded steps. The character states s_t give a word
never seen in training (or too rare to have its own embedding) a representation from its spelling.

Dropout (``dropout``, as the tagger's) on x_t and on z. Word dropout, while training only, turns a
word into ``<unk>`` (index 0; its spelling s_t stays): ``word_dropout`` p, every word with
probability p; or ``word_dropout_alpha`` alpha, a word seen k times in the training data with
probability alpha / (alpha + k), so ``<unk>``'s embedding is learned from the rare words, the kind an
unseen word is.

Spoken input (``features`` F > 0, e.g. log-mel frames): x_t is the frame itself, F wide, and there
are no words, embeddings or spellings.

Shapes: tokens (T, B) int64 (or, with ``features``, frames (T, B, F) float), lengths (B,), and with character features chars (S, U) int64 holding
the U distinct words of the batch spelled out, char_lengths (U,), spelling (T, B) the index in
0..U-1 of each word's spelling -> logits (B, C).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from ..sequence import length_mask
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options
from .spelling import Spelling, final_hidden

POOLINGS = ("last", "mean", "max")


@dataclass
class ClassifierConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`SequenceClassifier`."""
    vocab_size: int = from_data()          # set from the data
    num_classes: int = from_data()         # set from the data
    char_vocab_size: int = from_data()     # characters, set from the data
    features: int = from_data()            # F of frames read instead of words (speech); 0: words
    embed_size: int = 300
    char_embed_size: int = 50    # the character embedding
    char_hidden_size: int = 0    # H_c per direction of the character biRNN; 0: no character features
    cell: str = "lstm"
    hidden_size: int = 150
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.5         # on x_t and on z
    word_dropout: float = 0.0    # while training, each word becomes <unk> (index 0) with this probability
    word_dropout_alpha: float = 0.0  # while training, a word seen k times becomes <unk> w.p. alpha/(alpha+k)
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "ClassifierConfig":
        check_choice("cell", self.cell, LAYERS)
        check_choice("pooling", self.pooling, POOLINGS)
        check_recurrent_options(self)
        sizes = ("vocab_size", "embed_size", "hidden_size", "layers")
        if self.features:
            sizes = ("features", "hidden_size", "layers")
            if self.char_hidden_size or self.word_dropout or self.word_dropout_alpha:
                raise ConfigError("a classifier of frames (features > 0) reads no words: set "
                                  "char_hidden_size, word_dropout and word_dropout_alpha to 0")
        elif self.char_hidden_size:
            sizes += ("char_vocab_size", "char_embed_size")
        for name in sizes:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if isinstance(self.char_hidden_size, bool) or not isinstance(self.char_hidden_size, int) \
                or self.char_hidden_size < 0:
            raise ConfigError(f"char_hidden_size must be a whole number >= 0 (0: no character "
                              f"features), got {self.char_hidden_size!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {self.num_classes!r}")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not isinstance(self.word_dropout_alpha, (int, float)) or self.word_dropout_alpha < 0:
            raise ConfigError(f"word_dropout_alpha must be a number >= 0, got {self.word_dropout_alpha!r}")
        if self.word_dropout and self.word_dropout_alpha:
            raise ConfigError(f"give one form of word dropout: word_dropout {self.word_dropout} (a "
                              f"probability) or word_dropout_alpha {self.word_dropout_alpha} (by count)")
        return self


def pool(outputs: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(T, B, F) outputs of sequences of ``lengths`` -> (B, F), over each one's own steps."""
    mask = length_mask(lengths.to(outputs.device), outputs.shape[0])                # (T, B, 1)
    if how == "mean":
        return (outputs * mask).sum(0) / lengths.to(outputs.dtype).unsqueeze(-1)
    return outputs.masked_fill(~mask, float("-inf")).max(0).values


class SequenceClassifier(nn.Module):
    """Words in, class logits out; see the module docstring for the equations.

    ``word_counts``: how often each word of the vocabulary occurs in the training data (index 0,
    ``<unk>``, counts nothing); ``word_dropout_alpha`` needs them, and is off without them.
    """

    def __init__(self, config: ClassifierConfig, word_counts: Optional[Sequence[int]] = None):
        super().__init__()
        self.config = c = config.check()
        char_out = 0
        if not c.features:
            self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        if c.char_hidden_size:
            self.spelling = Spelling(c.char_vocab_size, c.char_embed_size, c.char_hidden_size, c.cell,
                                     engine=c.engine, init=c.init, **c.cell_options)
            char_out = self.spelling.output_size                               # 2 H_c
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.features or c.embed_size + char_out, c.hidden_size, num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0, bidirectional=c.bidirectional,
            engine=c.engine, init=c.init)
        self.drop = Dropout(c.dropout)
        self.output = nn.Linear(self.output_mlp.out_size, c.num_classes)
        if not c.features:
            nn.init.normal_(self.embedding.weight, 0.0, 0.1)
        p_unk = torch.zeros(c.vocab_size)
        if word_counts is not None and c.word_dropout_alpha > 0:
            if len(word_counts) != c.vocab_size:
                raise ConfigError(f"word_counts has {len(word_counts)} entries for a vocabulary of "
                                  f"{c.vocab_size} words")
            k = torch.tensor(list(word_counts), dtype=torch.float32)
            p_unk = torch.where(k > 0, c.word_dropout_alpha / (c.word_dropout_alpha + k), torch.zeros(()))
        self.register_buffer("unk_probability", p_unk, persistent=False)      # (V,)

    def forward(self, tokens: Optional[torch.Tensor] = None, lengths: Optional[torch.Tensor] = None,
                chars: Optional[torch.Tensor] = None, char_lengths: Optional[torch.Tensor] = None,
                spelling: Optional[torch.Tensor] = None, frames: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(T, B) tokens, (B,) lengths and, with character features, the batch's spellings ->
        (B, C) logits; a classifier of frames (``features`` F) takes frames (T, B, F) instead."""
        c = self.config
        if c.features:
            if frames is None or frames.shape[-1] != c.features:
                raise ValueError(f"this classifier reads frames (T, B, {c.features}); got "
                                 f"{None if frames is None else tuple(frames.shape)}")
            return self.classify(frames, lengths)
        if self.training and (c.word_dropout or c.word_dropout_alpha):
            p = c.word_dropout if c.word_dropout else self.unk_probability[tokens]    # (T, B) or a number
            drop = torch.rand(tokens.shape, device=tokens.device) < p
            tokens = tokens.masked_fill(drop, 0)                               # <unk>
        x = self.embedding(tokens)                                             # (T, B, M)
        if c.char_hidden_size:
            if chars is None or char_lengths is None or spelling is None:
                raise ValueError("this classifier reads characters: give chars, char_lengths and spelling")
            s = self.spelling(chars, char_lengths)                             # (U, 2 H_c)
            x = torch.cat([x, s[spelling]], dim=-1)                            # (T, B, M + 2 H_c)
        return self.classify(x, lengths)

    def classify(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The inputs x_t (T, B, I) of sequences of ``lengths`` (B,) -> (B, C) logits."""
        out, state = self.rnn(self.input_mlp(self.drop(x)), lengths=lengths)  # (T, B, D*H)
        if self.config.pooling == "last":
            z = final_hidden(state, 2 if self.config.bidirectional else 1)     # (B, D*H)
        else:
            z = pool(out, lengths, self.config.pooling)                        # (B, D*H)
        return self.output(self.drop(self.output_mlp(z)))                      # (B, C)
