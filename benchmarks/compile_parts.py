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

Then whole models, a training step each, every timed step right after an untimed eager step of
another model of the same layer (so the caches are as a training step leaves them, where the
calls above find them warmer): the layer with a read-out (H -> 1) eager and compiled; the same
model compiled with its forward calling the operator directly (no code of the layer traced, so
dynamo's guards hold the parameters and little more); the read-out alone, eager and compiled.

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


def medians(calls: dict, rounds: int, before=None) -> dict:
    """ms per call of each of ``calls``, the median over ``rounds`` rounds in random order;
    ``before``: run, untimed, before every timed call."""
    times = {k: [] for k in calls}
    keys = list(calls)
    for f in calls.values():
        f(), f()  # warm-up (and compilation)
    clock = time.perf_counter
    for _ in range(rounds):
        random.shuffle(keys)
        for k in keys:
            if before is not None:
                before()
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

    # whole models, each training step after an eager step of another model of the same layer
    model, other = LayerModel(I, H), LayerModel(I, H)
    direct = OperatorModel(model)
    readout = torch.nn.Linear(I, 1)
    models = {"layer eager": (model, model), "layer compiled": (model, torch.compile(model)),
              "operator compiled": (model, torch.compile(direct)),
              "read-out eager": (readout, readout), "read-out compiled": (readout, torch.compile(readout))}
    whole = medians({k: train(*v, x) for k, v in models.items()}, args.rounds, before=train(other, other, x))

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
    print(f"| forward: operator | {t['operator']:.3f} | {t['operator'] - t['run']:+.3f} over the run |")
    print(f"| forward + backward: eager run | {t['run + backward']:.3f} | |")
    print(f"| forward + backward: operators | {t['operators']:.3f} | "
          f"{t['operators'] - t['run + backward']:+.3f} over the run |")
    print(f"| forward + backward: operators, gates copied first | {t['operators, gates copied']:.3f} | "
          f"{t['operators, gates copied'] - t['operators']:+.3f} over the operators |")
    for mode in ("train", "eval"):
        e, c = floor[f"eager {mode}"], floor[f"compiled {mode}"]
        print(f"| floor, nn.Linear {mode}: eager / compiled | {e:.3f} / {c:.3f} | {c - e:+.3f} compiled |")
    print()
    print("| training step, after an eager step of another model of the layer | eager ms | compiled ms "
          "| compiled - eager ms | compiled / eager |")
    print("|---|---|---|---|---|")
    e = whole["layer eager"]
    for name, k in (("the layer and a read-out", "layer compiled"),
                    ("the same, its forward calling the operator directly", "operator compiled")):
        print(f"| {name} | {e:.3f} | {whole[k]:.3f} | {whole[k] - e:+.3f} | {whole[k] / e:.2f} |")
    e, c = whole["read-out eager"], whole["read-out compiled"]
    print(f"| the read-out alone (torch's own cost) | {e:.3f} | {c:.3f} | {c - e:+.3f} | {c / e:.2f} |")


class LayerModel(torch.nn.Module):
    """A compiled-engine LSTM and a read-out H -> 1."""

    def __init__(self, I, H):
        super().__init__()
        self.rnn, self.out = rnnlab.LSTM(I, H, engine="compiled"), torch.nn.Linear(H, 1)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


class OperatorModel(torch.nn.Module):
    """``model``'s layer and read-out, its forward the compiled engine's forward operator called
    directly (zero initial states): what dynamo traces of the layer, the operator alone."""

    def __init__(self, model: LayerModel):
        super().__init__()
        self.rnn, self.out = model.rnn, model.out
        self.attrs = self.rnn._param_names[0]  # {name in the cell: the layer's attribute}
        self.spec, self.names = ce._spec(self.rnn.cells[0]), ",".join(self.attrs)

    def forward(self, x):
        h0 = x.new_zeros(x.shape[1], self.rnn.hidden_size)
        params = [getattr(self.rnn, a) for a in self.attrs.values()]
        return self.out(ce.compiled_forward(self.spec, self.names, x, [h0, h0], params, None, [])[0])


def train(model, m, x):
    """A training step of ``m`` (``model`` or its compiled form): forward, backward of the sum."""
    def f():
        model.zero_grad(set_to_none=True)
        m(x).sum().backward()
    return f


if __name__ == "__main__":
    main()
