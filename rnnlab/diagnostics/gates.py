r"""Gate statistics: how often each gate saturates, and the forget gate over time.

A gate g_t = sigma(a_t) in (0, 1) is saturated when it sits near 0 or 1, where its derivative
g (1 - g) vanishes: a saturated forget gate near 1 keeps the cell state (and its gradient)
unchanged, near 0 wipes it. For each gate the statistics are the fractions of its values below
``low`` and above ``high`` over every unit, sequence and (real) step, its mean, and its mean
over units and sequences at each step.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ..cells.cell import Params, RecurrentCell
from ..cells.cell import input_projection
from ..engines.bptt import forward_states
from ..engines.call import Call
from ..sequence import length_mask


@torch.no_grad()
def gate_statistics(cell: RecurrentCell, p: Params, x: torch.Tensor,
                    lengths: Optional[torch.Tensor] = None, low: float = 0.1,
                    high: float = 0.9) -> Dict[str, dict]:
    """x (T, B, I) through ``cell`` from zeros -> {gate: {"below": fraction < low, "above":
    fraction > high, "mean": float, "mean_over_time": [T floats]}}; empty for a cell without
    gates. Padded steps (past ``lengths``) are left out."""
    T, B, _ = x.shape
    mask = None if lengths is None else length_mask(lengths, T)              # (T, B, 1)
    call = Call(cell, p, lengths=mask)
    _, _, saved, _ = forward_states(call, input_projection(cell, p, x), cell.initial_state(B, x))
    keep = torch.ones(T, B, 1, dtype=x.dtype) if mask is None else mask.to(x.dtype)
    sums: Dict[str, dict] = {}
    for t, step_saved in enumerate(saved):
        w = keep[t]                                                          # (B, 1)
        for name, g in cell.gate_activations(step_saved).items():           # g (B, H)
            s = sums.setdefault(name, {"below": 0.0, "above": 0.0, "sum": 0.0, "count": 0.0,
                                       "over_time": []})
            H = g.shape[1]
            s["below"] += float(((g < low) * w).sum())
            s["above"] += float(((g > high) * w).sum())
            s["sum"] += float((g * w).sum())
            s["count"] += float(w.sum()) * H
            real = float(w.sum())
            s["over_time"].append(float((g * w).sum()) / (real * H) if real else float("nan"))
    return {name: {"below": s["below"] / s["count"], "above": s["above"] / s["count"],
                   "mean": s["sum"] / s["count"], "mean_over_time": s["over_time"]}
            for name, s in sums.items()}
