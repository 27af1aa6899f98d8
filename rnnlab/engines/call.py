"""What one engine call needs, built afresh for each call: nothing is stored on a module."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch

from ..cells.cell import Params


@dataclass(frozen=True)
class Call:
    """One cell run over one sequence.

    - ``cell``: the cell (or its :class:`~rnnlab.engines.skip.SkipConnections`);
    - ``p``: its parameters by the cell's own names, weight drop already applied;
    - ``masks``: variational recurrent dropout, {source state: m (B, S)}, scaled by 1/(1 - q);
    - ``lengths``: (T, B, 1) bool, True at a sequence's real steps (None: all real);
    - ``zoneout``: keep weights, one (T, B, S_k) per state, the lengths folded in (None: none);
    - ``given``: states given at each step, {k: (T, B, S_k)}: step t reads given[k][t] in place of
      state k (teacher forcing: the true previous output).
    """
    cell: object
    p: Params
    masks: Dict[int, torch.Tensor] = field(default_factory=dict)
    lengths: Optional[torch.Tensor] = None
    zoneout: Optional[Tuple[torch.Tensor, ...]] = None
    given: Dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def keep(self) -> Optional[Tuple[torch.Tensor, ...]]:
        """The blend state_t = lerp(state_{t-1}, state~_t, k_t), one k per state: zoneout's keep
        weights, or the lengths mask (0 at padded steps: the state is carried), or None."""
        if self.zoneout is not None:
            return self.zoneout
        if self.lengths is None:
            return None
        k = self.lengths.to(self.p["weight_ih"].dtype)
        return (k,) * len(self.cell.state_sizes)

    def prev(self, state: Tuple[torch.Tensor, ...], t: int) -> Tuple[torch.Tensor, ...]:
        """The state step t reads: ``state`` with the given entries put in."""
        if not self.given:
            return state
        return self.prev_at(state, {k: g[t] for k, g in self.given.items()})

    def prev_at(self, state, given_t: Dict[int, torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """:meth:`prev` from step t's given states ``given_t`` {k: (B, S_k)} (a graph time loop
        hands the step its slices)."""
        return tuple(given_t[k] if k in given_t else s for k, s in enumerate(state))

    def blend(self, t: int, new, read, state):
        """state_t from the step's own state~_t (``new``): lerp(read, state~_t, k_t) with what the
        step read; a given state at a padded step carries ``state`` (the state itself) instead."""
        keep = self.keep
        real = self.lengths[t] if self.given and self.lengths is not None and t > 0 else None
        # (step 1 is real in every sequence)
        return self.blend_at(new, read, state, None if keep is None else tuple(k[t] for k in keep), real)

    def blend_at(self, new, read, state, keep_t, real_t):
        """:meth:`blend` from step t's slices: ``keep_t`` one (B, S_k) keep weight per state (or
        None), ``real_t`` (B, 1) bool, True where the step is real (None: every sequence)."""
        if keep_t is not None:
            new = tuple(torch.lerp(r, n, k) for n, r, k in zip(new, read, keep_t))
        if self.given and real_t is not None:
            new = tuple(torch.where(real_t, n, s) if k in self.given else n
                        for k, (n, s) in enumerate(zip(new, state)))
        return new

    @property
    def unread(self) -> set:
        """The initial states no step reads (a given one; one only the step's own products and
        core could read, and they don't): they get no gradient."""
        cell = self.cell
        if cell.core_reads is None or self.keep is not None:
            return set(self.given)
        reads = set(cell.core_reads) | {pr.source for pr in cell.products if not pr.inner}
        return set(range(len(cell.state_sizes))) - reads | set(self.given)

    @property
    def independent(self) -> bool:
        """Whether no step reads another's result (every product's source given, the core reading
        no previous state, nothing blended): then the steps run as one step over T*B rows."""
        reads = self.cell.core_reads
        return (reads is not None and all(k in self.given for k in reads) and self.keep is None
                and all(pr.inner or pr.source in self.given for pr in self.cell.products))
