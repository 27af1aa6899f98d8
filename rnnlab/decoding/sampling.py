r"""Drawing the next symbol from a language model's output distribution Y_t.

    p_i ∝ exp(z_i / tau)          temperature tau > 0; tau -> 0 is the argmax (greedy decoding)
    top-k: keep the k largest z_i; top-p (nucleus): keep the fewest most probable symbols whose
    probabilities sum to at least p; the rest get probability 0, the kept ones are renormalised.

``generate`` primes the model with a text, then feeds each drawn symbol back as the next input
(the notes' one-to-many loop), handing every symbol to a callback as it is drawn. Symbols listed
as ``banned`` (a vocabulary's ``<unk>``) get probability 0 before anything else, so they are never
drawn, greedy decoding included; the callback may end the generation early by returning True.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch

from ..errors import ConfigError


def check_sampling(temperature: float, top_k: Optional[int], top_p: Optional[float]) -> None:
    if not temperature >= 0 or temperature == float("inf"):
        raise ConfigError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be a whole number >= 1, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must lie in (0, 1], got {top_p}")


def filter_logits(logits: torch.Tensor, top_k: Optional[int] = None,
                  top_p: Optional[float] = None) -> torch.Tensor:
    """(B, N) logits with every symbol outside the top k / the nucleus p set to -inf."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]           # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_z, order = torch.sort(logits, dim=-1, descending=True)      # (B, N)
        probs = torch.softmax(sorted_z, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs                       # mass above each symbol
        drop_sorted = before >= top_p                                      # the first is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, N) logits -> (B,) drawn symbols; ``temperature=0`` is greedy decoding."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    z = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = torch.softmax(z, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def ban(logits: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    """(..., N) logits with the symbols ``banned`` set to -inf (probability 0)."""
    if not banned:
        return logits
    logits = logits.clone()
    logits[..., list(banned)] = float("-inf")
    return logits


@torch.no_grad()
def generate(model, prime_ids: List[int], length: int, temperature: float = 1.0,
             top_k: Optional[int] = None, top_p: Optional[float] = None,
             seed: Optional[int] = None, on_symbol: Optional[Callable[[int], Optional[bool]]] = None,
             banned: Sequence[int] = ()) -> List[int]:
    """At most ``length`` symbols drawn one at a time after reading ``prime_ids`` (at least one),
    none of ``banned``; ``on_symbol(i)`` returning True ends the generation after symbol i."""
    check_sampling(temperature, top_k, top_p)
    if length < 0:
        raise ConfigError(f"length must be >= 0, got {length}")
    if not prime_ids:
        raise ConfigError("generation needs at least one prime symbol")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device)
        generator.seed() if seed is None else generator.manual_seed(seed)
        tokens = torch.tensor(prime_ids, dtype=torch.long, device=device).unsqueeze(1)  # (T, 1)
        logits, state = model(tokens)
        out: List[int] = []
        for _ in range(length):
            nxt = sample_next(ban(logits[-1], banned), temperature, top_k, top_p, generator)  # (1,)
            i = int(nxt)
            out.append(i)
            if on_symbol is not None and on_symbol(i):
                break
            logits, state = model(nxt.view(1, 1), state)
        return out
    finally:
        model.train(was_training)
