r"""The encoder-decoder of the notes, with each way of handing the source sentence to the decoder.

Encoder. Source words x_1 .. x_S (one-hot, projected by an embedding) are read by an rnnlab layer,
optionally bidirectional, run over each sentence's own length:

    h_j = [h_j^fwd ; h_j^bwd]          the annotations, (S, B, C), C = D * H (D = 2 if bidirectional)
    c   = [h_S^fwd ; h_1^bwd]          the context vector: the last layer's final states

Decoder. An rnnlab layer stepped once per target word, s_t = f(x_t, s_{t-1}), fed y_0 = <eos> first
(the end of the sentence before, as rnnlab's language models start), then y_{t-1}. ``context``:

    "init"       s_0 = tanh(W_b c + b_b)   (c itself when its size is the decoder's)   x_t = E y_{t-1}
    "input"      s_0 = 0                                                                x_t = [E y_{t-1} ; c]
    "both"       s_0 as for "init"                                                      x_t = [E y_{t-1} ; c]
    "attention"  s_0 as for "init",   x_t = [E y_{t-1} ; a_t], Bahdanau's additive attention:
                 e_tj = v^T tanh(W s_{t-1} + U h_j)
                 alpha_tj = exp(e_tj) / sum_k exp(e_tk)     over the sentence's own positions
                 a_t = sum_j alpha_tj h_j                    (padding gets alpha_tj = 0)

For cells with several state tensors (the LSTM's (h, c)) "init" maps each final state tensor of the
encoder to the decoder's, every decoder layer starting from the same s_0; c and s_{t-1} in the
attention are the output states h.

Output. o_t = tanh(W_o [s_t ; k_t] + b_o), with k_t the context the step read (c for "input" and
"both", a_t for "attention", nothing for "init"), and

    P(y_t | y_<t, x) = softmax(W_y o_t + b_y).

Training is teacher forcing: x_t is built from the reference's y_{t-1}. Scheduled sampling
(Bengio et al. 2015) instead feeds, at each step t >= 1 and for each sentence independently with
probability epsilon, the model's own most probable word of step t - 1; :func:`sampling_probability`
gives epsilon over training: it rises linearly from 0 to ``sampling_rate`` over the first
``sampling_ramp`` epochs (0: ``sampling_rate`` from the start), so that the model first learns
from the reference and then from its own mistakes. Teacher-forced "init", "input" and "both" run
the decoder over all steps in one call of the layer; attention and scheduled sampling step it.

Decoding (rnnlab.decoding.search) drives the decoder one word at a time:

    state = model.encode(src (S, B), lengths (B,))
    log_probs (B, V), state = model.step(tokens (B,), state)
    state = model.reorder(state, index)        # rows of the batch picked, repeated or reordered

Shapes: src (S, B) int64, lengths (B,), tgt_in (T, B) int64 -> logits (T, B, V).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .. import compiler
from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from .recurrent_options import (RecurrentOptions, build_recurrent, check_recurrent_options,
                                input_mlp, layer_options)

CONTEXTS = ("init", "input", "both", "attention")


@dataclass
class Seq2SeqConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`Seq2Seq` (saved in the run's config.json)."""
    source_vocab: int = from_data()        # words of the source vocabulary
    target_vocab: int = from_data()        # words of the target vocabulary
    context: str = "attention"     # init | input | both | attention (see the module docstring)
    cell: str = "lstm"
    embed_size: int = 256          # source and target word embeddings, and the output layer o_t
    hidden_size: int = 256         # the decoder's units, and the encoder's per direction
    layers: int = 1                # of the encoder and of the decoder
    bidirectional: bool = True     # the encoder
    attention_size: int = 0        # width of W s and U h; 0: the hidden size
    dropout: float = 0.2           # on embeddings, between layers and on o_t
    sampling_rate: float = 0.0     # scheduled sampling: the final epsilon
    sampling_ramp: int = 0         # epochs over which epsilon rises from 0 (0: from the start)
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "Seq2SeqConfig":
        check_choice("context", self.context, CONTEXTS)
        check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        for name in ("source_vocab", "target_vocab", "embed_size", "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if isinstance(self.attention_size, bool) or not isinstance(self.attention_size, int) \
                or self.attention_size < 0:
            raise ConfigError(f"attention_size must be a whole number >= 0 (0: the hidden size), "
                              f"got {self.attention_size!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not 0 <= self.sampling_rate <= 1:
            raise ConfigError(f"sampling_rate must lie in [0, 1], got {self.sampling_rate}")
        if isinstance(self.sampling_ramp, bool) or not isinstance(self.sampling_ramp, int) \
                or self.sampling_ramp < 0:
            raise ConfigError(f"sampling_ramp must be a whole number of epochs >= 0, got "
                              f"{self.sampling_ramp!r}")
        return self


def sampling_probability(rate: float, ramp: int, epochs_done: float) -> float:
    """Scheduled sampling's epsilon after ``epochs_done`` (fractional) epochs of training:
    ``rate * min(1, epochs_done / ramp)``, or ``rate`` throughout when ``ramp`` is 0."""
    if ramp <= 0:
        return rate
    return rate * min(1.0, epochs_done / ramp)


@dataclass
class DecoderState:
    """What one decoder step reads besides its input word; every tensor has the batch in it.

    ``hidden``: the decoder layer's state, one (L, B, S_k) tensor per state tensor of the cell;
    ``context``: c, (B, C), for "input" and "both"; ``memory``: the annotations h_j, (S, B, C),
    ``keys``: U h_j + b_U, (S, B, A), and ``mask``: True at real source positions, (S, B), for
    "attention". Unused fields are None.
    """
    hidden: Tuple[torch.Tensor, ...]
    context: Optional[torch.Tensor] = None
    memory: Optional[torch.Tensor] = None
    keys: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None

    #: the dimension of each field that runs over the batch
    BATCH_DIM = {"hidden": 1, "context": 0, "memory": 1, "keys": 1, "mask": 1}

    def select(self, index: torch.Tensor) -> "DecoderState":
        """The state of the batch rows ``index`` (B',) in that order."""
        out = {}
        for f in fields(self):
            value, dim = getattr(self, f.name), self.BATCH_DIM[f.name]
            if value is None:
                out[f.name] = None
            elif isinstance(value, tuple):
                out[f.name] = tuple(v.index_select(dim, index) for v in value)
            else:
                out[f.name] = value.index_select(dim, index)
        return DecoderState(**out)


class AdditiveAttention(nn.Module):
    r"""Bahdanau's additive attention over annotations h_j (see the module docstring):

        e_tj = v^T tanh(W s_{t-1} + U h_j + b),   alpha_t = masked softmax_j(e_tj),
        a_t = sum_j alpha_tj h_j.

    Shapes: query s_{t-1} (B, Q); memory h (S, B, C); keys U h + b (S, B, A) from :meth:`keys`;
    mask (S, B) bool, True at real positions. Returns a_t (B, C) and alpha (S, B).
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int):
        super().__init__()
        self.W = nn.Linear(query_size, attention_size, bias=False)
        self.U = nn.Linear(memory_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """U h_j + b for every position, computed once per sentence.   (S, B, A)"""
        return self.U(memory)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor,
                mask: torch.Tensor):
        scores = self.v(torch.tanh(keys + self.W(query).unsqueeze(0))).squeeze(-1)   # (S, B)
        scores = scores.masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=0)                                          # (S, B)
        context = torch.einsum("sb,sbc->bc", alpha, memory)                           # (B, C)
        return context, alpha


class Seq2Seq(nn.Module):
    """Source words in, target-word logits out; see the module docstring for the equations."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config.check()
        E, H, L = c.embed_size, c.hidden_size, c.layers
        D = 2 if c.bidirectional else 1
        self.source_embedding = nn.Embedding(c.source_vocab, E)
        self.target_embedding = nn.Embedding(c.target_vocab, E)
        # the recurrent options apply to both layers; the step MLPs: an input MLP for each, the
        # output MLP on the decoder's output (what the readout reads)
        self.encoder_input_mlp = input_mlp(c, E, H)
        self.encoder = LAYERS[c.cell](self.encoder_input_mlp.out_size, H, num_layers=L,
                                      dropout=c.dropout, bidirectional=c.bidirectional,
                                      engine=c.engine, init=c.init, **layer_options(c))
        cell = self.encoder.cells[0]
        self.state_sizes = cell.state_sizes                      # S_k of the encoder's cell
        self.output_state = cell.output_state
        self.context_size = C = D * cell.output_size             # C
        reads_context = c.context != "init"
        self.decoder_input_mlp, self.decoder, self.decoder_output_mlp = build_recurrent(
            c, E + (C if reads_context else 0), H, num_layers=L, dropout=c.dropout,
            engine=c.engine, init=c.init)
        dec_sizes = self.decoder.cells[0].state_sizes
        self.bridge = None
        if c.context in ("init", "both", "attention") \
                and any(D * s != d for s, d in zip(self.state_sizes, dec_sizes)):
            self.bridge = nn.ModuleList(nn.Linear(D * s, d) for s, d in zip(self.state_sizes, dec_sizes))
        self.attention = None
        if c.context == "attention":
            self.attention = AdditiveAttention(self.decoder.cells[0].output_size, C,
                                               c.attention_size or H)
        self.readout = nn.Linear(self.decoder_output_mlp.out_size + (C if reads_context else 0), E)
        self.output = nn.Linear(E, c.target_vocab)
        self.drop = Dropout(c.dropout) if c.dropout else nn.Identity()

    # ------------------------------------------------------------------ encoder
    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> DecoderState:
        """(S, B) source words and (B,) lengths -> the decoder's initial state."""
        c = self.config
        S, B = src.shape
        lengths = torch.as_tensor(lengths, device=src.device)
        x = self.drop(self.source_embedding(src))                                   # (S, B, E)
        memory, final = self.encoder(self.encoder_input_mlp(x), lengths=lengths)     # (S, B, C)
        final = (final,) if torch.is_tensor(final) else tuple(final)                # (L*D, B, S_k)
        D = 2 if c.bidirectional else 1
        last = tuple(f.view(c.layers, D, B, -1)[-1].permute(1, 0, 2).reshape(B, -1)
                     for f in final)                                                # (B, D*S_k)
        context = last[self.output_state]                                           # (B, C)
        if c.context == "input":
            hidden = tuple(context.new_zeros(c.layers, B, s)
                           for s in self.decoder.cells[0].state_sizes)
        else:
            starts = last if self.bridge is None else \
                tuple(torch.tanh(b(s)) for b, s in zip(self.bridge, last))          # (B, S_k)
            hidden = tuple(s.unsqueeze(0).expand(c.layers, -1, -1).contiguous() for s in starts)
        state = DecoderState(hidden)
        if c.context in ("input", "both"):
            state.context = context
        if c.context == "attention":
            state.memory = memory
            state.keys = self.attention.keys(memory)                                # (S, B, A)
            steps = torch.arange(S, device=src.device)
            state.mask = steps[:, None] < lengths[None, :]                          # (S, B)
        return state

    # ------------------------------------------------------------------ decoder
    def _layer_state(self, hidden: Tuple[torch.Tensor, ...]):
        return hidden[0] if len(hidden) == 1 else hidden

    def _decoder_step(self, e: torch.Tensor, state: DecoderState):
        """One step from the embedded words y_{t-1} (B, E): (o_t (B, E), the new state)."""
        if self.attention is not None:
            query = state.hidden[self.output_state][-1]                             # (B, H)
            k, _ = self.attention(query, state.memory, state.keys, state.mask)      # (B, C)
        else:
            k = state.context
        x = e if k is None else torch.cat([e, k], dim=-1)                           # (B, E[+C])
        out, hidden = self.decoder(self.decoder_input_mlp(x.unsqueeze(0)),
                                   self._layer_state(state.hidden))                 # (1, B, H)
        hidden = (hidden,) if torch.is_tensor(hidden) else tuple(hidden)
        o = self._readout(self.decoder_output_mlp(out[0]), k)                                                # (B, E)
        return o, DecoderState(hidden, state.context, state.memory, state.keys, state.mask)

    def _readout(self, s: torch.Tensor, k: Optional[torch.Tensor]) -> torch.Tensor:
        """o_t = tanh(W_o [s_t ; k_t] + b_o), dropout applied.   (..., E)"""
        z = s if k is None else torch.cat([s, k], dim=-1)
        return self.drop(torch.tanh(self.readout(z)))

    def step(self, tokens: torch.Tensor, state: DecoderState):
        """(B,) words y_{t-1} -> (B, V) log P(y_t | y_<t, x), and the state after the step."""
        o, state = self._decoder_step(self.drop(self.target_embedding(tokens)), state)
        return F.log_softmax(self.output(o), dim=-1), state

    def reorder(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        """The state of rows ``index`` of the batch (beam search's survivors)."""
        return state.select(index)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor,
                sampling_rate: float = 0.0) -> torch.Tensor:
        """Logits of every target word, (T, B, V), given the source and the decoder's inputs
        ``tgt_in`` (T, B) = y_0 .. y_{T-1}; ``sampling_rate``: scheduled sampling's epsilon."""
        state = self.encode(src, lengths)
        if self.attention is None and not sampling_rate:
            return self._teacher_forced(tgt_in, state)
        # (the time loops are compiler.loop's: under torch.compile a step is one graph, for
        # every target length; unrolled, they were compiled again for every length)
        def step(hidden, e_t):
            o, new = self._decoder_step(e_t, DecoderState(hidden, state.context, state.memory, state.keys, state.mask))
            return new.hidden, o
        if not sampling_rate:                    # attention: the inputs are known, the context is not
            e = self.drop(self.target_embedding(tgt_in))                            # (T, B, E)
            _, outputs = compiler.loop(step, state.hidden, e)                       # (T, B, E)
            return self.output(outputs)                                             # (T, B, V)

        def sampled(carry, tokens):              # tokens: the reference y_{t-1} (B,)
            hidden, previous = carry             # previous: the last step's logits (B, V)
            own = previous.argmax(-1)                                                # (B,)
            pick = torch.rand(own.shape, device=own.device) < sampling_rate
            hidden, o = step(hidden, self.drop(self.target_embedding(torch.where(pick, own, tokens))))
            logits = self.output(o)                                                  # (B, V)
            return (hidden, logits.detach()), logits
        hidden, o = step(state.hidden, self.drop(self.target_embedding(tgt_in[0])))
        first = self.output(o)                                                       # (B, V)
        if tgt_in.shape[0] == 1:
            return first.unsqueeze(0)
        _, logits = compiler.loop(sampled, (hidden, first.detach()), tgt_in[1:])     # (T - 1, B, V)
        return torch.cat([first.unsqueeze(0), logits])                               # (T, B, V)

    def _teacher_forced(self, tgt_in: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Every step of a context that does not depend on the step ("init", "input", "both") in
        one call of the decoder layer.   (T, B, V)"""
        T = tgt_in.shape[0]
        e = self.drop(self.target_embedding(tgt_in))                                # (T, B, E)
        k = None
        if state.context is not None:
            k = state.context.unsqueeze(0).expand(T, -1, -1)                         # (T, B, C)
            e = torch.cat([e, k], dim=-1)                                            # (T, B, E+C)
        out, _ = self.decoder(self.decoder_input_mlp(e), self._layer_state(state.hidden))  # (T, B, H)
        return self.output(self._readout(self.decoder_output_mlp(out), k))
