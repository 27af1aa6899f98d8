"""Variable-length batches: lengths, masks, per-sequence time reversal, PackedSequence."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def check_lengths(lengths, T: int, B: int, device) -> Optional[torch.Tensor]:
    """Validate ``lengths`` for a (T, B, ...) batch; returns an int64 tensor (B,) on ``device``."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != B:
        raise ValueError(f"lengths must be a 1-D tensor of {B} sequence lengths, got shape "
                         f"{tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if torch.compiler.is_exporting():  # values unknown in an exported graph
        return lengths.to(device=device, dtype=torch.int64)
    if torch.compiler.is_compiling():  # checked in the graph (a RuntimeError), no value read
        torch._assert_async(((lengths >= 1) & (lengths <= T)).all(),
                            "lengths must lie in [1, T], T the padded length")
        return lengths.to(device=device, dtype=torch.int64)
    lo, hi = (int(lengths.min()), int(lengths.max())) if B else (1, T)  # (an empty batch: nothing to check)
    if lo < 1 or hi > T:
        raise ValueError(f"lengths must lie in [1, {T}] (the padded length), got values in [{lo}, {hi}]")
    return lengths.to(device=device, dtype=torch.int64)


def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """mask[t, b] = t < lengths[b].   (T, B, 1) bool"""
    steps = torch.arange(T, device=lengths.device)
    return (steps[:, None] < lengths[None, :]).unsqueeze(-1)


def reverse_padded(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """Reverse each sequence of ``x`` (T, B, ...) within its own length; padding stays at the end.

    The map is its own inverse, so the same call turns a reversed output back.
    """
    if lengths is None:
        return x.flip(0)
    T, B = x.shape[:2]
    t = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    idx = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    idx = idx.view(T, B, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)


def unpack(packed: PackedSequence) -> Tuple[torch.Tensor, torch.Tensor]:
    """A PackedSequence as a padded (T, B, ...) tensor in the original batch order, and lengths."""
    padded, lengths = pad_packed_sequence(packed, batch_first=False)
    return padded, lengths


def repack(padded: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """Pack ``padded`` (T, B, ...) in the layout of ``like`` (same batch sizes and order)."""
    order = like.sorted_indices
    x = padded if order is None else padded.index_select(1, order)  # sorted by length, descending
    pieces = [x[t, :int(bs)] for t, bs in enumerate(like.batch_sizes)]
    return PackedSequence(torch.cat(pieces, 0), like.batch_sizes, like.sorted_indices,
                          like.unsorted_indices)
