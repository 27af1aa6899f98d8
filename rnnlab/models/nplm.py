r"""The neural probabilistic language model of Bengio et al. (2003): the notes' TDNN model.

Each word is predicted from the n words before it, through one tanh layer and a softmax:

    x_t = [C(w_{t-n+1}); ...; C(w_{t-1}); C(w_t)]      the window of projected words, (n m)
    a_t = tanh(d + H x_t)                                the hidden layer, (h)
    y_t = b + W x_t + U a_t                              (the term W x_t only with ``direct=True``)
    P(w_{t+1} = i | w_{t-n+1} .. w_t) = softmax(y_t)_i

trained, like the recurrent model, on Div = - sum_t log softmax(y_t)_{w_{t+1}}.

Legend:
    w_t   the id of the word read at step t (a character at character level)
    n     ``context``: words in the window; the paper counts the predicted word too, so its
          "n-gram" order is ``context + 1`` (its n = 5 is ``context=4`` here)
    N     ``vocab_size``; m = ``embed_size`` (0: the hidden size); h = ``hidden_size``
    C     (N, m) the projection: row C(w) is word w's learned feature vector, shared by all
          n places of the window (``embedding.weight``)
    H, d  (h, n m), (h): the hidden layer (``hidden.weight``, ``hidden.bias``)
    U     (N, h): hidden layer to output
    W     (N, n m): the optional direct connections from the window to the output
    b     (N): output bias

``decoder.weight`` holds U, or [U W] (N, h + n m) with direct connections, and ``features``
returns a_t, or [a_t; x_t]: then y_t = b + [U W] [a_t; x_t] is one matrix product, and the
language-model task's ``model.decoder(model.features(tokens, state)[0])`` serves both forms.
Dropout (``dropout``), in training only, is applied to x_t and to a_t.

State: the ids of the last n-1 words of each stream, (n-1, B) int64. Fed back, it makes a window
that straddles two truncated-BPTT windows (or two chunks of an evaluation read) see the true
previous words, so reading a text in pieces gives exactly the logits of reading it at once.
Before a text begins (no state) the window is padded with ``boundary_id``, which the task sets
to the symbol that separates texts: ``<eos>`` at word level (a Penn Treebank line starts after
an ``<eos>``), the newline at character level (``<unk>`` if the text has none). Generation starts
from the same symbol, so the start of a text is read as the start of a sentence.

Shapes: tokens (T, B) int64 -> logits (T, B, N); state (n-1, B) int64.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import Dropout
from .language_model import LanguageModelConfig


class NPLM(nn.Module):
    """Bengio et al.'s feedforward language model over a window of ``config.context`` words;
    see the module docstring for the equations. Built from a :class:`LanguageModelConfig` with
    ``architecture="nplm"``."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = c = config.check()
        if c.architecture != "nplm":
            raise ConfigError(f"NPLM needs architecture 'nplm', got {c.architecture!r}; "
                              f"build the recurrent model with rnnlab.models.LanguageModel")
        if not 0 <= c.boundary_id < c.vocab_size:
            raise ConfigError(f"boundary_id must be a symbol id in [0, {c.vocab_size}), "
                              f"got {c.boundary_id}")
        N, h, n = c.vocab_size, c.hidden_size, c.context
        m = c.embed_size or h
        self.embedding = nn.Embedding(N, m)                               # C
        self.hidden = nn.Linear(n * m, h)                                 # H, d
        self.drop = Dropout(c.dropout) if c.dropout else nn.Identity()
        self.decoder = nn.Linear(h + n * m if c.direct else h, N)         # [U W] or U, b
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.config.init_range
        nn.init.uniform_(self.embedding.weight, -r, r)
        self.hidden.reset_parameters()                   # uniform(+-1/sqrt(n m)), torch's Linear
        nn.init.uniform_(self.decoder.weight, -r, r)
        nn.init.zeros_(self.decoder.bias)

    def initial_state(self, batch_size: int, device=None) -> torch.Tensor:
        """(n-1, B) the window's padding before a text begins: ``boundary_id`` everywhere."""
        return torch.full((self.config.context - 1, batch_size), self.config.boundary_id,
                          dtype=torch.long, device=device)

    def windows(self, tokens: torch.Tensor,
                state: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(T, B) tokens -> (T, B, n) ids of every step's window, oldest first
        (``[t, b, k]`` is w_{t-n+1+k} of stream b), and the (n-1, B) state after the last step."""
        if tokens.dim() != 2:
            raise ConfigError(f"tokens must be (T, B) word ids, got shape {tuple(tokens.shape)}")
        n, B = self.config.context, tokens.shape[1]
        if state is None:
            state = self.initial_state(B, tokens.device)
        elif tuple(state.shape) != (n - 1, B):
            raise ConfigError(f"NPLM state must be the last {n - 1} word ids of each of the {B} "
                              f"streams, shape ({n - 1}, {B}); got {tuple(state.shape)}")
        ids = torch.cat([state, tokens])                                  # (n-1+T, B)
        return ids.unfold(0, n, 1), ids[ids.shape[0] - (n - 1):]         # (T, B, n), (n-1, B)

    def features(self, tokens: torch.Tensor, state: Optional[torch.Tensor] = None):
        """(T, B) tokens -> (T, B, h) a_t, or (T, B, h + n m) [a_t; x_t] with direct
        connections (dropout applied); the (n-1, B) state."""
        T, B = tokens.shape
        windows, state = self.windows(tokens, state)                      # (T, B, n)
        x = self.drop(self.embedding(windows).reshape(T, B, -1))         # (T, B, n m)
        a = self.drop(torch.tanh(self.hidden(x)))                        # (T, B, h)
        if self.config.direct:
            a = torch.cat([a, x], dim=-1)                                # (T, B, h + n m)
        return a, state

    def forward(self, tokens: torch.Tensor, state: Optional[torch.Tensor] = None):
        """(T, B) tokens -> (T, B, N) logits y_t of the next word, the (n-1, B) state."""
        out, state = self.features(tokens, state)
        return self.decoder(out), state
