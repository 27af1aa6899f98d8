r"""The notes' alternatives to a language model for learning the projection P of one-hot words:
the *continuous bag of words* (CBOW, "soft bag of words: predict a word from the words in its
immediate context, without considering their position") and the *skip-gram* ("predict adjacent
words from the current word"), both trained by negative sampling.

Each word w has an input vector v_w (a column of the projection P, the word's embedding) and an
output vector u_w. With the context C(i) of centre w_i (:mod:`rnnlab.embeddings.windows`) and the
loss l(h, o, n_1..K) of :mod:`rnnlab.embeddings.negative_sampling`:

.. math::
    \text{skip-gram:}\quad & L = \sum_i \sum_{c \in C(i)} \ell(v_{w_i},\ c,\ n_{1..K}) \\
    \text{CBOW:}\quad & L = \sum_i \ell\Big(\tfrac{1}{|C(i)|} \sum_{c \in C(i)} v_c,\ w_i,\ n_{1..K}\Big)

with K fresh noise words for every pair (skip-gram) or centre (CBOW). The embedding of a word is
its input vector v_w.

Shapes: ``input_vectors.weight`` and ``output_vectors.weight`` (N, D), N words, D = ``embed_size``.
Initialisation: v uniform in [-0.5/D, 0.5/D], u = 0, so that every score starts at 0 and every
loss at (K + 1) log 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..training.config import from_data, positive_int
from .negative_sampling import negative_sampling_loss

METHODS = ("skipgram", "cbow")


@dataclass
class WordVectorsConfig:
    """What is learned: which predictor, and the size of the word vectors."""
    vocab_size: int = from_data()
    method: str = "skipgram"           # "skipgram" | "cbow"
    embed_size: int = 100              # D, the rows of the projection P

    def check(self) -> "WordVectorsConfig":
        check_choice("method", self.method, METHODS)
        positive_int("embed_size", self.embed_size)
        if self.vocab_size < 1:
            raise ConfigError(f"vocab_size must be set from the data, got {self.vocab_size}")
        return self


class WordVectors(nn.Module):
    """Input and output vectors of every word; the loss of a batch of skip-gram pairs or CBOW
    windows (module docstring)."""

    def __init__(self, config: WordVectorsConfig):
        super().__init__()
        self.config = config.check()
        N, D = config.vocab_size, config.embed_size
        self.input_vectors = nn.Embedding(N, D)                            # v_w, the projection
        self.output_vectors = nn.Embedding(N, D)                           # u_w
        self.reset_parameters()

    def reset_parameters(self) -> None:
        D = self.config.embed_size
        nn.init.uniform_(self.input_vectors.weight, -0.5 / D, 0.5 / D)
        nn.init.zeros_(self.output_vectors.weight)

    @property
    def projection(self) -> torch.Tensor:
        """(N, D) the word vectors v_w: the notes' projection P, one row per word (P W_i is row i;
        a language model's counterpart is its ``embedding.weight``)."""
        return self.input_vectors.weight

    def skipgram_loss(self, centres: torch.Tensor, contexts: torch.Tensor,
                      negatives: torch.Tensor) -> torch.Tensor:
        """(P,) losses of pairs: centres (P,), contexts (P,), negatives (P, K)."""
        h = self.input_vectors(centres)                                    # (P, D) v_w
        return negative_sampling_loss(h, self.output_vectors(contexts),    # (P, D) u_c
                                      self.output_vectors(negatives))      # (P, K, D)

    def cbow_input(self, contexts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, D) the mean input vector of each window: contexts and mask (B, S), at least one
        word in every row."""
        v = self.input_vectors(contexts)                                   # (B, S, D)
        m = mask.to(v.dtype).unsqueeze(-1)                                 # (B, S, 1)
        return (v * m).sum(1) / m.sum(1)                                   # (B, D)

    def cbow_loss(self, centres: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor,
                  negatives: torch.Tensor) -> torch.Tensor:
        """(B,) losses of windows: centres (B,), contexts and mask (B, S), negatives (B, K)."""
        h = self.cbow_input(contexts, mask)                                # (B, D)
        return negative_sampling_loss(h, self.output_vectors(centres),     # (B, D) u_w
                                      self.output_vectors(negatives))      # (B, K, D)

    def forward(self, centres: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor,
                negatives: torch.Tensor) -> torch.Tensor:
        """Skip-gram: (P,) pair losses, ``contexts`` (P,) and ``mask`` ignored (None);
        CBOW: (B,) window losses."""
        if self.config.method == "cbow":
            return self.cbow_loss(centres, contexts, mask, negatives)
        return self.skipgram_loss(centres, contexts, negatives)

