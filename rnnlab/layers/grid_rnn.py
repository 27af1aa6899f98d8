r"""The two-dimensional RNN: the notes' footnote to bidirectional RNNs, "extended to 2-dimensional
input, such as images, by having four RNNs", each sweeping the grid from one corner.

A sweep from the top-left corner gives cell (i, j) two predecessors, the cell above and the cell
to the left. The vanilla form:

.. math::
    h_{i,j} = \phi(W x_{i,j} + b_{ih} + U_v h_{i-1,j} + U_h h_{i,j-1} + b_{hh})

and the 2-D LSTM, one forget gate per predecessor (gate order i, f_v, f_h, g, o):

.. math::
    [i, f_v, f_h, o] &= \sigma(\cdot), \quad g = \tanh(\cdot), \quad
        \text{each of } W x_{i,j} + b_{ih} + U_v h_{i-1,j} + U_h h_{i,j-1} + b_{hh} \\
    c_{i,j} &= f_v \odot c_{i-1,j} + f_h \odot c_{i,j-1} + i \odot g \\
    h_{i,j} &= o \odot \tanh(c_{i,j})

with h and c zero outside the grid. The other corners' sweeps are the same equations on the grid
mirrored left-right, top-bottom, or both, each with its own weights; so the top-left sweep's
h_{i,j} reads exactly the pixels (i', j') with i' <= i and j' <= j, the bottom-right sweep's those
with i' >= i and j' >= j, and with ``directions=4`` every output sees the whole image.

On a grid with one column (or one row) the sweep is a 1-D RNN over the column (row): the vanilla
form is :class:`rnnlab.RNN` with ``weight_hh = U_v`` (``U_h``), the 2-D LSTM is
:class:`rnnlab.LSTM` with the gate rows i, f_v (f_h), g, o.

**Anti-diagonal sweep.** Every cell of the anti-diagonal i + j = d depends only on cells of
diagonal d - 1, so the layer runs H + W - 1 steps, each one batched matrix product over all
cells of a diagonal and all directions, instead of H * W steps of one cell. The input projection
W x + b of every cell is one matrix product before the loop. Gradients are autograd's through
the diagonal loop.

**Regularization** (constructor options, as :mod:`rnnlab.engines.regularization` and
:mod:`rnnlab.cells.layer_norm` define them for the 1-D layers). Masks are drawn once per forward
call from torch's default generator (:meth:`GridRNN.draw_masks`; ``torch.manual_seed`` makes them
reproducible), each sweep its own; in ``eval()`` dropout and weight drop are off and zoneout
takes its expectation.

- ``weight_drop`` q: U~_v = U_v * M_v / (1 - q), U~_h = U_h * M_h / (1 - q), one mask over the
  entries of each per call, the same at every cell and for every image.
- ``recurrent_dropout`` q: one mask m (H_out,) per image and sweep, m ~ Bernoulli(1 - q) / (1 - q),
  on the predecessors' states where they enter the recurrent products:
  U_v (m * h_{i-1,j}) + U_h (m * h_{i,j-1}); c and the zoneout blend read them unmasked.
- ``layer_norm``: the input product and the summed recurrent products each normalised per gate
  block over its H_out units (G blocks: 1 vanilla, 5 LSTM), gains ``ln_gain_ih``, ``ln_gain_hh``
  (D, G*H_out), 1 at the start, the biases added after:

  .. math::
      z_{i,j} = \mathrm{LN}(W x_{i,j}; g_{ih}) + \mathrm{LN}(U_v \tilde h_{i-1,j} + U_h \tilde h_{i,j-1}; g_{hh})
                + b_{ih} + b_{hh}

  (h~ = m * h under recurrent dropout, else h) and the 2-D LSTM's cell state normalised on its
  way out, h = o * tanh(LN(c; g_c) + b_c),
  ``ln_gain_c``, ``ln_bias_c`` (D, H_out) (c itself, what the successors read, unchanged).
- ``zoneout`` z (one rate, or (z_h, z_c) for the LSTM): each state unit of cell (i, j) keeps,
  with probability z, the mean of its predecessors' values instead of its own new value:

  .. math::
      s_{i,j} = d_{i,j} \odot \bar s_{i,j} + (1 - d_{i,j}) \odot \tilde s_{i,j},
      \qquad \bar s_{i,j} = \frac{s_{i-1,j} [i > 0] + s_{i,j-1} [j > 0]}{\max(1, [i > 0] + [j > 0])}

  for s = h and c, s~ the cell's equations above, d_{i,j} ~ Bernoulli(z) per unit, cell, image
  and sweep; the mean is over the predecessors inside the grid (the first row and column have
  one, so a one-column grid is the 1-D zoneout s_t = d s_{t-1} + (1 - d) s~_t; the corner cell
  has none and keeps 0). At evaluation d_{i,j} -> z: s = z s-bar + (1 - z) s~.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import torch
from torch import nn

from .. import compiler
from ..activations import activate, check_activation
from ..cells.cell import block_norm, check_size
from ..errors import ConfigError
from ..init import INIT_SCHEMES, glorot_blocks_, orthogonal_blocks_
from ..engines.regularization import Regularization, bernoulli, drop_connect, dropout_mask
from .recurrent_layer import not_scriptable

GRID_CELLS = ("rnn", "lstm")
#: the state tensors of each grid cell (zoneout takes one rate or one per state)
GRID_STATES = {"rnn": ("h",), "lstm": ("h", "c")}
#: the sweeps, in the order of their outputs, and the axes (of (B, H, W, C)) each mirrors
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
_MIRROR = ((), (2,), (1,), (1, 2))


#: the image size (Hg, Wg) of the first GridRNN call torch.compile traced in this process
_FIRST_SIZE = []


@compiler.assume_constant_result
def _first_size(x: torch.Tensor) -> Tuple[int, int]:
    """Under torch.compile, the image size whose calls sweep in the graph, their diagonals
    unrolled: the first a trace meets (one long compilation, then faster than eager). Every other
    size sweeps outside the graph, eagerly: one compilation serves them all, where unrolled each
    size compiled again, until dynamo's recompile limit left the model eager. x (B, Hg, Wg, C)"""
    if not _FIRST_SIZE:
        _FIRST_SIZE.append((int(x.shape[1]), int(x.shape[2])))
    return _FIRST_SIZE[0]


def _other_size(Hg, Wg, first: Tuple[int, int]):
    """Whether (Hg, Wg) is not ``first``: one guard on both sizes, where they are symbolic (a
    tuple's comparison would stop at Hg, and guard on Hg alone), so that the first size's own
    graph serves it and every other size this one."""
    return (Hg != first[0]) | (Wg != first[1])


@compiler.disable
def _diagonals_outside_graph(layer, *args) -> torch.Tensor:
    return layer._diagonals(*args)


class GridMasks(NamedTuple):
    """One forward call's regularization (:meth:`GridRNN.draw_masks`): the recurrent weights to
    use (masked under weight drop), the recurrent-dropout mask (D, B, H_out) or None, and the
    zoneout keep weights k = 1 - d, one (D, B, Hg, Wg, H_out) per state (h, then the LSTM's c),
    each sweep's in its own frame (its grid mirrored to start at the top-left), or None."""
    weight_hh_v: torch.Tensor
    weight_hh_h: torch.Tensor
    recurrent: Optional[torch.Tensor]
    keeps: Optional[Tuple[torch.Tensor, ...]]


class GridRNN(nn.Module):
    r"""A two-dimensional recurrent layer over a grid (module docstring: equations and sweeps).

    Args:
        input_size: C, features per cell of the grid (an image's channels).
        hidden_size: H_out, units per sweep.
        cell: ``"lstm"`` (the 2-D LSTM, default) or ``"rnn"`` (vanilla).
        directions: 1 (the top-left sweep only) or 4 (one sweep from each corner, in the order of
            :data:`CORNERS`, outputs concatenated).
        nonlinearity: phi of the vanilla form: ``"tanh"`` (default), ``"relu"`` or ``"sigmoid"``.
        bias: whether there are biases.
        channels_first: input as (B, C, H, W) rather than (B, H, W, C); the output is
            (B, H, W, D*H_out) either way.
        forget_bias: the 2-D LSTM's forget-gate biases at initialisation. Default 0: two forget
            gates of sigma(0) = 1/2 average the two predecessors' cell states, so c neither grows
            nor shrinks along the diagonals at the start (at sigma(1) each, their sum 1.46 would
            multiply c by about 1.46 per diagonal).
        init: ``"rnnlab"``: input weights Glorot-uniform per gate block, U_v and U_h orthogonal per
            gate block and scaled by 1/sqrt(2) (two predecessors, together of unit gain), biases
            zero but the forget gates'; ``"torch"``: U(-1/sqrt(H_out), 1/sqrt(H_out)) throughout
            (layer-norm gains 1 and shifts 0 under either).
        layer_norm, recurrent_dropout, zoneout, weight_drop: the regularizers of the module
            docstring (False / 0: off).

    Forward: ``forward(x)``, x (B, H, W, C) (or (B, C, H, W)) -> (B, H, W, D*H_out), the
    hidden state h_{i,j} of each sweep at every cell.

    Parameters, one slice per direction (G = 1 vanilla, 5 LSTM): ``weight_ih`` (D, G*H_out, C),
    ``weight_hh_v`` (U_v) and ``weight_hh_h`` (U_h) (D, G*H_out, H_out), ``bias_ih``, ``bias_hh``
    (D, G*H_out); with ``layer_norm`` also ``ln_gain_ih``, ``ln_gain_hh`` (D, G*H_out) and for
    the LSTM ``ln_gain_c``, ``ln_bias_c`` (D, H_out).
    """

    def __init__(self, input_size: int, hidden_size: int, cell: str = "lstm", directions: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, *, channels_first: bool = False,
                 forget_bias: float = 0.0, init: str = "rnnlab", layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, zoneout=0.0, weight_drop: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        if cell not in GRID_CELLS:
            raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")
        if directions not in (1, 4):
            raise ValueError(f"directions must be 1 or 4, got {directions!r}")
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {init!r}")
        self.cell, self.directions, self.init = cell, directions, init
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.bias, self.channels_first = bool(bias), bool(channels_first)
        self.forget_bias = float(forget_bias)
        if not isinstance(layer_norm, bool):
            raise ConfigError(f"layer_norm must be true or false, got {layer_norm!r}")
        self.layer_norm = layer_norm
        regularization = Regularization.from_options(
            {"weight_drop": weight_drop, "recurrent_dropout": recurrent_dropout, "zoneout": zoneout},
            GRID_STATES[cell])
        self.regularization = regularization if regularization.active else None
        self.gate_count = 5 if cell == "lstm" else 1
        D, GH, H = directions, self.gate_count * hidden_size, hidden_size
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(D, GH, input_size, **kw))
        self.weight_hh_v = nn.Parameter(torch.empty(D, GH, H, **kw))
        self.weight_hh_h = nn.Parameter(torch.empty(D, GH, H, **kw))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(D, GH, **kw))
            self.bias_hh = nn.Parameter(torch.empty(D, GH, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if layer_norm:
            self.ln_gain_ih = nn.Parameter(torch.empty(D, GH, **kw))
            self.ln_gain_hh = nn.Parameter(torch.empty(D, GH, **kw))
            if cell == "lstm":
                self.ln_gain_c = nn.Parameter(torch.empty(D, H, **kw))
                self.ln_bias_c = nn.Parameter(torch.empty(D, H, **kw))
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        return self.directions * self.hidden_size

    def reset_parameters(self) -> None:
        """Initialise every parameter again by ``init`` (see the class docstring)."""
        H = self.hidden_size
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("ln_"):
                    p.fill_(1.0 if name.startswith("ln_gain") else 0.0)
                elif self.init == "torch":
                    p.uniform_(-1 / math.sqrt(H), 1 / math.sqrt(H))
            if self.init == "torch":
                return
            for d in range(self.directions):
                glorot_blocks_(self.weight_ih[d], H)
                for u in (self.weight_hh_v, self.weight_hh_h):
                    orthogonal_blocks_(u[d], H).mul_(1 / math.sqrt(2))
            if self.bias:
                self.bias_ih.zero_()
                self.bias_hh.zero_()
                if self.cell == "lstm":
                    self.bias_ih[:, H:3 * H] = self.forget_bias   # f_v and f_h

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, cell={self.cell!r}, directions={self.directions}"
        if self.cell == "rnn" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            s += ", bias=False"
        if self.channels_first:
            s += ", channels_first=True"
        if self.layer_norm:
            s += ", layer_norm=True"
        if self.regularization is not None:
            s += ", " + self.regularization.describe()
        return s

    def draw_masks(self, x: torch.Tensor) -> GridMasks:
        """This call's masks for the grid x (B, Hg, Wg, C) (module docstring), drawn from torch's
        default generator in this order: M_v, M_h, m, then the keep weights of h (and c). In
        ``eval()``: the plain weights, no m, keep weights 1 - z."""
        reg = self.regularization
        U_v, U_h = self.weight_hh_v, self.weight_hh_h
        if reg is None:
            return GridMasks(U_v, U_h, None, None)
        B, Hg, Wg, _ = x.shape
        D, H = self.directions, self.hidden_size
        m = keeps = None
        if self.training and reg.weight_drop:
            U_v, U_h = drop_connect(U_v, reg.weight_drop), drop_connect(U_h, reg.weight_drop)
        if self.training and reg.recurrent_dropout:
            m = dropout_mask(x, (D, B, H), reg.recurrent_dropout)             # (D, B, H)
        if any(reg.zoneout):
            keeps = []
            for z in reg.zoneout:                                             # 1 - d_{i,j}
                shape = (D, B, Hg, Wg, H)
                keeps.append(bernoulli(x, shape, 1.0 - z) if self.training else x.new_full(shape, 1.0 - z))
            keeps = tuple(keeps)
        return GridMasks(U_v, U_h, m, keeps)

    # ------------------------------------------------------------------ forward
    def _cell_out(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """What tanh reads in h = o tanh(.): c, or LN(c; g_c) + b_c with ``layer_norm``."""
        if not self.layer_norm:
            return c
        D, H = self.directions, self.hidden_size
        y = block_norm(c.reshape(-1, H), H)[0].view(D, n, H)                  # (D, n_d*B, H)
        return torch.addcmul(self.ln_bias_c.unsqueeze(1), y, self.ln_gain_c.unsqueeze(1))

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        layout = "(B, C, H, W)" if self.channels_first else "(B, H, W, C)"
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            found = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"GridRNN expects a 4-D input {layout}, got {found}")
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        if x.shape[-1] != self.input_size or 0 in x.shape:
            raise ValueError(f"GridRNN expects input {layout} with C = {self.input_size} and no "
                             f"empty dimension, got {tuple(x.shape)}")
        return x

    def __prepare_scriptable__(self):
        return not_scriptable(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) (or (B, C, H, W) with ``channels_first``) -> (B, H, W, D*H_out)."""
        x = self._check_input(x)
        B, Hg, Wg, C = x.shape
        D, H = self.directions, self.hidden_size
        # each sweep runs from the top-left corner of its mirrored grid
        xs = torch.stack([x.flip(m) if m else x for m in _MIRROR[:D]])       # (D, B, Hg, Wg, C)
        xs = xs.permute(0, 2, 3, 1, 4).reshape(D, Hg * Wg * B, C)             # (D, Hg*Wg*B, C)
        G = self.gate_count
        xw = torch.matmul(xs, self.weight_ih.transpose(1, 2))                 # (D, Hg*Wg*B, GH)
        GH = xw.shape[-1]
        if self.layer_norm:   # LN(W x; g_ih), per gate block
            xw = block_norm(xw.reshape(-1, GH), GH // G)[0].view(D, -1, GH) * self.ln_gain_ih.unsqueeze(1)
        if self.bias:
            xw = xw + (self.bias_ih + self.bias_hh).unsqueeze(1)
        U_v, U_h, m, keeps = self.draw_masks(x)
        U_t = torch.cat((U_v, U_h), dim=2).transpose(1, 2)                   # (D, 2H, GH)
        sweep = self._diagonals
        if torch.compiler.is_exporting():
            sweep = self._raster
        elif torch.compiler.is_compiling() and _other_size(Hg, Wg, _first_size(x)):
            sweep = lambda *args: _diagonals_outside_graph(self, *args)  # noqa: E731
        out = sweep(xw.view(D, Hg * Wg, B, GH), U_t, m, keeps, Hg, Wg)       # (D, Hg*Wg, B, H)
        out = out.view(D, Hg, Wg, B, H).permute(0, 3, 1, 2, 4)                # (D, B, Hg, Wg, H)
        return torch.cat([out[k].flip(m) if m else out[k] for k, m in enumerate(_MIRROR[:D])],
                         dim=-1)                                              # (B, Hg, Wg, D*H)

    def _cell(self, xw, U_t, m, h_up, h_left, c_up, c_left, keep, w_up, w_left):
        """A batch of cells (D, M, .) from their predecessors' states (c_* None for the vanilla
        form): the recurrent products, the cell's equations, zoneout's blend (``keep``: 1 - d of
        h (and c), with the predecessors' weights in s-bar ``w_up``, ``w_left``; None: off);
        ``m`` recurrent dropout's mask (D, M, 2H), or None. -> (h, c), each (D, M, H)."""
        D, n, GH = xw.shape
        G, H = self.gate_count, GH // self.gate_count
        h_in = torch.cat((h_up, h_left), dim=2)                               # (D, M, 2H)
        if m is not None:              # m * h of both predecessors, one m per image and sweep
            h_in = h_in * m
        u = torch.bmm(h_in, U_t)       # U_v h~_{i-1,j} + U_h h~_{i,j-1}     (D, M, GH)
        if self.layer_norm:
            u = block_norm(u.reshape(-1, GH), H)[0].view(D, n, GH) * self.ln_gain_hh.unsqueeze(1)
        z = xw + u                                                            # (D, M, GH)
        if self.cell == "rnn":   # h_{i,j} = phi(W x + U_v h_{i-1,j} + U_h h_{i,j-1} + b)
            h, c = activate(self.nonlinearity, z), None
        else:                    # c = f_v c_{i-1,j} + f_h c_{i,j-1} + i g;  h = o tanh(c)
            z_ifv, z_g, z_o = z.split((3 * H, H, H), dim=2)
            i, f_v, f_h = torch.sigmoid(z_ifv).split(H, dim=2)
            c = f_v * c_up + f_h * c_left + i * torch.tanh(z_g)
            h = torch.sigmoid(z_o) * torch.tanh(self._cell_out(c, n))
        if keep is not None:     # s = s-bar + k (s~ - s-bar), s-bar the predecessors' mean
            h = torch.lerp(w_up * h_up + w_left * h_left, h, keep[0])
            if c is not None:
                c = torch.lerp(w_up * c_up + w_left * c_left, c, keep[1])
        return h, c

    def _diagonals(self, xw, U_t, m, keeps, Hg: int, Wg: int) -> torch.Tensor:
        """The sweep diagonal by diagonal (module docstring): xw (D, Hg*Wg, B, GH) and the
        masks -> h (D, Hg*Wg, B, H), both in raster order."""
        D, _, B, GH = xw.shape
        H = self.hidden_size
        rows, order = diagonals(Hg, Wg, xw.device)
        sizes = [(hi - lo + 1) * B for lo, hi in rows]
        # the cells in diagonal order, one (D, n_d*B, GH) block per diagonal (split's backward is
        # one concatenation, where indexing a block per diagonal would cost a zero-filled
        # full-size gradient each)
        xw = xw[:, order].reshape(D, Hg * Wg * B, GH).split(sizes, dim=1)
        if keeps is not None:  # each (D, B, Hg, Wg, H) -> per diagonal (D, n_d*B, H)
            keeps = [k.permute(0, 2, 3, 1, 4).reshape(D, Hg * Wg, B, H)[:, order]
                     .reshape(D, Hg * Wg * B, H).split(sizes, dim=1) for k in keeps]
        zero = xw[0].new_zeros(D, B, H)
        h = c = zero                       # diagonal -1: nothing
        lstm, prev_lo, outs = self.cell == "lstm", 0, []
        for d, (lo, hi) in enumerate(rows):
            # diagonal d - 1 held rows prev_lo .. (with a zero row on each side): row i is
            # cell (i, d-1-i); cell (i, d-i) reads h_{i-1,j} from row i-1, h_{i,j-1} from row i
            n = (hi - lo + 1) * B
            up = (lo - prev_lo) * B            # where row lo - 1 sits in the padded rows
            h_pad = torch.cat((zero, h, zero), dim=1)
            c_pad = torch.cat((zero, c, zero), dim=1) if lstm else None
            h_up, h_left = h_pad[:, up:up + n], h_pad[:, up + B:up + B + n]   # (D, n_d*B, H)
            c_up, c_left = (c_pad[:, up:up + n], c_pad[:, up + B:up + B + n]) if lstm else (None, None)
            w = predecessor_weights(lo, hi, d, B, xw[d]) if keeps is not None else (None, None)
            h, c = self._cell(xw[d], U_t, None if m is None else m.repeat(1, n // B, 2),
                              h_up, h_left, c_up, c_left,
                              None if keeps is None else [k[d] for k in keeps], *w)
            outs.append(h)
            prev_lo = lo
        # back from diagonal order to the grid: cell (i, j) is at position `where` of `order`
        where = torch.empty_like(order)
        where[order] = torch.arange(Hg * Wg, device=xw[0].device)
        return torch.cat(outs, dim=1).view(D, Hg * Wg, B, H)[:, where]        # (D, Hg*Wg, B, H)

    def _raster(self, xw, U_t, m, keeps, Hg, Wg) -> torch.Tensor:
        """The same sweep one cell after another in raster order (for export: one ``scan``, a
        graph for any Hg, Wg). The carry holds the last row of states
        (D, 1 + Wg, B, H), column j at 1 + j after a zero column: cell (i, j) reads h_{i-1,j}
        there before writing h_{i,j}, and h_{i,j-1} beside it. -> h (D, Hg*Wg, B, H)."""
        D, _, B, GH = xw.shape
        H, lstm = self.hidden_size, self.cell == "lstm"
        i = torch.arange(Hg, device=xw.device).view(Hg, 1).expand(Hg, Wg).reshape(-1)  # (Hg*Wg,)
        j = torch.arange(Wg, device=xw.device).view(1, Wg).expand(Hg, Wg).reshape(-1)  # raster
        has = torch.stack((i > 0, j > 0), 1).to(xw.dtype)                      # (Hg*Wg, 2)
        cells = {"xw": xw.transpose(0, 1), "j": j + 1, "w": has / has.sum(1, keepdim=True).clamp(min=1)}
        if keeps is not None:  # each (D, B, Hg, Wg, H) -> (Hg*Wg, D, B, H)
            cells["keep"] = tuple(k.permute(2, 3, 0, 1, 4).reshape(Hg * Wg, D, B, H) for k in keeps)
        columns = torch.arange(1 + Wg, device=xw.device).view(1, -1, 1, 1)    # (1, 1 + Wg, 1, 1)
        mask = None if m is None else m.repeat(1, 1, 2)                        # (D, B, 2H)

        def cell(last, t):
            col = t["j"].view(1)
            at = lambda s, k: s.index_select(1, k).squeeze(1)                  # (D, B, H)
            h_up, h_left = at(last[0], col), at(last[0], col - 1)
            c_up, c_left = (at(last[1], col), at(last[1], col - 1)) if lstm else (None, None)
            w_up, w_left = t["w"][0], t["w"][1]
            h, c = self._cell(t["xw"], U_t, mask, h_up, h_left, c_up, c_left, t.get("keep"), w_up, w_left)
            new = (h,) + ((c,) if lstm else ())
            last = tuple(torch.where(columns == t["j"], s.unsqueeze(1), l) for s, l in zip(new, last))
            return last, h.clone()

        last = tuple(xw.new_zeros(D, 1 + Wg, B, H) for _ in range(1 + lstm))
        _, hs = compiler.loop(cell, last, cells)                               # (Hg*Wg, D, B, H)
        return hs.transpose(0, 1)


def predecessor_weights(lo: int, hi: int, d: int, B: int, like: torch.Tensor):
    """The weights of s-bar (zoneout's mean of the predecessors) for the cells (i, d - i),
    i = lo..hi, of diagonal d: [i > 0] / n and [j > 0] / n, n = max(1, [i > 0] + [j > 0]),
    each (1, n_d*B, 1), cell-major as the diagonal's rows."""
    i = torch.arange(lo, hi + 1, device=like.device)
    has_up, has_left = (i > 0).to(like.dtype), (d - i > 0).to(like.dtype)
    n = (has_up + has_left).clamp(min=1)
    return tuple((w / n).repeat_interleave(B).view(1, -1, 1) for w in (has_up, has_left))


def diagonals(Hg: int, Wg: int, device=None):
    """The anti-diagonals of an Hg x Wg grid: ``rows``, the first and last row (lo, hi) of each
    diagonal d = i + j (d = 0 .. Hg + Wg - 2), and ``order``, the raster index i * Wg + j of every
    cell, diagonal by diagonal and down each diagonal.   order: (Hg*Wg,) int64"""
    rows = [(max(0, d - Wg + 1), min(d, Hg - 1)) for d in range(Hg + Wg - 1)]
    order = [i * Wg + (d - i) for d, (lo, hi) in enumerate(rows) for i in range(lo, hi + 1)]
    return rows, torch.tensor(order, dtype=torch.int64, device=device)
