r"""A word's features from its spelling: a bidirectional character RNN, shared by the tagger and
the classifier.

For a word spelled as characters c_1 .. c_m:

    g_j^-> = cell^->(C c_j, g_{j-1}^->)                 (forward, j = 1 .. m)
    g_j^<- = cell^<-(C c_j, g_{j+1}^<-)                 (backward, j = m .. 1)
    s      = [g_m^->; g_1^<-]                           (each direction's state at its own end)

C is a learned character embedding (num_chars x C_e, index 0 ``<unk>``, the padding too); the
cells are any rnnlab cell (:data:`rnnlab.layers.LAYERS`), H_c wide per direction. A word never
seen in training still gets s from its characters (suffixes, capitals, digits, hyphens).

Padding never reaches s: the layer runs each word only over its own characters (``lengths``),
and the backward direction starts at the word's true end.

Shapes: chars (S, U) int64 holding U words spelled out, char_lengths (U,) -> s (U, 2 H_c).
Parameters: ``embedding.weight`` (num_chars, C_e); ``rnn.*`` the bidirectional layer's, input C_e.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import LAYERS


def final_hidden(state, num_directions: int) -> torch.Tensor:
    """The last layer's final h of every direction, (B, D*H), from a layer's h_n (or (h_n, c_n))."""
    h = state[0] if isinstance(state, tuple) else state            # (D*L, B, H)
    return torch.cat(list(h[-num_directions:]), dim=-1)            # (B, D*H)


class Spelling(nn.Module):
    """(S, U) characters of U words, (U,) their lengths -> (U, 2 H_c); see the module docstring."""

    def __init__(self, num_chars: int, char_embed_size: int, hidden_size: int, cell: str = "lstm",
                 engine: str = "auto", init: str = "rnnlab", **cell_options):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_embed_size)
        nn.init.normal_(self.embedding.weight, 0.0, 0.1)
        self.rnn = LAYERS[cell](char_embed_size, hidden_size, bidirectional=True, engine=engine,
                                init=init, **cell_options)
        self.output_size = 2 * hidden_size

    def forward(self, chars: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(chars)                                        # (S, U, C_e)
        _, state = self.rnn(x, lengths=char_lengths)
        return final_hidden(state, 2)                                     # (U, 2 H_c)
