"""The gated recurrent unit, in torch's form (reset gate after the matrix product) or the notes'."""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ..linalg import addmm, addmm_, mm, outer_sum
from .cell import Params, RecurrentCell, State, recurrent_input


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

    The recurrent bias: with ``reset_after=False`` all of b_hh adds linearly to the input projection
    and is folded into it (:meth:`input_bias` is ``bias_ih + bias_hh``). With ``reset_after=True``
    b_hn sits inside the product with r_t, so only the r, z part is folded: :meth:`input_bias` is
    ``bias_ih + (b_hr, b_hz, 0)`` and the step computes ``hn = W_hn h_{t-1} + b_hn`` as one
    ``addmm``. Leaving all of b_hh unfolded costs as many ops per step (``W_hh h + b_hh`` as one
    ``addmm``, then an add of its r, z part to xw), but keeps (B, 3H) per step where the partial
    fold keeps (B, H): ``hn`` is the only thing the backward needs beyond the gates, which the bptt
    engine keeps in xw's own storage (``grad_in_xw``).

    Shapes: x_t (B, I), h_t (B, H). Parameters, gate order r, z, n as torch.nn (G = 3):
    ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,).
    """

    gate_count = 3
    writes_out = True
    grad_in_xw = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 reset_after: bool = True, init: str = "rnnlab", device=None, dtype=None):
        self.reset_after = bool(reset_after)
        self.native_mode = "gru" if self.reset_after else None
        self.fold_bias_hh = not self.reset_after  # reset_after folds only b_hr, b_hz (input_bias)
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.reset_after else s + ", reset_after=False"

    def input_bias(self, p: Params) -> Optional[torch.Tensor]:
        """b in xw_t = W_ih x_t + b: ``bias_ih + bias_hh``, or with ``reset_after``
        ``bias_ih + (b_hr, b_hz, 0)`` (b_hn stays inside the reset gate's product)."""
        if not self.reset_after or "bias_ih" not in p:
            return super().input_bias(p)
        H = self.hidden_size
        b_ih, b_hh = p["bias_ih"], p["bias_hh"]
        return torch.cat((b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]))  # (3H,)

    # ------------------------------------------------------------------ forward
    def step(self, p: Params, xw: torch.Tensor, state: State, out: Optional[State] = None):
        """Returns ((h_t,), saved = (rz, n, m)): rz (B, 2H) the gates r, z, n (B, H) the
        candidate, and m (B, H) what the n row of W_hh multiplied: hn = W_hn h_{t-1} + b_hn
        (``reset_after``, the backward's dr = da_n hn) or r h_{t-1} (dW_hn = sum da_n^T r h).

        With ``out`` (the bptt engine, no autograd) the pre-activations are built in ``xw``'s own
        storage, the nonlinearities applied in place, and h_t written into ``out[0]``.
        """
        (h,) = state
        H = self.hidden_size
        fast = out is not None
        a_rz, a_n = xw[:, :2 * H], xw[:, 2 * H:]  # pre-activations so far: input part and biases
        rz = self.recurrent_product(p, a_rz, h, slice(0, 2 * H), inplace=fast).sigmoid_()  # (B, 2H) r, z
        r = rz[:, :H]
        if self.reset_after:  # a_n = W_in x + b_in + r (W_hn h + b_hn)
            b = p.get("bias_hh")
            m = self.recurrent_product(p, None if b is None else b[2 * H:], h, slice(2 * H, 3 * H))
            n = (a_n.addcmul_(r, m) if fast else torch.addcmul(a_n, r, m)).tanh_()
        else:                 # a_n = W_in x + b_in + b_hn + W_hn (r h)
            m = r * recurrent_input(p, h)  # m * h_{t-1} where it enters W_hh, under recurrent dropout
            n = self.reset_product(p, a_n, m, inplace=fast).tanh_()
        # h_t = (1 - z) n + z h_{t-1} = n + z (h_{t-1} - n)
        h_new = torch.lerp(n, h, rz[:, H:], out=out[0] if fast else None)
        return (h_new,), (rz, n, m)

    block_names = ("r", "z", "n")

    def gate_activations(self, saved):
        """r_t and z_t, each (B, H), from the saved gates."""
        rz = saved[0]
        H = self.hidden_size
        return {"reset": rz[:, :H], "update": rz[:, H:]}

    # ------------------------------------------------------------------ backward
    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The GRU's derivative, term by term. a_r, a_z, a_n are the pre-activations
        (r = sigma(a_r), z = sigma(a_z), n = tanh(a_n)); their gradients da_r, da_z, da_n are
        written into d_xw. With ``reset_after`` d_rec = (da_n r,), the gradient of hn; otherwise
        d_rec is empty.

        ``d_xw`` may be the very storage that holds the saved r, z, n (``grad_in_xw``): each is
        read for the last time before its slot is overwritten.
        """
        (h,), (dh,) = state, d_new_state
        H = self.hidden_size
        rz, n, m = saved
        r, z = rz[:, :H], rz[:, H:]
        d_sig = torch.addcmul(rz, rz, rz, value=-1)  # sigma'(a_{r,z}) = sigma (1 - sigma)
        # h_t = (1 - z) n + z h_{t-1}:  dh_{t-1} = dh z,  dn = dh (1 - z),  dz = dh (h_{t-1} - n)
        dh_prev = dh * z
        dn = dh - dh_prev
        torch.mul(dh, h - n, out=d_xw[:, H:2 * H])                # dz, into z's slot
        # n = tanh(a_n):  da_n = dn (1 - n^2)
        da_n = torch.addcmul(dn, dn * n, n, value=-1, out=d_xw[:, 2 * H:])  # into n's slot
        if self.reset_after:
            # a_n = xw_n + r hn:  d(hn) = da_n r,  dr = da_n hn
            d_hn = da_n * r
            torch.mul(da_n, m, out=d_xw[:, :H])                   # dr, into r's slot
            da_rz = d_xw[:, :2 * H].mul_(d_sig)                   # da_{r,z} = d{r,z} sigma'
            # (a_r, a_z, hn) = ... + W_hh h_{t-1}:  dh_{t-1} += (da_r, da_z, d(hn)) W_hh
            d_hh = torch.cat((da_rz, d_hn), dim=1)  # (B, 3H)
            return (self.recurrent_product_grad(p, dh_prev, d_hh),), (d_hn,)
        # a_n = ... + W_hn (r h~):  d(r h~) = da_n W_hn,  dh_{t-1} += m d(r h~) r,  dr = d(r h~) h~
        # (h~ = m h_{t-1} under recurrent dropout, else h_{t-1})
        d_rh = self.reset_product_grad(p, da_n)
        d_hd = d_rh * r                                           # read r before its slot is reused
        torch.mul(d_rh, recurrent_input(p, h), out=d_xw[:, :H])   # dr, into r's slot
        da_rz = d_xw[:, :2 * H].mul_(d_sig)                       # da_{r,z} = d{r,z} sigma'
        # a_{r,z} = ... + W_h{r,z} h~:  dh_{t-1} += m da_{r,z} W_h{r,z}
        dh_prev = recurrent_input(p, d_hd).add_(dh_prev)
        return (self.recurrent_product_grad(p, dh_prev, da_rz, slice(0, 2 * H)),), ()

    def reset_product(self, p: Params, a_n: torch.Tensor, rh: torch.Tensor,
                      inplace: bool = False) -> torch.Tensor:
        """a_n + W_hn (r h~) (B, H), the notes' form's candidate term (in place with ``inplace``); a
        wrapper that changes that term (layer normalisation) overrides this and
        :meth:`reset_product_grad`."""
        W_n = p["weight_hh"][2 * self.hidden_size:]
        return addmm_(a_n, rh, W_n.t()) if inplace else addmm(a_n, rh, W_n.t())

    def reset_product_grad(self, p: Params, da_n: torch.Tensor) -> torch.Tensor:
        """dL/d(r h~) = da_n W_hn (B, H), the derivative of :meth:`reset_product`."""
        return mm(da_n, p["weight_hh"][2 * self.hidden_size:])

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved) -> Dict[str, torch.Tensor]:
        """reset_after: with d_hh = (da_r, da_z, da_n r), dW_hh = sum_t d_hh_t^T h_{t-1} (one
        product over all steps per row block: (da_r, da_z) and d(hn)) and db_hh = sum_t d_hh_t. Otherwise the n rows of W_hh read
        r h_{t-1}: dW_h{r,z} = sum_t da_{r,z}^T h_{t-1} and dW_hn = sum_t da_n^T (r h_{t-1}), one
        product per row block, all steps at once; b_hh is folded (db_hh = db_ih)."""
        H = self.hidden_size
        h_prev = recurrent_input(p, prev[0])  # (T, B, H): m * h_{t-1} under recurrent dropout
        grads = self.bias_grads(p, d_xw)
        da_rz, da_n = d_xw[..., :2 * H], d_xw[..., 2 * H:]  # (T, B, 2H), (T, B, H)
        if self.reset_after:
            d_hn = d_rec[0]  # (T, B, H)
            grads["weight_hh"] = torch.cat((outer_sum(da_rz, h_prev), outer_sum(d_hn, h_prev)))
            if "bias_hh" in p:
                grads["bias_hh"] = torch.cat((da_rz.sum((0, 1)), d_hn.sum((0, 1))))
            return grads
        rh = saved[2]  # r_t h_{t-1}   (T, B, H)
        grads["weight_hh"] = torch.cat((outer_sum(da_rz, h_prev), outer_sum(da_n, rh)))
        return grads
