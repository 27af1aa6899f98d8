r"""Skip connections through time: every gate also reads the state d steps back.

The notes' coarse time scale by "direct connections from variables in the distant past to
variables in the present": for any cell, the pre-activations get one more product,

.. math::
    z_t = W_{ih} x_t + b + W_{hh} h_{t-1} + W_{skip} h_{t-d}

so that a gradient reaches h_{t-d} from h_t through one Jacobian instead of a product of d.
``W_skip`` (G*H, H) has one H x H block per gate block, in the order of z's blocks (for the GRU in
torch's form the candidate block adds to the input part, outside the reset gate).

:class:`SkipConnections` wraps a cell: its states gain a delay line, one more state tensor,

    D_{t-1} = [h_{t-1}, h_{t-2}, ..., h_{t-d}]       (B, d*H), newest first
    D_t     = [h_t, h_{t-1}, ..., h_{t-d+1}]         shift in h_t, drop h_{t-d}

and its products gain W_skip h_{t-d} (the last slot of D_{t-1}). Its derivative beside the
cell's own: dL/dh_t += dL/dD_t[0], and dL/dD_{t-1}[j] = dL/dD_t[j + 1] (the shift; the engine
adds the product's dz W_skip to the last slot). Being a cell like any other, it runs on every
engine that runs Python cells, with lengths, directions, stacking, zoneout and truncated BPTT
(the delay line is carried through padding and across chunks like the rest of the state).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cells.cell import Product, RecurrentCell

#: the name of the delay line among a skip-connected cell's states
DELAY = "delay"


@dataclass(frozen=True)
class SkipConnections:
    """``cell`` with skip connections d = ``steps`` steps back (the module docstring)."""
    cell: RecurrentCell
    steps: int

    def __getattr__(self, name):  # sizes, options, layer_norm, ...: the wrapped cell's
        return getattr(self.cell, name)

    @property
    def state_names(self):
        return self.cell.state_names + (DELAY,)

    @property
    def state_sizes(self):
        return self.cell.state_sizes + (self.steps * self.cell.output_size,)

    native_mode = None  # no torch kernel has the skip term

    def extra_repr(self) -> str:
        return f"{type(self.cell).__name__}({self.cell.extra_repr()}), steps={self.steps}"

    @property
    def core_reads(self):
        reads = self.cell.core_reads  # the cell's, and the delay line (shifted along)
        return None if reads is None else tuple(reads) + (len(self.cell.state_sizes),)

    @property
    def products(self):
        H, n = self.cell.output_size, len(self.cell.state_sizes)
        return self.cell.products + (Product("weight_skip", None, source=n, dropout=False, norm=False,
                                             part=((self.steps - 1) * H, self.steps * H)),)

    def initial_state(self, batch, like):
        return tuple(like.new_zeros(batch, s) for s in self.state_sizes)

    def core(self, p, z, u, state, mm):
        new, saved = self.cell.core(p, z, u, state[:-1], mm)
        H = self.cell.output_size
        delay = torch.cat((new[self.cell.output_state], state[-1][:, :-H]), dim=1)
        return new + (delay,), saved

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        H, k = self.cell.output_size, self.cell.output_state
        d_delay = d_new[-1]
        d_cell = list(d_new[:-1])
        d_cell[k] = d_cell[k] + d_delay[:, :H]
        dz, du, d_state, d_p = self.cell.core_backward(p, saved, state[:-1], new_state[:-1],
                                                       tuple(d_cell), mm_grad)
        shifted = torch.cat((d_delay[:, H:], torch.zeros_like(d_delay[:, :H])), dim=1)
        return dz, du, tuple(d_state) + (shifted,), d_p


def output_gradient(cell, state_grads):
    """The total dL/dh_t (T, B, H) of the cell's output from the ``bptt`` engine's recorded
    dL/dstate_t (:func:`rnnlab.engines.bptt.record_state_gradients`): the output state's own, plus,
    under skip connections, the delay line's first slot (D_t[0] is h_t, and the gradient the skip
    connection carries back reaches h_t there)."""
    own = state_grads[cell.output_state]
    if not isinstance(cell, SkipConnections):
        return own
    return own + state_grads[-1][..., :cell.cell.output_size]
