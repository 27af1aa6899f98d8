"""Where one training step of the ``compiled`` engine spends its time, per cell.

One step is what ``rnnlab bench`` times (rnnlab/bench.py ``training_step``): zero the gradients,
run the layer over a (T, B, I) batch, backpropagate the sum of its outputs. Its parts, each timed
alone on the same tensors, in the same process, interleaved round by round (medians):

- C++ forward / C++ backward: the two time loops (a ``Run`` of csrc/ with its buffers; the
  backward timed as forward and backward less the forward);
- input projection: xw = X W_ih^T, one product for all steps;
- weight gradients: the products the backward hands back (dW_hh = sum_t dz_t^T h_{t-1}, the
  cell's others) and dW_ih;
- the rest: the step minus those parts (autograd, the layer's and the engine's Python, the
  loss, allocations).

The scale column is the step time at which the cell would run at torch.nn.LSTM's speed for its
matrix arithmetic (benchmarks/compiled_engine.py ``matrix_work``), measured in the same run.

    python benchmarks/compiled_profile.py [--size small] [--rounds 7] [cells ...]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch

from rnnlab.bench import CONFIGS, SIZES
from rnnlab.engines import compiled as C
from rnnlab.linalg import mm, outer_sum

from compiled_engine import matrix_work


def per_call(f, n: int) -> float:
    """Seconds per call of f, over n back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n


def parts_of(config, x: torch.Tensor, H: int) -> dict:
    """name -> callable for the step and each of its parts (see the module docstring)."""
    T, B, I = x.shape
    layer = config.layer(I, H, engine="compiled", **config.options)
    cell, p = layer.cells[0], layer.cell_params(0)
    cfg, why = C._configure(cell, p, x)
    assert why is None, why
    state0 = [x.new_zeros(B, s) for s in cell.state_sizes]
    d = [torch.ones(T, B, s) for s in cell.state_sizes]
    x2 = x.reshape(T * B, I)
    with torch.no_grad():
        xw0 = mm(x2, p["weight_ih"].t()).view(T, B, -1)
        run = C._ops().Run(cfg, p, x, xw0.clone(), state0, None, [])
        run.forward()
        d_xw, _, entries = run.backward(d)

    def step():
        layer.zero_grad(set_to_none=True)
        layer(x)[0].sum().backward()

    def copy():
        xw0.clone()

    def forward():  # a Run (its buffers) and its forward loop
        C._ops().Run(cfg, p, x, xw0.clone(), state0, None, []).forward()

    def forward_backward():
        r = C._ops().Run(cfg, p, x, xw0.clone(), state0, None, [])
        r.forward()
        r.backward(d)

    def projection():
        mm(x2, p["weight_ih"].t())

    def weight_grads():  # the products of the backward's entries, and dW_ih
        outer_sum(d_xw, x)
        for _, g, a in entries:
            if a is not None:
                outer_sum(g, a)

    def no_grad(f):
        def g():
            with torch.no_grad():
                f()
        return g

    return {"step": step, "copy": no_grad(copy), "C++ forward": no_grad(forward),
            "C++ forward+backward": no_grad(forward_backward), "input projection": no_grad(projection),
            "weight gradients": no_grad(weight_grads)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cells", nargs="*", help="bench labels (default: every cell but the LSTM variants)")
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=10, help="calls per timing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if C.compiled_broken():
        raise SystemExit(f"the compiled engine cannot run here: {C.compiled_broken()}")
    B, I, H = SIZES[args.size]
    T = 100
    torch.manual_seed(0)
    x = torch.randn(T, B, I)
    labels = args.cells or [c.label for c in CONFIGS if c.label == "lstm" or not c.label.startswith("lstm")]
    configs = [next(c for c in CONFIGS if c.label == label) for label in labels]
    lstm = torch.nn.LSTM(I, H)

    def lstm_step():
        lstm.zero_grad(set_to_none=True)
        lstm(x)[0].sum().backward()

    runs = [("torch.nn.LSTM", "step", lstm_step)]
    for c in configs:
        runs += [(c.label, name, f) for name, f in parts_of(c, x, H).items()]
    for _, _, f in runs:  # warm-up
        f(), f()
    times = {(label, name): [] for label, name, _ in runs}
    order = random.Random(0)
    for _ in range(args.rounds):
        ks = list(range(len(runs)))
        order.shuffle(ks)
        for k in ks:
            label, name, f = runs[k]
            times[(label, name)].append(per_call(f, args.calls))
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    lstm_us = med[("torch.nn.LSTM", "step")]
    print("$ python " + " ".join(sys.argv))
    print(f"{args.size}: T={T} B={B} I={I} H={H}, 1 thread, medians over {args.rounds} rounds of "
          f"{args.calls} calls, microseconds; torch.nn.LSTM step {lstm_us:.0f} us\n")
    cols = ["C++ forward", "C++ backward", "input projection", "weight gradients"]
    print("| cell | step | at 1.0x scaled | " + " | ".join(cols) + " | the rest |")
    print("|---|---:|---:|" + "---:|" * (len(cols) + 1))
    for c in configs:
        m = {name: med[(c.label, name)] for name in ("step", "copy", "C++ forward+backward", *cols[:1], *cols[2:])}
        m["C++ forward"] -= m["copy"]  # each loop timing copies xw first
        m["C++ backward"] = m["C++ forward+backward"] - m["copy"] - m["C++ forward"]
        rest = m["step"] - sum(m[k] for k in cols)
        scale = matrix_work(c.label, I, H) / matrix_work("lstm", I, H)
        print(f"| {c.label} | {m['step']:.0f} | {lstm_us * scale:.0f} | "
              + " | ".join(f"{m[k]:.0f}" for k in cols) + f" | {rest:.0f} |")


if __name__ == "__main__":
    main()
