r"""The one-to-many structure of the notes: one image in, a sequence of words out.

Encoder. A small convolutional network reads the image X (3, H, W), pixels scaled to [0, 1]:
``conv_layers`` blocks of a 3x3 convolution (padding 1), ReLU and 2x2 max pooling, the k-th with
``channels * 2^k`` filters, then

    v = tanh(W_v flatten(blocks(2 X - 1)) + b_v)    the image vector, F = ``feature_size`` wide

(He-initialised convolutions; v is bounded, so the decoder's initial state tanh(W_k v + b_k) does
not saturate in the first updates, when W_v, summing over every pixel block, grows fast.)
With ``image_features`` F_in > 0 the images come as feature vectors x (F_in,) computed elsewhere
(read from an .npy), and the encoder is the dense layer alone: v = tanh(W_v x + b_v).

Decoder. An rnnlab layer (any cell) stepped once per word, s_t = f(x_t, s_{t-1}), fed y_0 = <eos>
first (the end of the caption before), then y_{t-1}. ``context`` says how v reaches it:

    "init"   s_0 = tanh(W_k v + b_k) for each state tensor k    x_t = E y_{t-1}
    "first"  s_0 = f(P v, 0), v read as an input before y_0     x_t = E y_{t-1}
    "input"  s_0 = 0                                            x_t = [E y_{t-1} ; v]
    "both"   s_0 as for "init"                                  x_t = [E y_{t-1} ; v]

Every decoder layer starts from the same s_0 ("init", "both"); "first" runs the whole stack over
P v. The output is P(y_t | y_<t, X) = softmax(W_y s_t + b_y), s_t the last layer's output.

Training is teacher forcing: x_t is built from the reference's y_{t-1}, and all steps run in one
call of the decoder layer; a caption's loss covers its own words and its <eos>, never the padding
after it (the decoder runs forward in time, so padding cannot reach earlier steps).

Decoding (rnnlab.decoding.search) drives the decoder one word at a time:

    state = model.encode(images (B, 3, H, W))
    log_probs (B, V), state = model.step(tokens (B,), state)
    state = model.reorder(state, index)        # rows of the batch picked, repeated or reordered

Shapes: images (B, 3, H, W) float, tgt_in (T, B) int64 -> logits (T, B, V).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options
from .seq2seq import DecoderState

CONTEXTS = ("init", "first", "input", "both")


@dataclass
class CaptionerConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`Captioner` (saved in the run's config.json)."""
    vocab_size: int = from_data()            # set from the data
    image_height: int = from_data()          # set from the data
    image_width: int = from_data()           # set from the data
    image_features: int = from_data(0)       # set from the data: F_in of feature vectors; 0: pixels
    conv_layers: int = 3           # convolution blocks, each halving the height and width
    channels: int = 16             # filters of the first block, doubled at each next one
    feature_size: int = 256        # F, the image vector v
    context: str = "both"          # init | first | input | both (see the module docstring)
    cell: str = "lstm"
    embed_size: int = 64
    hidden_size: int = 256
    layers: int = 1
    dropout: float = 0.1           # on v, on the embedded words and on s_t
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "CaptionerConfig":
        check_choice("context", self.context, CONTEXTS)
        check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        if isinstance(self.image_features, bool) or not isinstance(self.image_features, int) \
                or self.image_features < 0:
            raise ConfigError(f"image_features must be a whole number >= 0 (0: pixels), got "
                              f"{self.image_features!r}")
        pixels = () if self.image_features else ("image_height", "image_width")  # vectors: no size
        for name in ("vocab_size",) + pixels + ("conv_layers", "channels", "feature_size",
                                                "embed_size", "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        smallest = min(self.image_height, self.image_width)
        if not self.image_features and smallest >> self.conv_layers < 1:
            raise ConfigError(f"{self.conv_layers} convolution blocks halve a {self.image_height}x"
                              f"{self.image_width} image to nothing; use at most "
                              f"{smallest.bit_length() - 1}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        return self


class ImageEncoder(nn.Module):
    """X (B, 3, H, W) in [0, 1] -> v (B, F): convolution blocks, then one dense layer."""

    def __init__(self, c: CaptionerConfig):
        super().__init__()
        blocks, width = [], 3
        for k in range(c.conv_layers):
            blocks += [nn.Conv2d(width, c.channels << k, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = c.channels << k
        self.blocks = nn.Sequential(*blocks)
        h, w = c.image_height >> c.conv_layers, c.image_width >> c.conv_layers
        self.project = nn.Linear(width * h * w, c.feature_size)
        for layer in self.blocks:          # He initialisation: ReLU layers keep their scale
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.blocks(2.0 * images - 1.0)                                     # (B, C_L, H', W')
        return torch.tanh(self.project(z.flatten(1)))                           # (B, F)


class FeatureEncoder(nn.Module):
    """x (B, F_in) image feature vectors (read, not learned) -> v = tanh(W x + b) (B, F)."""

    def __init__(self, c: CaptionerConfig):
        super().__init__()
        self.project = nn.Linear(c.image_features, c.feature_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.project(features))                              # (B, F)


class Captioner(nn.Module):
    """Image in, caption-word logits out; see the module docstring for the equations."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = c = config.check()
        self.encoder = FeatureEncoder(c) if c.image_features else ImageEncoder(c)
        reads_v = c.context in ("input", "both")
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        self.input_mlp, self.decoder, self.output_mlp = build_recurrent(
            c, c.embed_size + (c.feature_size if reads_v else 0), c.hidden_size, num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0, engine=c.engine, init=c.init)
        cell = self.decoder.cells[0]
        self.state_sizes = cell.state_sizes
        self.bridge = None
        if c.context in ("init", "both"):
            self.bridge = nn.ModuleList(nn.Linear(c.feature_size, s) for s in self.state_sizes)
        self.first = nn.Linear(c.feature_size, c.embed_size) if c.context == "first" else None
        self.output = nn.Linear(self.output_mlp.out_size, c.vocab_size)
        self.drop = Dropout(c.dropout) if c.dropout else nn.Identity()

    # ------------------------------------------------------------------ encoder
    def encode(self, images: torch.Tensor) -> DecoderState:
        """(B, 3, H, W) images in [0, 1] -> the decoder's state before y_0."""
        c = self.config
        if c.image_features:
            if images.dim() != 2 or images.shape[1] != c.image_features:
                raise ValueError(f"Captioner expected feature vectors of shape (B, {c.image_features}), "
                                 f"got {tuple(images.shape)}")
        elif images.dim() != 4 or tuple(images.shape[1:]) != (3, c.image_height, c.image_width):
            raise ValueError(f"Captioner expected images of shape (B, 3, {c.image_height}, "
                             f"{c.image_width}), got {tuple(images.shape)}")
        v = self.drop(self.encoder(images))                                     # (B, F)
        B = v.shape[0]
        if self.bridge is not None:
            hidden = tuple(torch.tanh(b(v)).unsqueeze(0).expand(c.layers, -1, -1).contiguous()
                           for b in self.bridge)                                # (L, B, S_k)
        else:
            hidden = tuple(v.new_zeros(c.layers, B, s) for s in self.state_sizes)
        if self.first is not None:
            x0 = self.drop(self.first(v)).unsqueeze(0)                          # (1, B, E)
            _, final = self.decoder(self.input_mlp(x0), self._layer_state(hidden))
            hidden = (final,) if torch.is_tensor(final) else tuple(final)
        return DecoderState(hidden, context=v if c.context in ("input", "both") else None)

    # ------------------------------------------------------------------ decoder
    @staticmethod
    def _layer_state(hidden: Tuple[torch.Tensor, ...]):
        return hidden[0] if len(hidden) == 1 else hidden

    def _inputs(self, tokens: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """x_t of words (T, B): the embedded words, with v beside them for "input" and "both"."""
        e = self.drop(self.embedding(tokens))                                   # (T, B, E)
        if state.context is None:
            return e
        v = state.context.unsqueeze(0).expand(tokens.shape[0], -1, -1)          # (T, B, F)
        return torch.cat([e, v], dim=-1)                                        # (T, B, E+F)

    def step(self, tokens: torch.Tensor, state: DecoderState):
        """(B,) words y_{t-1} -> (B, V) log P(y_t | y_<t, X), and the state after the step."""
        out, hidden = self.decoder(self.input_mlp(self._inputs(tokens.unsqueeze(0), state)),
                                   self._layer_state(state.hidden))            # (1, B, H)
        hidden = (hidden,) if torch.is_tensor(hidden) else tuple(hidden)
        log_probs = F.log_softmax(self.output(self.drop(self.output_mlp(out[0]))), dim=-1)       # (B, V)
        return log_probs, DecoderState(hidden, context=state.context)

    def reorder(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        """The state of rows ``index`` of the batch (beam search's survivors)."""
        return state.select(index)

    def forward(self, images: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits of every caption word, (T, B, V), teacher-forced on ``tgt_in`` (T, B) = y_0 .. y_{T-1}."""
        state = self.encode(images)
        out, _ = self.decoder(self.input_mlp(self._inputs(tgt_in, state)),
                              self._layer_state(state.hidden))                  # (T, B, H)
        return self.output(self.drop(self.output_mlp(out)))                                      # (T, B, V)
