"""The gated recurrent unit, in torch's form (reset gate after the matrix product) or the notes'."""
from __future__ import annotations

import torch

from .cell import Product, RecurrentCell


class GRUCell(RecurrentCell):
    r"""One step of the GRU.

    With ``reset_after=True`` (the default; torch.nn.GRUCell's and cuDNN's form):

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    With ``reset_after=False`` (the lecture notes' form) the reset gate acts on h_{t-1} before the
    matrix product:

    .. math::
        n_t = \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})

    r_t is the reset gate, z_t the update gate, n_t the candidate state, h_t the hidden state;
    sigma is the logistic sigmoid and the circle the element-wise (Hadamard) product. Only the
    ``reset_after=True`` form has a torch kernel (``native_mode = "gru"``).

    Layer normalisation (``layer_norm=True``) normalises each block of W_ih x_t and of the
    recurrent products as read: W_h{r,z} h_{t-1}, and W_hn h_{t-1} (torch's form, inside the reset
    gate, b_hn after it) or W_hn (r_t * h_{t-1}) (the notes' form).

    Shapes: x_t (B, I), h_t (B, H). Parameters, gate order r, z, n as torch.nn (G = 3):
    ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,).
    """

    gate_count = 3
    block_names = ("r", "z", "n")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 reset_after: bool = True, init: str = "rnnlab", device=None, dtype=None,
                 layer_norm: bool = False):
        self.reset_after = bool(reset_after)
        self.native_mode = "gru" if self.reset_after and not layer_norm else None
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.reset_after else s + ", reset_after=False"

    @property
    def products(self):
        """W_h{r,z} h_{t-1} into z's r, z blocks; W_hn h_{t-1} + b_hn apart (torch's form) or
        W_hn (r_t h_{t-1}) inner (the notes' form, whose b_hn adds into z)."""
        H, b = self.hidden_size, "bias_hh" if self.bias else None
        rz = Product(bias=b, rows=(0, 2 * H), cols=(0, 2 * H))
        if self.reset_after:
            return rz, Product(bias=b, rows=(2 * H, 3 * H), adds=False)
        return rz, Product(bias=b, rows=(2 * H, 3 * H), inner=True)

    def gate_activations(self, saved):
        """r_t and z_t, each (B, H), from the saved gates."""
        H = self.hidden_size
        return {"reset": saved[0][:, :H], "update": saved[0][:, H:2 * H]}

    def core(self, p, z, u, state, mm):
        """r, z = sigma(z_r, z_z); n = tanh(z_n + r hn) (torch's form, hn = W_hn h + b_hn) or
        tanh(z_n + W_hn (r h)) (the notes'); h_t = (1 - z) n + z h_{t-1}.
        Saves (gates (B, 3H): r, z, n; m (B, H): hn, or r h_{t-1})."""
        (h,) = state
        H = self.hidden_size
        rz = torch.sigmoid(z[:, :2 * H])
        r = rz[:, :H]
        if self.reset_after:
            m = u[0]
            n = torch.tanh(torch.addcmul(z[:, 2 * H:], r, m))
        else:
            m = r * h
            n = torch.tanh(z[:, 2 * H:] + mm(0, m))
        return (torch.lerp(n, h, rz[:, H:]),), (torch.cat((rz, n), dim=1), m)

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        """With dh = dL/dh_t:  dz_z = dh (h_{t-1} - n) z (1 - z);  da_n = dh (1 - z) (1 - n^2);
        torch's form: d(hn) = da_n r, dz_r = da_n hn r (1 - r);
        the notes' form: d(r h) = da_n W_hn, dz_r = d(r h) h r (1 - r), dh_{t-1} += d(r h) r;
        both: dh_{t-1} += dh z."""
        (h,), (dh,) = state, d_new
        gates, m = saved
        H = self.hidden_size
        r, zg, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        dz_z = dh * (h - n) * zg * (1 - zg)
        da_n = dh * (1 - zg) * (1 - n * n)
        dh_prev = dh * zg
        if self.reset_after:
            dr, du = da_n * m, (da_n * r,)
        else:
            d_rh = mm_grad(0, da_n)
            dr, du = d_rh * h, ()
            dh_prev = dh_prev + d_rh * r
        return torch.cat((dr * r * (1 - r), dz_z, da_n), dim=1), du, (dh_prev,), {}
