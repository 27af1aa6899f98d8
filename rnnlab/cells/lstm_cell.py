"""The long short-term memory cell: forget gate optional, peephole connections optional."""
from __future__ import annotations

from typing import Optional

import torch

from .cell import Product, RecurrentCell, block_norm, block_norm_backward

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
    - ``peephole_candidate=True`` (with a peephole): the candidate reads C_{t-1} too, the notes'
      last LSTM form (the CMU pseudocode's "peephole connection into the tanh, which is not
      standard"), through ``weight_cc`` shaped as the other peepholes:
      :math:`\tilde C_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg} + w_{cc} \odot C_{t-1})`.
    - ``layer_norm=True``: the engine normalises the products (:mod:`rnnlab.cells.cell`), and the
      cell state is normalised on its way out, h_t = o_t * tanh(LN(C_t; g_c) + b_c), with
      ``ln_gain_c``, ``ln_bias_c`` (H,); C_t itself stays as it is.
    - ``forget_bias`` is the forget gate's bias at initialisation under ``init="rnnlab"``
      (shared out as ``bias_ih`` = forget_bias, ``bias_hh`` = 0).

    Shapes: x_t (B, I); state (h, c), each (B, H). Parameters, gate order i, f, g, o as torch.nn
    (i, g, o without the forget gate; G = 4 or 3): ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
    ``bias_ih``, ``bias_hh`` (G*H,); peepholes as above.
    """

    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 forget_gate: bool = True, peephole: Optional[str] = None, forget_bias: float = 1.0,
                 peephole_candidate: bool = False, init: str = "rnnlab", device=None, dtype=None,
                 layer_norm: bool = False):
        if peephole not in PEEPHOLES:
            raise ValueError(f"peephole must be None, 'diagonal' or 'full', got {peephole!r}")
        if not isinstance(peephole_candidate, bool) or (peephole_candidate and not peephole):
            raise ValueError(f"peephole_candidate=True needs peephole='diagonal' or 'full' (the "
                             f"peepholes' shape), got peephole_candidate={peephole_candidate!r}, "
                             f"peephole={peephole!r}")
        self.forget_gate = bool(forget_gate)
        self.peephole = peephole
        self.peephole_candidate = peephole_candidate
        self.forget_bias = float(forget_bias)
        self.gate_count = 4 if self.forget_gate else 3
        self.native_mode = "lstm" if (self.forget_gate and peephole is None and not layer_norm) else None
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)

    @property
    def peepholes(self):
        """(peephole weight, the z block it adds into (start, stop)): w_ci -> i, w_cf -> f,
        w_cc -> g read C_{t-1}; w_co -> o reads C_t."""
        H = self.hidden_size
        nf = 2 * H if self.forget_gate else H
        out = [("weight_ci", (0, H))]
        if self.forget_gate:
            out.append(("weight_cf", (H, 2 * H)))
        if self.peephole_candidate:
            out.append(("weight_cc", (nf, nf + H)))
        return tuple(out) + (("weight_co", (nf + H, nf + 2 * H)),) if self.peephole else ()

    @property
    def products(self):
        """W_hh h_{t-1}; full peepholes: W_c C_{t-1} into i, f (and g), and W_co C_t (inner)."""
        prods = self.hidden_products()
        if self.peephole == "full":
            for name, cols in self.peepholes:
                prods += (Product(name, None, source=1, cols=cols, dropout=False, norm=False,
                                  inner=name == "weight_co"),)
        return prods

    def own_parameter_shapes(self):
        H = self.hidden_size
        shape = (H,) if self.peephole == "diagonal" else (H, H)
        shapes = {name: shape for name, _ in self.peepholes}
        if self.layer_norm:
            shapes.update(ln_gain_c=(H,), ln_bias_c=(H,))
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
        if self.peephole_candidate:
            s += ", peephole_candidate=True"
        return s

    @property
    def block_names(self):
        return ("i", "f", "g", "o") if self.forget_gate else ("i", "g", "o")

    def gate_activations(self, saved):
        """i_t, f_t (with the forget gate) and o_t, each (B, H), from the saved gates."""
        gates = saved[0]
        H = self.hidden_size
        out = {"input": gates[:, :H]}
        if self.forget_gate:
            out["forget"] = gates[:, H:2 * H]
        out["output"] = gates[:, -H:]
        return out

    # ------------------------------------------------------------------ forward and backward
    def core(self, p, z, u, state, mm):
        """i, f = sigma(z_i, z_f), g = tanh(z_g) (diagonal peepholes: + w * C_{t-1});
        C_t = f C_{t-1} + i g (no forget gate: C_{t-1} + i g); o = sigma(z_o + w_co C_t);
        h_t = o tanh(C_t) (layer norm: tanh(LN(C_t) g_c + b_c)). Saves the gates (B, G*H)."""
        h, c = state
        H = self.hidden_size
        if self.peephole == "diagonal":  # the point-wise peepholes into i, f (and g) read C_{t-1}
            parts = list(z.split(H, dim=1))
            for name, (a, _) in self.peepholes[:-1]:
                parts[a // H] = parts[a // H] + p[name] * c
            z = torch.cat(parts, dim=1)
        nf = 2 * H if self.forget_gate else H
        sig, g = torch.sigmoid(z[:, :nf]), torch.tanh(z[:, nf:nf + H])
        i = sig[:, :H]
        c_new = torch.addcmul(sig[:, H:] * c if self.forget_gate else c, i, g)
        z_o = z[:, -H:]
        if self.peephole == "diagonal":
            z_o = z_o + p["weight_co"] * c_new
        elif self.peephole == "full":
            z_o = z_o + mm(0, c_new)
        o = torch.sigmoid(z_o)
        h_new = o * torch.tanh(self._squash_input(p, c_new)[0])
        return (h_new, c_new), (torch.cat((sig, g, o), dim=1),)

    def _squash_input(self, p, c):
        """What tanh reads in h_t = o tanh(.): C_t, or LN(C_t; g_c) + b_c (and LN's y, 1/s)."""
        if not self.layer_norm:
            return c, None, None
        y, inv = block_norm(c, self.hidden_size)
        return torch.addcmul(p["ln_bias_c"], y, p["ln_gain_c"]), y, inv

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        """The notes' LSTM_cell.backward, term by term:

            do = dh tanh(C_t);  dz_o = do o (1 - o)
            dC_t = dC + dh o (1 - tanh^2) (through LN when normalised) + dz_o w_co
            dz_i = dC_t g i (1 - i);  dz_f = dC_t C_{t-1} f (1 - f);  dz_g = dC_t i (1 - g^2)
            dC_{t-1} = dC_t f (C_t without the forget gate) + the peepholes' dz w
        """
        (gates,), c, c_new = saved, state[1], new_state[1]
        dh, dc = d_new
        H = self.hidden_size
        nf = 2 * H if self.forget_gate else H
        i, g, o = gates[:, :H], gates[:, nf:nf + H], gates[:, -H:]
        s, y, inv = self._squash_input(p, c_new)
        tc = torch.tanh(s)
        dz_o = dh * tc * o * (1 - o)
        d_s = dh * o * (1 - tc * tc)  # dL/d(what tanh reads)
        d_p = {}
        if self.layer_norm:
            d_p["ln_gain_c"], d_p["ln_bias_c"] = (d_s * y).sum(0), d_s.sum(0)
            d_s = block_norm_backward(d_s * p["ln_gain_c"], y, inv, H)
        dct = d_s if dc is None else dc + d_s
        if self.peephole == "diagonal":
            dct = dct + dz_o * p["weight_co"]
            d_p["weight_co"] = (dz_o * c_new).sum(0)
        elif self.peephole == "full":
            dct = dct + mm_grad(0, dz_o)
        dz_i, dz_g = dct * g * i * (1 - i), dct * i * (1 - g * g)
        if self.forget_gate:
            f = gates[:, H:2 * H]
            dz = torch.cat((dz_i, dct * c * f * (1 - f), dz_g, dz_o), dim=1)
            dc_prev = dct * f
        else:
            dz = torch.cat((dz_i, dz_g, dz_o), dim=1)
            dc_prev = dct  # the constant error carousel passes dC through unchanged
        if self.peephole == "diagonal":
            for name, (a, b) in self.peepholes[:-1]:
                dc_prev = dc_prev + dz[:, a:b] * p[name]
                d_p[name] = (dz[:, a:b] * c).sum(0)
        return dz, (), (None, dc_prev), d_p
