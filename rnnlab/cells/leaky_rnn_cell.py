"""Leaky units: a vanilla RNN whose state keeps a fraction of itself, for multiple time scales."""
from __future__ import annotations

from typing import Optional

import torch

from ..activations import activate, activate_backward, check_activation
from .cell import Params, RecurrentCell, check_size

LEAK_MODES = ("fixed", "learned")
LEAK_SHAPES = (None, "scalar", "unit")


def check_leak(leak, hidden_size: int, shape: Optional[str]) -> torch.Tensor:
    """The leak as a float64 tensor, () for ``shape="scalar"`` or (H,) for ``"unit"``; every value
    strictly inside (0, 1). ``shape=None`` takes the shape of ``leak`` (a float or H values)."""
    H = hidden_size
    if shape not in LEAK_SHAPES:
        raise ValueError(f"leak_shape must be None, 'scalar' or 'unit', got {shape!r}")
    try:
        a = torch.as_tensor(leak, dtype=torch.float64).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"leak must be a float or {H} floats (one per unit), "
                         f"got {leak!r}") from None
    if a.dim() == 0 and shape == "unit":
        a = a.expand(H).clone()  # one value for every unit
    wants = {"scalar": [()], "unit": [(H,)], None: [(), (H,)]}[shape]
    if tuple(a.shape) not in wants:
        raise ValueError(f"leak must have shape {' or '.join(map(str, wants))} for "
                         f"leak_shape={shape!r}, got shape {tuple(a.shape)}")
    if not bool(((a > 0) & (a < 1)).all()):
        lo, hi = a.min().item(), a.max().item()
        raise ValueError(f"leak must lie strictly inside (0, 1), got "
                         f"{lo if a.dim() == 0 else f'values in [{lo}, {hi}]'}")
    return a


class LeakyRNNCell(RecurrentCell):
    r"""One step of a leaky-unit RNN (the notes' section 10.9.2):

    .. math::
        v_t &= \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \\
        h_t &= a \odot h_{t-1} + (1 - a) \odot v_t

    h_t is the "summary of history" u(t) of the notes, v_t the "new stuff" computed as by the
    vanilla RNN, phi its nonlinearity (tanh, relu or sigmoid; ``nonlinearity``), the circle the
    element-wise (Hadamard) product. The leak a is the weight of the linear self-connection
    h_{t-1} -> h_t: near 1 the unit integrates over a long time scale (about 1 / (1 - a) steps),
    near 0 it is the vanilla RNN. Giving each unit its own a mixes several time scales.

    The leak a, every value strictly inside (0, 1):

    - ``leak_mode="fixed"`` (default): a = ``leak``, a constant, kept in the non-persistent buffer
      ``leak`` (it is rebuilt from the constructor's arguments, so it is not in the state dict);
    - ``leak_mode="learned"``: a = sigma(``leak_logit``), a parameter started at logit(``leak``);
      the sigmoid keeps a inside (0, 1) whatever the optimiser does.
    - ``leak_shape``: ``"scalar"`` (one a for all units), ``"unit"`` (one a per unit; a float
      ``leak`` is given to every unit) or None (the default: the shape of ``leak``, a float or
      H values).

    Shapes: x_t (B, I), h_t (B, H), a () or (H,). Parameters as torch.nn.RNNCell: ``weight_ih``
    (H, I), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,); with a learned leak also
    ``leak_logit`` () or (H,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, leak=0.5,
                 leak_mode: str = "fixed", leak_shape: Optional[str] = None,
                 nonlinearity: str = "tanh", init: str = "rnnlab", device=None, dtype=None,
                 layer_norm: bool = False):
        if leak_mode not in LEAK_MODES:
            raise ValueError(f"leak_mode must be 'fixed' or 'learned', got {leak_mode!r}")
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.leak_mode = leak_mode
        # the leak values (float64), which size and (re)initialise leak_logit: set before the base
        # class creates the parameters
        self._leak_init = check_leak(leak, check_size("hidden_size", hidden_size), leak_shape)
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)
        if leak_mode == "fixed":
            dtype = dtype if dtype is not None else torch.get_default_dtype()
            self.register_buffer("leak", self._leak_init.to(device=device, dtype=dtype),
                                 persistent=False)

    def own_parameter_shapes(self):
        return {"leak_logit": tuple(self._leak_init.shape)} if self.leak_mode == "learned" else {}

    def init_extra(self, name, param):
        if name == "leak_logit":
            param.copy_(torch.logit(self._leak_init))
            return True
        return False

    def extra_repr(self):
        a = [float(f"{v:.6g}") for v in self._leak_init.reshape(-1).tolist()]
        s = super().extra_repr() + f", leak={a[0] if self._leak_init.dim() == 0 else a}"
        if self.leak_mode != "fixed":
            s += f", leak_mode={self.leak_mode!r}"
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    def leak_rate(self, p: Params) -> torch.Tensor:
        """a, () or (H,): sigmoid(leak_logit) when learned, else the fixed buffer ``leak`` (which
        a layer owns like the parameters, so it follows ``.to()`` and ``.double()``)."""
        if self.leak_mode == "learned":
            return torch.sigmoid(p["leak_logit"])
        return p["leak"]

    def core(self, p, z, u, state, mm):
        """v_t = phi(z_t);  h_t = a h_{t-1} + (1 - a) v_t = lerp(v_t, h_{t-1}, a).  Saves v_t."""
        v = activate(self.nonlinearity, z)  # (B, H)
        return (torch.lerp(v, state[0], self.leak_rate(p)),), (v,)

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        """dv = dh (1 - a);  dz = dv phi'(z) (from v_t);  dh_{t-1} = dh a (the leak's path);
        a learned leak: dL/d(leak_logit) = sum_b dh (h_{t-1} - v_t) a (1 - a) (summed over units
        too for a scalar a)."""
        (v,), (dh,) = saved, d_new
        a = self.leak_rate(p)
        dz = activate_backward(self.nonlinearity, v, dh * (1 - a))
        d_p = {}
        if self.leak_mode == "learned":
            da = (dh * (state[0] - v)).sum(0)  # (H,)
            d_p["leak_logit"] = (da if a.dim() else da.sum()) * a * (1 - a)
        return dz, (), (dh * a,), d_p
