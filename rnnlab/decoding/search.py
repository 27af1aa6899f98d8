r"""Greedy and beam search over any decoder that predicts one symbol at a time.

The interface (a translator's or a captioner's decoder, or a test's toy):

    decoder.step(tokens, state) -> (log_probs, state)
        tokens (B,) int64: the symbols y_{t-1} fed to the step; log_probs (B, V): log P(y_t | y_<t, x)
        of every symbol V; ``state`` is whatever the decoder carries between steps.
    decoder.reorder(state, index) -> state
        the state of batch rows ``index`` (B',) int64, in that order (rows may repeat).

Both searches start from ``state`` for ``batch`` inputs, feed ``bos`` first and stop a hypothesis
at ``eos`` or after ``max_len`` symbols (an int, or one per input). A hypothesis y_1 .. y_n (``eos``
counted in n when it ends one, left out of the returned tokens) scores

    score(y) = log P(y | x) / n^alpha,       log P(y | x) = sum_t log P(y_t | y_<t, x),

with alpha = ``length_penalty`` (0: the plain log-probability, which favours short output; 1: the
mean log-probability per symbol).

Greedy search takes argmax_v log P(v | y_<t, x) at every step. Beam search keeps the K
best-scoring prefixes of every input (by log-probability): each step extends the K prefixes by
every symbol, ranks the K V candidates and takes the best 2K; a candidate ending in ``eos`` among
the top K becomes a finished hypothesis, and the best K not ending in ``eos`` go on. An input is
done when its best finished hypothesis scores at least as high as the best prefix still going
(with alpha = 0 no continuation of a prefix can score higher, since log-probabilities only add
negative terms), or when it reaches its ``max_len``, where the prefixes still going are finished as
they stand. Its answer is the finished hypothesis of the highest score. With K = 1 this is greedy
search; with K at least the number of possible prefixes it is exhaustive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch

from ..errors import ConfigError

MaxLen = Union[int, Sequence[int], torch.Tensor]


@dataclass
class Hypothesis:
    """A finished output: its symbols (without ``eos``), log P(y | x) and its score."""
    tokens: List[int]
    log_prob: float
    score: float


def length_normalised(log_prob: float, length: int, length_penalty: float) -> float:
    """log P(y | x) / n^alpha (see the module docstring)."""
    return log_prob / (max(length, 1) ** length_penalty)


def _max_lens(max_len: MaxLen, batch: int) -> List[int]:
    if isinstance(max_len, int):
        lens = [max_len] * batch
    else:
        lens = [int(m) for m in (max_len.tolist() if torch.is_tensor(max_len) else max_len)]
    if len(lens) != batch or any(m < 1 for m in lens):
        raise ConfigError(f"max_len must be a positive whole number or one per input ({batch}); "
                          f"got {max_len!r}")
    return lens


@torch.no_grad()
def greedy(decoder, state, bos: int, eos: int, max_len: MaxLen, batch: int,
           length_penalty: float = 0.0) -> List[Hypothesis]:
    """The most probable symbol at every step, for each of ``batch`` inputs."""
    lens = _max_lens(max_len, batch)
    device = _device(state)
    tokens = torch.full((batch,), bos, dtype=torch.long, device=device)
    out: List[List[int]] = [[] for _ in range(batch)]
    log_prob = [0.0] * batch
    length = [0] * batch                                 # symbols so far, eos included
    done = [False] * batch
    for t in range(max(lens)):
        log_probs, state = decoder.step(tokens, state)                       # (B, V)
        tokens = log_probs.argmax(-1)                                        # (B,)
        best = log_probs.gather(1, tokens[:, None]).squeeze(1)               # (B,)
        for b, (w, lp) in enumerate(zip(tokens.tolist(), best.tolist())):
            if done[b]:
                continue
            log_prob[b] += lp
            length[b] += 1
            if w != eos:
                out[b].append(w)
            done[b] = w == eos or length[b] >= lens[b]
        if all(done):
            break
    return [Hypothesis(toks, lp, length_normalised(lp, n, length_penalty))
            for toks, lp, n in zip(out, log_prob, length)]


def _device(state) -> torch.device:
    """The device of the first tensor found in ``state`` (the CPU if there is none)."""
    stack = [state]
    while stack:
        s = stack.pop()
        if torch.is_tensor(s):
            return s.device
        if isinstance(s, (tuple, list)):
            stack.extend(s)
        elif isinstance(s, dict):
            stack.extend(s.values())
        elif hasattr(s, "__dict__"):
            stack.extend(vars(s).values())
    return torch.device("cpu")


@torch.no_grad()
def beam_search(decoder, state, bos: int, eos: int, max_len: MaxLen, batch: int,
                beam_size: int = 5, length_penalty: float = 1.0) -> List[Hypothesis]:
    """The best-scoring hypothesis of a beam of ``beam_size`` for each of ``batch`` inputs."""
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ConfigError(f"beam_size must be a whole number >= 1, got {beam_size!r}")
    lens = _max_lens(max_len, batch)
    K, B = beam_size, batch
    device = _device(state)
    state = decoder.reorder(state, torch.arange(B, device=device).repeat_interleave(K))  # B*K rows
    scores = torch.full((B, K), float("-inf"), dtype=torch.float64)
    scores[:, 0] = 0.0                                   # one live prefix per input at the start
    prefixes: List[List[List[int]]] = [[[] for _ in range(K)] for _ in range(B)]
    finished: List[List[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    tokens = torch.full((B * K,), bos, dtype=torch.long)
    for t in range(max(lens)):
        log_probs, state = decoder.step(tokens.to(device), state)            # (B*K, V)
        V = log_probs.shape[-1]
        candidates = scores.unsqueeze(-1) + log_probs.double().cpu().view(B, K, V)   # (B, K, V)
        n = min(2 * K, K * V)
        top, where = candidates.view(B, K * V).topk(n, dim=1)                # (B, n), best first
        top, where = top.tolist(), where.tolist()
        new_scores = torch.full((B, K), float("-inf"), dtype=torch.float64)
        rows = list(range(B * K))                                            # survivors' rows
        new_tokens = [eos] * (B * K)
        new_prefixes: List[List[List[int]]] = [[[] for _ in range(K)] for _ in range(B)]
        for b in range(B):
            if done[b]:
                continue
            last = t + 1 >= lens[b]
            kept = 0
            for j in range(n):
                s = top[b][j]
                if s == float("-inf"):
                    break
                k, w = divmod(where[b][j], V)
                if w == eos:
                    if j < K:
                        toks = prefixes[b][k]
                        finished[b].append(Hypothesis(list(toks), s, length_normalised(
                            s, len(toks) + 1, length_penalty)))
                    continue
                if kept < K:
                    toks = prefixes[b][k] + [w]
                    if last:
                        finished[b].append(Hypothesis(toks, s, length_normalised(
                            s, len(toks), length_penalty)))
                    new_scores[b, kept] = s
                    rows[b * K + kept] = b * K + k
                    new_tokens[b * K + kept] = w
                    new_prefixes[b][kept] = toks
                    kept += 1
            best = max((h.score for h in finished[b]), default=float("-inf"))
            if last or kept == 0 or best >= length_normalised(new_scores[b, 0].item(), t + 1,
                                                              length_penalty):
                done[b] = True
                new_scores[b] = float("-inf")
        if all(done):
            break
        scores, prefixes = new_scores, new_prefixes
        state = decoder.reorder(state, torch.tensor(rows, device=device))
        tokens = torch.tensor(new_tokens, dtype=torch.long)
    none = Hypothesis([], float("-inf"), float("-inf"))   # only if every symbol had probability 0
    return [max(f, key=lambda h: h.score) if f else none for f in finished]


class LanguageModelDecoder:
    """A language model (``model(tokens (T, B), state) -> (logits (T, B, N), state)``, every state
    tensor (..., B, ...) with the batch on its dimension 1) as the one-step decoder of
    :func:`greedy` and :func:`beam_search`, continuing a prime.

    The prime is read in one call, as :func:`rnnlab.decoding.generate` reads it; the first step
    gives the distribution after it (the ``bos`` fed to that step, the prime's last symbol, is
    already read), every later step feeds its symbol. Symbols in ``banned`` get log-probability
    -inf. Log-probabilities are float64, so that ranking them ranks the logits exactly.
    """

    def __init__(self, model, banned: Sequence[int] = ()):
        self.model, self.banned = model, list(banned)

    def start(self, prime_ids: Sequence[int]):
        """The decoder state after reading ``prime_ids`` (at least one), for a batch of one."""
        device = next(self.model.parameters()).device
        tokens = torch.tensor(list(prime_ids), dtype=torch.long, device=device).unsqueeze(1)  # (T, 1)
        logits, state = self.model(tokens)                                   # (T, 1, N)
        return logits[-1], state                                             # (1, N) pending

    def step(self, tokens: torch.Tensor, state):
        pending, inner = state
        if pending is None:
            # a row beam search has no prefix for is fed its eos, -1 where no symbol ends the
            # continuation: the model reads 0 there, and the row's output is never used
            logits, inner = self.model(tokens.clamp(min=0).view(1, -1), inner)    # (1, B, N)
            pending = logits[0]                                              # (B, N)
        log_probs = torch.log_softmax(pending.double(), dim=-1)              # (B, N)
        if self.banned:
            log_probs[:, self.banned] = float("-inf")
        return log_probs, (None, inner)

    def reorder(self, state, index: torch.Tensor):
        pending, inner = state
        return (None if pending is None else pending[index]), _rows(inner, index)


def _rows(state, index: torch.Tensor):
    """Rows ``index`` of the batch (dimension 1) of every tensor of a model's state."""
    if state is None:
        return None
    if torch.is_tensor(state):
        return state.index_select(1, index)
    return type(state)(_rows(s, index) for s in state)


@torch.no_grad()
def continue_text(model, prime_ids: Sequence[int], length: int, beam_size: int = 1,
                  eos: Optional[int] = None, banned: Sequence[int] = ()) -> Hypothesis:
    """The most probable continuation of ``prime_ids`` a beam of ``beam_size`` finds: ``length``
    symbols, or fewer ending in ``eos`` (kept in the tokens, unlike :func:`beam_search`), none of
    ``banned``; scored by the plain log-probability (length penalty 0). With ``beam_size`` 1 it is
    greedy decoding, symbol for symbol ``generate(..., temperature=0)``."""
    if not prime_ids:
        raise ConfigError("generation needs at least one prime symbol")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ConfigError(f"length must be >= 0, got {length!r}")
    if length == 0:
        return Hypothesis([], 0.0, 0.0)
    was_training = model.training
    model.eval()
    try:
        decoder = LanguageModelDecoder(model, banned)
        best = beam_search(decoder, decoder.start(prime_ids), bos=prime_ids[-1],
                           eos=-1 if eos is None else eos, max_len=length, batch=1,
                           beam_size=beam_size, length_penalty=0.0)[0]
    finally:
        model.train(was_training)
    if eos is not None and len(best.tokens) < length and best.log_prob > float("-inf"):
        best.tokens.append(eos)                            # it ended there
    return best
