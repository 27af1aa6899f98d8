"""Teacher-forced training of the output-recurrent RNN: one pass over all steps against the step loop.

The network s_t = tanh(U x_t + W y*_{t-1} + b), y_t = W_hy s_t + b_y has no hidden-to-hidden
term, so under teacher forcing (y*_{t-1} the true previous output) no step waits for another: the
notes' complexity table gives training O(1) serial steps. rnnlab's OutputRecurrentRNN then trains
in one pass (engine ``bptt``/``auto``). The references, in the same process and the same rounds:

- step loop, autograd: the same layer with engine ``loop`` (autograd through T steps of the cell);
- step loop, hand-written BPTT: OutputFeedbackRNN (which has V s_{t-1}) with V = 0 and
  ``bptt``, whose teacher-forced recurrence over s runs the hand-written engine's time loop; it
  computes the same function and the same gradients of U, W, W_hy, b (plus one H x H product per
  step for the absent V).

One measurement is forward and backward of one batch, the squared error of the outputs against
random targets, float32, one thread (back-to-back batches averaged over at least 50 ms). Each round runs every method once in a fresh random order;
figures are medians over the rounds, speed-ups ratios of medians. The gradient difference is the
largest |g_one_pass - g_step_loop| over all parameters relative to the largest |g_step_loop|, in
float32 (the timed runs) and float64.

    python benchmarks/parallel_teacher_forcing.py [--rounds 7] [--sizes 50:32:128 200:32:128 ...]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch

import rnnlab
from rnnlab.layers.output_recurrent import OutputRecurrentRNN

I, O = 16, 16
DEFAULT_SIZES = ["50:32:128", "200:32:128", "1000:16:64", "1000:32:128", "1000:64:256"]
METHODS = ("one pass", "step loop, autograd", "step loop, hand-written BPTT")


def build(H: int, dtype) -> dict:
    """The three layers, the same function: OutputRecurrentRNN under two engines, and the
    output-feedback RNN with V = 0 and its recurrent bias 0."""
    torch.manual_seed(0)
    ours = OutputRecurrentRNN(I, H, O, init="torch", dtype=dtype)
    ref = rnnlab.OutputFeedbackRNN(I, H, O, engine="bptt", dtype=dtype)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(getattr(ours, name) if hasattr(ours, name) else torch.zeros_like(p))
    ref.weight_hh_l0.requires_grad_(False)
    ref.bias_hh_l0.requires_grad_(False)
    loop = OutputRecurrentRNN(I, H, O, engine="loop", dtype=dtype)
    loop.load_state_dict(ours.state_dict())
    ours.engine = "bptt"
    return {"one pass": ours, "step loop, autograd": loop, "step loop, hand-written BPTT": ref}


def step(layer, x, teacher, target):
    """Forward and backward of one batch; the gradients of U, W, W_hy, b, b_y."""
    layer.zero_grad(set_to_none=True)
    out, _ = layer(x, teacher=teacher)
    ((out - target) ** 2).sum().backward()
    return [getattr(layer, n).grad for n in ("weight_ih_l0", "weight_yh_l0", "weight_hy_l0",
                                             "bias_ih_l0", "bias_hy_l0")]


def batch(T: int, B: int, dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=g, dtype=dtype)
    y = torch.randn(T + 1, B, O, generator=g, dtype=dtype)          # the true outputs y*_0 .. y*_T
    return x, y[:-1], y[1:]                                           # inputs, y*_{t-1}, targets


def gradient_difference(T: int, B: int, H: int, dtype) -> float:
    layers = build(H, dtype)
    x, teacher, target = batch(T, B, dtype)
    ref = step(layers["step loop, autograd"], x, teacher, target)
    got = step(layers["one pass"], x, teacher, target)
    scale = max(float(r.abs().max()) for r in ref)
    return max(float((a - r).abs().max()) for a, r in zip(got, ref)) / scale


def timed(layer, x, teacher, target, least: float = 0.05) -> float:
    """Seconds per batch: back-to-back batches averaged over at least ``least`` seconds."""
    n, t0 = 0, time.perf_counter()
    while True:
        step(layer, x, teacher, target)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= least:
            return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, metavar="T:B:H")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"rnnlab {rnnlab.__version__}, torch {torch.__version__}, 1 thread, float32, I = O = {I}; "
          f"medians of {args.rounds} rounds")
    print("command: python " + " ".join(sys.argv))
    rows = []
    for size in args.sizes:
        T, B, H = (int(v) for v in size.split(":"))
        layers = build(H, torch.float32)
        x, teacher, target = batch(T, B, torch.float32)
        for layer in layers.values():                                 # warm-up
            timed(layer, x, teacher, target)
        times = {m: [] for m in METHODS}
        order = list(METHODS)
        rng = random.Random(T * 7919 + B * 31 + H)
        for _ in range(args.rounds):
            rng.shuffle(order)
            for m in order:
                times[m].append(timed(layers[m], x, teacher, target))
        med = {m: statistics.median(v) for m, v in times.items()}
        d32 = gradient_difference(T, B, H, torch.float32)
        d64 = gradient_difference(T, B, H, torch.float64)
        rows.append((T, B, H, med, d32, d64))
        print(f"T={T} B={B} H={H}: " + ", ".join(f"{m} {1e3 * med[m]:.2f} ms" for m in METHODS),
              flush=True)
    print()
    print("| T | B | H | one pass (ms) | step loop, autograd (ms) | step loop, hand-written BPTT (ms) "
          "| speed-up vs autograd loop | vs hand-written loop | max grad diff f32 | f64 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for T, B, H, med, d32, d64 in rows:
        one = med["one pass"]
        print(f"| {T} | {B} | {H} | {1e3 * one:.2f} | {1e3 * med['step loop, autograd']:.2f} | "
              f"{1e3 * med['step loop, hand-written BPTT']:.2f} | "
              f"{med['step loop, autograd'] / one:.1f}x | {med['step loop, hand-written BPTT'] / one:.1f}x | "
              f"{d32:.1e} | {d64:.1e} |")


if __name__ == "__main__":
    main()
