"""A corpus as B parallel streams, the batching of language-model training.

The token sequence is cut into B equal contiguous pieces, one per batch column, so that row t
holds the t-th token of every stream: a (N // B, B) tensor. A model reads it row by row and
carries its state from one window of rows to the next, as if it read B long texts side by side.
"""
from __future__ import annotations

import torch

from ..errors import DataError


def batchify(ids: torch.Tensor, batch_size: int, what: str = "corpus", min_rows: int = 2) -> torch.Tensor:
    """(N,) token ids -> (N // B, B): column b is the b-th contiguous piece of the corpus.
    The last N mod B tokens are dropped."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    rows = ids.numel() // batch_size
    if rows < min_rows:
        raise DataError(f"the {what} has {ids.numel()} tokens: too short for {batch_size} streams of "
                        f"at least {min_rows} tokens each; use a smaller batch size or more text")
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()  # (N // B, B)
