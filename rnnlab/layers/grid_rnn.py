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
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..activations import activate, check_activation
from ..cells.cell import check_size
from ..init import INIT_SCHEMES, glorot_blocks_, orthogonal_blocks_

GRID_CELLS = ("rnn", "lstm")
#: the sweeps, in the order of their outputs, and the axes (of (B, H, W, C)) each mirrors
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
_MIRROR = ((), (2,), (1,), (1, 2))


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
            zero but the forget gates'; ``"torch"``: U(-1/sqrt(H_out), 1/sqrt(H_out)) throughout.

    Forward: ``forward(x)``, x (B, H, W, C) (or (B, C, H, W)) -> (B, H, W, D*H_out), the
    hidden state h_{i,j} of each sweep at every cell.

    Parameters, one slice per direction (G = 1 vanilla, 5 LSTM): ``weight_ih`` (D, G*H_out, C),
    ``weight_hh_v`` (U_v) and ``weight_hh_h`` (U_h) (D, G*H_out, H_out), ``bias_ih``, ``bias_hh``
    (D, G*H_out).
    """

    def __init__(self, input_size: int, hidden_size: int, cell: str = "lstm", directions: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, *, channels_first: bool = False,
                 forget_bias: float = 0.0, init: str = "rnnlab", device=None, dtype=None):
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
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        return self.directions * self.hidden_size

    def reset_parameters(self) -> None:
        """Initialise every parameter again by ``init`` (see the class docstring)."""
        H = self.hidden_size
        with torch.no_grad():
            if self.init == "torch":
                for p in self.parameters():
                    p.uniform_(-1 / math.sqrt(H), 1 / math.sqrt(H))
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
        return s

    # ------------------------------------------------------------------ forward
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) (or (B, C, H, W) with ``channels_first``) -> (B, H, W, D*H_out)."""
        x = self._check_input(x)
        B, Hg, Wg, C = x.shape
        D, H = self.directions, self.hidden_size
        # each sweep runs from the top-left corner of its mirrored grid
        xs = torch.stack([x.flip(m) if m else x for m in _MIRROR[:D]])       # (D, B, Hg, Wg, C)
        xs = xs.permute(0, 2, 3, 1, 4).reshape(D, Hg * Wg * B, C)             # (D, Hg*Wg*B, C)
        xw = torch.matmul(xs, self.weight_ih.transpose(1, 2))                 # (D, Hg*Wg*B, GH)
        if self.bias:
            xw = xw + (self.bias_ih + self.bias_hh).unsqueeze(1)
        GH = xw.shape[-1]
        rows, order = diagonals(Hg, Wg, x.device)
        # the cells in diagonal order, one (D, n_d*B, GH) block per diagonal (split's backward is
        # one concatenation, where indexing a block per diagonal would cost a zero-filled
        # full-size gradient each)
        xw = xw.view(D, Hg * Wg, B, GH)[:, order]                             # (D, Hg*Wg, B, GH)
        xw = xw.reshape(D, Hg * Wg * B, GH).split([(hi - lo + 1) * B for lo, hi in rows], dim=1)
        U_t = torch.cat((self.weight_hh_v, self.weight_hh_h), dim=2).transpose(1, 2)  # (D, 2H, GH)
        zero = x.new_zeros(D, B, H)
        h = c = zero                       # diagonal -1: nothing
        prev_lo = 0
        outs = []
        for d, (lo, hi) in enumerate(rows):
            # diagonal d - 1 held rows prev_lo .. (with a zero row on each side): row i is
            # cell (i, d-1-i); cell (i, d-i) reads h_{i-1,j} from row i-1, h_{i,j-1} from row i
            n = (hi - lo + 1) * B
            up = (lo - prev_lo) * B            # where row lo - 1 sits in the padded rows
            h_pad = torch.cat((zero, h, zero), dim=1)
            h_up, h_left = h_pad[:, up:up + n], h_pad[:, up + B:up + B + n]   # (D, n_d*B, H)
            z = torch.baddbmm(xw[d], torch.cat((h_up, h_left), dim=2), U_t)  # (D, n_d*B, GH)
            if self.cell == "rnn":   # h_{i,j} = phi(W x + U_v h_{i-1,j} + U_h h_{i,j-1} + b)
                h = activate(self.nonlinearity, z)
            else:                    # c = f_v c_{i-1,j} + f_h c_{i,j-1} + i g;  h = o tanh(c)
                c_pad = torch.cat((zero, c, zero), dim=1)
                z_ifv, z_g, z_o = z.split((3 * H, H, H), dim=2)
                i, f_v, f_h = torch.sigmoid(z_ifv).split(H, dim=2)
                c = f_v * c_pad[:, up:up + n] + f_h * c_pad[:, up + B:up + B + n] + i * torch.tanh(z_g)
                h = torch.sigmoid(z_o) * torch.tanh(c)
            outs.append(h)
            prev_lo = lo
        # back from diagonal order to the grid: cell (i, j) is at position `where` of `order`
        where = torch.empty_like(order)
        where[order] = torch.arange(Hg * Wg, device=x.device)
        out = torch.cat(outs, dim=1).view(D, Hg * Wg, B, H)[:, where]         # (D, Hg*Wg, B, H)
        out = out.view(D, Hg, Wg, B, H).permute(0, 3, 1, 2, 4)                # (D, B, Hg, Wg, H)
        return torch.cat([out[k].flip(m) if m else out[k] for k, m in enumerate(_MIRROR[:D])],
                         dim=-1)                                              # (B, Hg, Wg, D*H)


def diagonals(Hg: int, Wg: int, device=None):
    """The anti-diagonals of an Hg x Wg grid: ``rows``, the first and last row (lo, hi) of each
    diagonal d = i + j (d = 0 .. Hg + Wg - 2), and ``order``, the raster index i * Wg + j of every
    cell, diagonal by diagonal and down each diagonal.   order: (Hg*Wg,) int64"""
    rows = [(max(0, d - Wg + 1), min(d, Hg - 1)) for d in range(Hg + Wg - 1)]
    order = [i * Wg + (d - i) for d, (lo, hi) in enumerate(rows) for i in range(lo, hi + 1)]
    return rows, torch.tensor(order, dtype=torch.int64, device=device)
