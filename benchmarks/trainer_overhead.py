"""Training through rnnlab's trainer against a minimal hand-written PyTorch loop, same model.

Both train a character LSTM language model on Python's help text with the same configuration
(embedding 64, LSTM 512, batch 32, truncated BPTT 100, Adam, gradient norm clipped at 5): the
minimal loop is embedding + torch.nn.LSTM + linear, the hidden state carried and detached, one
backward, clip, step. Rounds alternate; the ratio of medians of tokens per second is reported.
Target: rnnlab at least 0.9x the minimal loop.

    python benchmarks/trainer_overhead.py [--steps 60] [--rounds 5]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.nn import functional as F

import rnnlab
from rnnlab.data import Vocabulary, batchify, load_text_corpus

E, H, B, T = 64, 512, 32, 100


def minimal_loop(rows: torch.Tensor, V: int, steps: int) -> float:
    """Tokens per second of the plainest correct PyTorch training loop."""
    torch.manual_seed(0)
    emb, lstm, out = nn.Embedding(V, E), nn.LSTM(E, H), nn.Linear(H, V)
    params = [*emb.parameters(), *lstm.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    state, tokens = None, 0
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = rows[i * T:(i + 1) * T], rows[i * T + 1:(i + 1) * T + 1]
        h, state = lstm(emb(x), state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(out(h).reshape(-1, V), y.reshape(-1), reduction="sum") / B
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        tokens += y.numel()
    return tokens / (time.perf_counter() - t0)


def through_rnnlab(steps: int) -> float:
    out = tempfile.mkdtemp()
    try:
        s = rnnlab.train(out=out, force=True, max_steps=steps, epochs=0, hidden_size=H, embed_size=E,
                         batch_size=B, tbptt=(T, T), progress=False, sample_length=0, say=lambda m: None)
        return s["tokens"] / s["train_seconds"]
    finally:
        shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    corpus = load_text_corpus(None, 0.05, 0.05)
    vocab = Vocabulary.build(corpus.train, "char")
    rows = batchify(vocab.encode(corpus.train), B)                    # (N // B, B)
    minimal_loop(rows, len(vocab), 5), through_rnnlab(5)              # warm-up
    plain, ours = [], []
    for r in range(args.rounds):
        plain.append(minimal_loop(rows, len(vocab), args.steps))
        ours.append(through_rnnlab(args.steps))
        print(f"round {r + 1}: minimal {plain[-1]:,.0f} tok/s, rnnlab {ours[-1]:,.0f} tok/s", flush=True)
    ratio = statistics.median(ours) / statistics.median(plain)
    print(f"medians: minimal loop {statistics.median(plain):,.0f} tok/s, rnnlab trainer "
          f"{statistics.median(ours):,.0f} tok/s, ratio {ratio:.3f} "
          f"({'meets' if ratio >= 0.9 else 'misses'} 0.9)")


if __name__ == "__main__":
    main()
