"""Explicit memory: the Neural Turing Machine (addressing, heads, the machine)."""
from .addressing import (address, circular_shift, content_weighting, cosine_similarity, interpolate,
                         read, sharpen, write)
from .heads import HeadParameters, Heads
from .ntm import NTM, NTMCell, NTMState

__all__ = ["NTM", "NTMCell", "NTMState", "Heads", "HeadParameters", "address", "circular_shift",
           "content_weighting", "cosine_similarity", "interpolate", "read", "sharpen", "write"]
