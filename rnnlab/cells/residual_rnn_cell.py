"""The residual (skip-connection) RNN: the notes' road from the vanilla RNN to the LSTM."""
from __future__ import annotations

import torch

from ..activations import activate, activate_backward, check_activation
from .cell import RecurrentCell


class ResidualRNNCell(RecurrentCell):
    r"""One step of the residual RNN, the state updated by addition rather than overwritten.

    Plain (``gated=False``, the default):

    .. math::
        r_t &= \phi(W_{ir} x_t + b_{ir} + W_{hr} s_{t-1} + b_{hr}) \\
        s_t &= s_{t-1} + r_t

    Gated (``gated=True``), an input gate scales what is added:

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} s_{t-1} + b_{hi}) \\
        r_t &= \phi(W_{ir} x_t + b_{ir} + W_{hr} s_{t-1} + b_{hr}) \\
        s_t &= s_{t-1} + i_t \odot r_t

    s_t is the state and the step's output, r_t the residual (the "new stuff"), i_t the input
    gate, phi the nonlinearity (tanh, relu or sigmoid; ``nonlinearity``), sigma the logistic
    sigmoid and the circle the element-wise (Hadamard) product. The identity path s_{t-1} -> s_t
    carries the gradient back unchanged. Adding a forget gate f_t on that path and an output
    gate reading s_t gives the LSTM (:class:`rnnlab.LSTMCell`), the notes' next steps. The notes'
    W y^{t-1} (feedback of the previous output) belongs to the model on top.

    Shapes: x_t (B, I), s_t (B, H). Parameters, gate order i, r (G = 2) or r alone (G = 1):
    ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih``, ``bias_hh`` (G*H,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, gated: bool = False,
                 nonlinearity: str = "tanh", init: str = "rnnlab", device=None, dtype=None,
                 layer_norm: bool = False):
        if not isinstance(gated, bool):
            raise ValueError(f"gated must be True or False, got {gated!r}")
        self.gated = gated
        self.gate_count = 2 if gated else 1
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)

    def extra_repr(self):
        s = super().extra_repr() + (", gated=True" if self.gated else "")
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    @property
    def block_names(self):
        return ("i", "r") if self.gated else ("r",)

    def gate_activations(self, saved):
        """i_t (B, H) of the gated form; the plain form has no gate."""
        return {"input": saved[0]} if self.gated else {}

    def core(self, p, z, u, state, mm):
        """r_t = phi(z_r);  s_t = s_{t-1} + [i_t *] r_t.  Saves r_t, or (i_t, r_t) gated."""
        (s,) = state
        if not self.gated:
            r = activate(self.nonlinearity, z)
            return (s + r,), (r,)
        H = self.hidden_size
        i, r = torch.sigmoid(z[:, :H]), activate(self.nonlinearity, z[:, H:])
        return (torch.addcmul(s, i, r),), (i, r)

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        """plain: dz_r = ds phi'(z_r);  gated: dz_i = ds r i (1 - i), dz_r = ds i phi'(z_r);
        both: ds_{t-1} = ds (the identity path)."""
        (ds,) = d_new
        if not self.gated:
            return activate_backward(self.nonlinearity, saved[0], ds), (), (ds,), {}
        i, r = saved
        dz = torch.cat((ds * r * i * (1 - i), activate_backward(self.nonlinearity, r, ds * i)), dim=1)
        return dz, (), (ds,), {}
