r"""Decoding a CTC network's output: from the distributions y_t(k) (T steps, C symbols, one the
blank) to a labelling, the most probable order of symbols with no claim on their timing.

**Best path (greedy).** Take the most probable symbol at every step, pi*_t = argmax_k y_t(k),
then read the path: merge repeated symbols, drop blanks (``_ 3 3 _ _ 1 1 _ 1`` reads ``3 1 1``).
It finds the labelling of the single most probable alignment, not the most probable labelling,
P(l | x) = sum over all alignments of l.

**Prefix beam search.** Keep the K most probable *prefixes* (labellings read so far), each with two
probabilities over the first t steps: p_b(l), of the alignments that read l and end in a blank, and
p_nb(l), of those that end in l's last symbol. At step t, with p(l) = p_b(l) + p_nb(l):

    blank:                         p_b'(l)      += p(l) y_t(_)
    k = last symbol of l:          p_nb'(l)     += p_nb(l) y_t(k)     (the symbol goes on)
                                   p_nb'(l + k) += p_b(l) y_t(k)      (after a blank: a new k)
    any other k:                   p_nb'(l + k) += p(l) y_t(k)

then keep the K prefixes of the highest p'. The answer is the prefix of the highest
p_b(l) + p_nb(l) after the last step. All in log space. With K at least the number of prefixes
there are, nothing is pruned and the answer is the most probable labelling exactly; with K = 1 it
is close to, but not the same as, best-path decoding.

Shapes: log_probs (T, B, C) with input_lengths (B,) for the batched functions, (T, C) for one
sequence. Labellings are lists of class indices (the blank never among them).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import ConfigError
from ..training.config import positive_int

NEG_INF = float("-inf")


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def _lengths(log_probs: torch.Tensor, input_lengths) -> List[int]:
    if log_probs.dim() != 3:
        raise ConfigError(f"log_probs must be (T, B, C), got shape {tuple(log_probs.shape)}")
    T, B, _ = log_probs.shape
    if input_lengths is None:
        return [T] * B
    lengths = [int(n) for n in (input_lengths.tolist() if torch.is_tensor(input_lengths) else input_lengths)]
    if len(lengths) != B or any(not 0 <= n <= T for n in lengths):
        raise ConfigError(f"input_lengths must give B = {B} lengths in 0..{T}, got {lengths}")
    return lengths


def collapse(path: Sequence[int], blank: int = 0) -> List[int]:
    """The labelling an alignment reads: repeats merged, blanks dropped."""
    out: List[int] = []
    previous = None
    for k in path:
        if k != previous and k != blank:
            out.append(int(k))
        previous = k
    return out


def greedy_decode(log_probs: torch.Tensor, input_lengths=None, blank: int = 0) -> List[List[int]]:
    """Best-path decoding of every sequence of the batch (module docstring)."""
    lengths = _lengths(log_probs, input_lengths)
    best = log_probs.argmax(-1).t().tolist()                                # (B, T)
    return [collapse(path[:n], blank) for path, n in zip(best, lengths)]


def prefix_beam_search_one(log_probs: torch.Tensor, beam: int, blank: int = 0) -> Tuple[List[int], float]:
    """Prefix beam search over one sequence's log_probs (T, C): (labelling, its log p_b + p_nb)."""
    positive_int("beam", beam)
    rows = log_probs.tolist()
    symbols = [k for k in range(log_probs.shape[-1]) if k != blank]
    beams: Dict[Tuple[int, ...], List[float]] = {(): [0.0, NEG_INF]}     # prefix -> [log p_b, log p_nb]
    for y in rows:
        grown: Dict[Tuple[int, ...], List[float]] = {}

        def entry(prefix):
            e = grown.get(prefix)
            if e is None:
                e = grown[prefix] = [NEG_INF, NEG_INF]
            return e

        for prefix, (pb, pnb) in beams.items():
            p = log_add(pb, pnb)
            same = entry(prefix)
            same[0] = log_add(same[0], p + y[blank])
            last = prefix[-1] if prefix else None
            for k in symbols:
                if k == last:
                    same[1] = log_add(same[1], pnb + y[k])
                    longer = entry(prefix + (k,))
                    longer[1] = log_add(longer[1], pb + y[k])
                else:
                    longer = entry(prefix + (k,))
                    longer[1] = log_add(longer[1], p + y[k])
        ranked = sorted(grown.items(), key=lambda item: -log_add(*item[1]))
        beams = dict(ranked[:beam])
    prefix, (pb, pnb) = max(beams.items(), key=lambda item: log_add(*item[1]))
    return list(prefix), log_add(pb, pnb)


def prefix_beam_search(log_probs: torch.Tensor, input_lengths=None, beam: int = 8,
                       blank: int = 0) -> List[List[int]]:
    """Prefix beam search of every sequence of the batch (module docstring)."""
    lengths = _lengths(log_probs, input_lengths)
    log_probs = log_probs.detach().double().cpu()
    return [prefix_beam_search_one(log_probs[:n, b], beam, blank)[0] for b, n in enumerate(lengths)]


def decode(log_probs: torch.Tensor, input_lengths=None, beam: Optional[int] = 0,
           blank: int = 0) -> List[List[int]]:
    """Best-path decoding for ``beam`` 0 (or None), prefix beam search of width ``beam`` otherwise."""
    if not beam:
        return greedy_decode(log_probs, input_lengths, blank)
    return prefix_beam_search(log_probs, input_lengths, beam, blank)
