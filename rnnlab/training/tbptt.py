r"""Truncated backpropagation through time with the notes' two lengths, k1 and k2.

Every k1 steps the parameters are updated; the gradient of the losses of those k1 new steps runs
back k2 >= k1 steps. Update n owns the losses of steps [n k1, (n+1) k1) and runs the network over
the gradient window [g_n, (n+1) k1) with g_n = max(0, (n+1) k1 - k2), starting from the state at
g_n computed by the forward pass of update n - 1 and detached (no gradient crosses a window's
start). With k2 = k1 the windows tile the sequence (the common form); with k2 > k1 they overlap
by k2 - k1 steps, which are run again, so every loss sees at least k2 - k1 steps of history.
k1 = k2 = the whole sequence is full BPTT.

Each window is run in two pieces, [g_n, g_{n+1}) and [g_{n+1}, (n+1) k1): the state at the
seam is where update n + 1 starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..errors import ConfigError


@dataclass(frozen=True)
class Window:
    """One update: run steps [start, end) from the state at ``start``, keep the state at
    ``seam`` for the next window, count the losses of steps [loss_start, end)."""
    start: int
    seam: int
    loss_start: int
    end: int


def check_tbptt(tbptt) -> Optional[Tuple[int, int]]:
    """(k1, k2) from None / "full" (full BPTT), an int K (k1 = k2 = K) or a pair."""
    if tbptt is None or tbptt == "full" or tbptt == ["full"]:
        return None
    if isinstance(tbptt, int):
        tbptt = (tbptt, tbptt)
    tbptt = tuple(tbptt)
    if len(tbptt) == 1:
        tbptt = tbptt * 2
    if len(tbptt) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) for k in tbptt):
        raise ConfigError(f"tbptt takes 'full', K, or K1 K2 (whole numbers); got {tbptt!r}")
    k1, k2 = tbptt
    if k1 < 1 or k2 < k1:
        raise ConfigError(f"tbptt needs 1 <= k1 <= k2 (k1 steps between updates, k2 steps back); "
                          f"got k1={k1}, k2={k2}")
    return k1, k2


def windows(steps: int, tbptt: Optional[Tuple[int, int]]) -> List[Window]:
    """The windows of truncated BPTT(k1, k2) over a sequence of ``steps`` steps."""
    k1, k2 = (steps, steps) if tbptt is None else tbptt
    ends = list(range(k1, steps, k1)) + [steps]
    starts = [max(0, e - k2) for e in ends]
    return [Window(start=starts[n], seam=starts[n + 1] if n + 1 < len(ends) else ends[n],
                   loss_start=0 if n == 0 else ends[n - 1], end=ends[n])
            for n in range(len(ends))]
