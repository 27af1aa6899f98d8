"""The residual (skip-connection) RNN: the notes' road from the vanilla RNN to the LSTM."""
from __future__ import annotations

import torch

from ..activations import activate, activate_backward, check_activation
from ..linalg import outer_sum
from .cell import RecurrentCell, recurrent_input


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

    writes_out = True
    grad_in_xw = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, gated: bool = False,
                 nonlinearity: str = "tanh", init: str = "rnnlab", device=None, dtype=None):
        if not isinstance(gated, bool):
            raise ValueError(f"gated must be True or False, got {gated!r}")
        self.gated = gated
        self.gate_count = 2 if gated else 1
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype)

    def extra_repr(self):
        s = super().extra_repr() + (", gated=True" if self.gated else "")
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    # ------------------------------------------------------------------ forward
    def step(self, p, xw, state, out=None):
        """z = xw_t + W_hh s_{t-1};  r_t = phi(z_r);  s_t = s_{t-1} + [i_t *] r_t.
        Saves r_t (plain) or (i_t, r_t) (gated). With ``out`` (bptt, no autograd) z and the gates
        are built in ``xw``'s storage and s_t written into ``out``."""
        (s,) = state
        z = self.recurrent_product(p, xw, s, inplace=out is not None)  # (B, G*H)
        gates = None if out is None else z  # where the activations go: new tensors, or over z
        s_new = None if out is None else out[0]
        if not self.gated:
            r = activate(self.nonlinearity, z, out=gates)
            return (torch.add(s, r, out=s_new),), (r,)
        H = self.hidden_size
        i = torch.sigmoid(z[:, :H], out=None if gates is None else gates[:, :H])
        r = activate(self.nonlinearity, z[:, H:], out=None if gates is None else gates[:, H:])
        return (torch.addcmul(s, i, r, out=s_new),), (i, r)

    @property
    def block_names(self):
        return ("i", "r") if self.gated else ("r",)

    def gate_activations(self, saved):
        """i_t (B, H) of the gated form; the plain form has no gate."""
        return {"input": saved[0]} if self.gated else {}

    # ------------------------------------------------------------------ backward
    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """With ds = dL/ds_t:

        plain:  dz_r = ds phi'(z_r);
        gated:  dz_i = ds r_t i_t (1 - i_t),   dz_r = ds i_t phi'(z_r);
        both:   ds_{t-1} = ds (the identity path) + dz W_hh.
        """
        (ds,) = d_new_state
        if not self.gated:
            (r,) = saved
            activate_backward(self.nonlinearity, r, ds, out=d_xw)
        else:  # d_xw may be the storage of (i, r): read both before writing
            i, r = saved
            H = self.hidden_size
            dz_r = activate_backward(self.nonlinearity, r, ds * i)
            torch.mul(ds * r, i * (1 - i), out=d_xw[:, :H])
            d_xw[:, H:].copy_(dz_r)
        return (self.recurrent_product_grad(p, ds, d_xw),), ()

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """dW_hh = sum_t dz_t^T s_{t-1}: one (G*H, T*B) x (T*B, H) product."""
        grads = {"weight_hh": outer_sum(d_xw, recurrent_input(p, prev[0]))}
        grads.update(self.bias_grads(p, d_xw))
        return grads
