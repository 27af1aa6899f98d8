"""Where compiling the compiled engine adds time: its two operators against the eager engine's run.

The compiled engine runs the same C++ run eagerly (``CompiledFunction``) and under torch.compile
(the operators ``rnnlab::compiled_forward`` / ``compiled_backward``, rnnlab/engines/compiled.py).
This times, for one LSTM (B/I/H, T steps, float32, no read-out, no dynamo), per call:

- ``run``: the eager engine's forward (the C++ run built and its forward loop), no gradients;
- ``operator``: the forward operator called through torch's dispatcher, no gradients;
- ``run + backward``: the eager forward and backward on the same run (dL/dh given);
- ``operators``: the forward operator, then the backward operator on what it returned;
- ``operators, gates copied``: the same with the sequences the backward overwrites copied first
  (what the backward operator did before it ran in place);

and, apart, torch's own cost of a compiled call: ``torch.compile`` of a model of one nn.Linear
(I -> 1, the benchmark's read-out on the same input) against it eager, a training step and an
evaluation forward. Every round runs each call once in a fresh random order; figures are medians
over the rounds of one call's time (ms).

    python benchmarks/compile_parts.py [--size 16/64/128] [--steps 50] [--rounds 400]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import rnnlab
from rnnlab.engines import compiled as ce


def medians(calls: dict, rounds: int) -> dict:
    """ms per call of each of ``calls``, the median over ``rounds`` rounds in random order."""
    times = {k: [] for k in calls}
    keys = list(calls)
    for f in calls.values():
        f(), f()  # warm-up (and compilation)
    clock = time.perf_counter
    for _ in range(rounds):
        random.shuffle(keys)
        for k in keys:
            t0 = clock()
            calls[k]()
            times[k].append(clock() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="16/64/128", help="B/I/H")
    ap.add_argument("--steps", type=int, default=50, help="T")
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args()
    B, I, H = map(int, args.size.split("/"))
    T = args.steps
    torch.manual_seed(0)
    if not ce.compiled_available():
        raise SystemExit(f"the compiled engine cannot run here: {ce.compiled_broken()}")
    layer = rnnlab.LSTM(I, H, engine="compiled")
    cell, p = layer.cells[0], layer.cell_params(0)
    spec, names, params = ce._spec(cell), ",".join(p), list(p.values())
    cfg = ce._config(spec)
    x, state0 = torch.randn(T, B, I), [torch.zeros(B, H), torch.zeros(B, H)]
    dh = torch.randn(T, B, H)
    n_state = len(state0)

    def run():
        ce._run(cfg, p, x, state0, None).forward()

    def operator():
        ce.compiled_forward(spec, names, x, state0, params, None, [])

    def run_backward():
        r = ce._run(cfg, p, x, state0, None)
        r.forward()
        ce._gradients(r, [dh, None], x, p, False)

    def operators(copy=False):
        saved = ce.compiled_forward(spec, names, x, state0, params, None, [])
        if copy:
            saved = saved[:n_state] + [s.clone() for s in saved[n_state:]]
        ce.compiled_backward(spec, names, x, state0, params, None, [], saved, [dh, None], False)

    lin = torch.nn.Linear(I, 1)
    compiled_lin = torch.compile(lin)

    def step(m):
        def f():
            lin.zero_grad(set_to_none=True)
            m(x).sum().backward()
        return f

    def forward(m):
        def f():
            with torch.no_grad():
                m(x)
        return f

    with torch.no_grad():
        calls = {"run": run, "operator": operator, "run + backward": run_backward,
                 "operators": operators, "operators, gates copied": lambda: operators(True)}
        t = medians(calls, args.rounds)
    floor = medians({"eager train": step(lin), "compiled train": step(compiled_lin),
                     "eager eval": forward(lin), "compiled eval": forward(compiled_lin)}, args.rounds)
    print(f"LSTM B/I/H {args.size}, T {T}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"medians of {args.rounds} rounds (ms per call)")
    print("| part | ms | against |")
    print("|---|---|---|")
    print(f"| forward: eager run | {t['run']:.3f} | |")
    print(f"| forward: operator | {t['operator']:.3f} | +{t['operator'] - t['run']:.3f} over the run |")
    print(f"| forward + backward: eager run | {t['run + backward']:.3f} | |")
    print(f"| forward + backward: operators | {t['operators']:.3f} | "
          f"+{t['operators'] - t['run + backward']:.3f} over the run |")
    print(f"| forward + backward: operators, gates copied first | {t['operators, gates copied']:.3f} | "
          f"+{t['operators, gates copied'] - t['operators']:.3f} over the operators |")
    for mode in ("train", "eval"):
        e, c = floor[f"eager {mode}"], floor[f"compiled {mode}"]
        print(f"| floor, nn.Linear {mode}: eager / compiled | {e:.3f} / {c:.3f} | +{c - e:.3f} compiled |")


if __name__ == "__main__":
    main()
