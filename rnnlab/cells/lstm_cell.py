"""The long short-term memory cell: forget gate optional, peephole connections optional."""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ..linalg import mm, outer_sum
from .cell import Params, RecurrentCell, State, recurrent_input

PEEPHOLES = (None, "diagonal", "full")


class LSTMCell(RecurrentCell):
    r"""One step of the LSTM.

    With the forget gate (the default, torch.nn.LSTMCell's cell):

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + w_{ci} \odot C_{t-1}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + w_{cf} \odot C_{t-1}) \\
        \tilde C_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        C_t &= f_t \odot C_{t-1} + i_t \odot \tilde C_t \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + w_{co} \odot C_t) \\
        h_t &= o_t \odot \tanh(C_t)

    sigma is the logistic sigmoid and the circle the element-wise (Hadamard) product.

    - ``forget_gate=False`` is the original LSTM of Hochreiter and Schmidhuber: no f_t, the
      constant error carousel ``C_t = C_{t-1} + i_t * C~_t``; gate blocks i, g, o.
    - ``peephole="diagonal"``: the gates read the cell state through vectors ``weight_ci``,
      ``weight_cf``, ``weight_co`` (H,), as the w terms above; ``peephole="full"``: through matrices
      (H, H), the notes' ``W_ic C``, ``W_fc C``, ``W_oc C_o``. Input and forget gates read C_{t-1},
      the output gate reads C_t. Without peepholes the w terms are absent.
    - ``forget_bias`` is the forget gate's bias at initialisation under ``init="rnnlab"``
      (shared out as ``bias_ih`` = forget_bias, ``bias_hh`` = 0).

    Shapes: x_t (B, I); state (h, c), each (B, H). Parameters, gate order i, f, g, o as torch.nn
    (i, g, o without the forget gate; G = 4 or 3): ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
    ``bias_ih``, ``bias_hh`` (G*H,); peepholes as above.
    """

    state_names = ("h", "c")
    writes_out = True
    grad_in_xw = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 forget_gate: bool = True, peephole: Optional[str] = None, forget_bias: float = 1.0,
                 init: str = "rnnlab", device=None, dtype=None):
        if peephole not in PEEPHOLES:
            raise ValueError(f"peephole must be None, 'diagonal' or 'full', got {peephole!r}")
        self.forget_gate = bool(forget_gate)
        self.peephole = peephole
        self.forget_bias = float(forget_bias)
        self.gate_count = 4 if self.forget_gate else 3
        self.native_mode = "lstm" if (self.forget_gate and peephole is None) else None
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype)

    def parameter_shapes(self):
        shapes = super().parameter_shapes()
        H = self.hidden_size
        peep_shape = (H,) if self.peephole == "diagonal" else (H, H)
        if self.peephole:
            for gate in (("ci", "cf", "co") if self.forget_gate else ("ci", "co")):
                shapes[f"weight_{gate}"] = peep_shape
        return shapes

    def init_extra(self, name, param):
        if name.startswith("weight_c") and self.init == "rnnlab":
            if param.dim() == 1:
                param.zero_()  # diagonal peepholes start closed
            else:
                torch.nn.init.orthogonal_(param).mul_(0.1)  # small, well-conditioned
            return True
        return False

    def init_bias(self, name, bias):
        bias.zero_()
        if self.forget_gate and name == "bias_ih":
            H = self.hidden_size
            bias[H:2 * H] = self.forget_bias

    def extra_repr(self):
        s = super().extra_repr()
        if not self.forget_gate:
            s += ", forget_gate=False"
        if self.peephole:
            s += f", peephole={self.peephole!r}"
        return s

    # ------------------------------------------------------------------ peephole helpers
    def _peep(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The peephole term: w * c (diagonal) or c W^T (full).   (B, H)"""
        return c * w if w.dim() == 1 else mm(c, w.t())

    def _peep_backward(self, w: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
        """dL/dc of the peephole term: dz * w (diagonal) or dz W (full).   (B, H)"""
        return dz * w if w.dim() == 1 else mm(dz, w)

    @staticmethod
    def _peep_weight_grad(w: torch.Tensor, dz: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """dL/dw summed over all steps: sum dz * c (diagonal) or dz^T c (full), dz, c: (T, B, H)."""
        if w.dim() == 1:
            return (dz * c).sum((0, 1))
        return outer_sum(dz, c)

    # ------------------------------------------------------------------ forward
    def step(self, p: Params, xw: torch.Tensor, state: State, out: Optional[State] = None):
        """Returns ((h_t, c_t), saved = (gates,)); gates (B, G*H) after their nonlinearity.

        With ``out`` (the bptt engine, no autograd) the pre-activations are built in ``xw``'s own
        storage, the nonlinearities applied in place, and h_t, C_t written into ``out``.
        """
        h, c = state
        H = self.hidden_size
        fast = out is not None
        h_out, c_out = out if fast else (None, None)
        z = self.recurrent_product(p, xw, h, inplace=fast)  # (B, G*H) pre-activations
        if self.peephole:
            z[:, :H] += self._peep(p["weight_ci"], c)
            if self.forget_gate:
                z[:, H:2 * H] += self._peep(p["weight_cf"], c)
        nf = 2 * H if self.forget_gate else H  # sigmoid gates before g: i, f  or  i
        if fast:
            sig = z[:, :nf].sigmoid_()
            g = z[:, nf:nf + H].tanh_()
        else:
            sig = torch.sigmoid(z[:, :nf])
            g = torch.tanh(z[:, nf:nf + H])
        i = sig[:, :H]
        if self.forget_gate:  # C_t = f C_{t-1} + i C~_t
            c_new = torch.addcmul(sig[:, H:] * c, i, g, out=c_out)
        else:                 # C_t = C_{t-1} + i C~_t   (the constant error carousel)
            c_new = torch.addcmul(c, i, g, out=c_out)
        z_o = z[:, -H:]
        if self.peephole:
            if fast:
                z_o += self._peep(p["weight_co"], c_new)
            else:
                z_o = z_o + self._peep(p["weight_co"], c_new)
        o = z_o.sigmoid_() if fast else torch.sigmoid(z_o)
        tc = self.output_squash(p, c_new)
        h_new = torch.mul(o, tc, out=h_out)  # h_t = o * tanh(C_t)
        gates = z if fast else torch.cat((sig, g, o), dim=1)  # (B, G*H)
        return (h_new, c_new), (gates,)

    def output_squash(self, p: Params, c: torch.Tensor) -> torch.Tensor:
        """tanh(C_t), what h_t = o * tanh(C_t) reads (layer normalisation changes it)."""
        return torch.tanh(c)

    def output_squash_grad(self, p: Params, c: torch.Tensor, tc: torch.Tensor, d_tc: torch.Tensor,
                           dc: torch.Tensor) -> torch.Tensor:
        """dC_t + d_tc * (1 - tanh^2 C_t): :meth:`output_squash`'s derivative added to ``dc``."""
        return torch.addcmul(dc, d_tc, 1 - tc * tc)

    @property
    def block_names(self):
        return ("i", "f", "g", "o") if self.forget_gate else ("i", "g", "o")

    def gate_activations(self, saved):
        """i_t, f_t (with the forget gate) and o_t, each (B, H), from the saved gates."""
        (gates,) = saved
        H = self.hidden_size
        out = {"input": gates[:, :H]}
        if self.forget_gate:
            out["forget"] = gates[:, H:2 * H]
        out["output"] = gates[:, -H:]
        return out

    # ------------------------------------------------------------------ backward
    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The notes' LSTM_cell.backward, term by term; dz_* are written into ``d_xw``.

        ``d_xw`` may be the very storage that holds the saved gates (``grad_in_xw``): every gate
        is read before its slot is overwritten.
        """
        (gates,) = saved
        c = state[1]
        dh, dc_in = d_new_state
        H = self.hidden_size
        nf = 2 * H if self.forget_gate else H
        i, g, o = gates[:, :H], gates[:, nf:nf + H], gates[:, -H:]
        tc = self.output_squash(p, new_state[1])  # recomputed: cheaper than keeping (T, B, H) more
        # h_t = o * tanh(C_t):  do = dh * tanh(C_t);  dC_t += dh * o * (1 - tanh^2 C_t)
        do = dh * tc
        dc = self.output_squash_grad(p, new_state[1], tc, dh * o, dc_in)
        d_sig_o = o * (1 - o)
        if self.peephole:  # z_o = ... + w_co * C_t:  dC_t += dz_o w_co
            dc = dc + self._peep_backward(p["weight_co"], do * d_sig_o)
        # C_t = f C_{t-1} + i C~_t:  di = dC C~,  dC~ = dC i,  df = dC C_{t-1},  dC_{t-1} = dC f
        di, dg = dc * g, dc * i
        d_sig_i, d_tanh_g = i * (1 - i), 1 - g * g
        if self.forget_gate:
            f = gates[:, H:2 * H]
            df, dc_prev, d_sig_f = dc * c, dc * f, f * (1 - f)
            torch.mul(df, d_sig_f, out=d_xw[:, H:2 * H])   # dz_f = df * f (1 - f)
        else:
            dc_prev = dc  # the constant error carousel passes dC through unchanged
        torch.mul(di, d_sig_i, out=d_xw[:, :H])            # dz_i = di * i (1 - i)
        torch.mul(dg, d_tanh_g, out=d_xw[:, nf:nf + H])    # dz_g = dC~ * (1 - C~^2)
        torch.mul(do, d_sig_o, out=d_xw[:, -H:])           # dz_o = do * o (1 - o)
        if self.peephole:  # z_i, z_f read C_{t-1}
            dc_prev = dc_prev + self._peep_backward(p["weight_ci"], d_xw[:, :H])
            if self.forget_gate:
                dc_prev = dc_prev + self._peep_backward(p["weight_cf"], d_xw[:, H:2 * H])
        # z = ... + W_hh h_{t-1}:  dh_{t-1} = dz W_hh
        dh_prev = self.recurrent_product_grad(p, None, d_xw)  # (m *) dz W_hh
        return (dh_prev, dc_prev), ()

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """dW_hh = sum_t dz_t^T h_{t-1}, one (G*H, T*B) x (T*B, H) product; peepholes likewise."""
        h_prev, c_prev = prev
        T, B, GH = d_xw.shape
        H = self.hidden_size
        grads: Dict[str, torch.Tensor] = {
            "weight_hh": outer_sum(d_xw, recurrent_input(p, h_prev))}
        grads.update(self.bias_grads(p, d_xw))
        if self.peephole:
            grads["weight_ci"] = self._peep_weight_grad(p["weight_ci"], d_xw[..., :H], c_prev)
            if self.forget_gate:
                grads["weight_cf"] = self._peep_weight_grad(p["weight_cf"], d_xw[..., H:2 * H], c_prev)
            grads["weight_co"] = self._peep_weight_grad(p["weight_co"], d_xw[..., -H:], new[1])
        return grads
