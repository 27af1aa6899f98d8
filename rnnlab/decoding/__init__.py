"""Decoding: turning a model's output distributions into symbols."""
from .sampling import filter_logits, generate, sample_next

__all__ = ["filter_logits", "generate", "sample_next"]
