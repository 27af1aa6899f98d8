"""torch.compile of a model holding an rnnlab LSTM against the same model eager, on every engine.

A one-layer LSTM (B, I, H) over T steps and a linear read-out; for each engine the model eager and
``torch.compile(model)`` (default backend; the layer runs its own engine under compilation, but
``scan``, which runs ``loop`` there: rnnlab/layers/recurrent_layer.py ``resolve_engine``). Two measurements: a training step (forward,
backward of the summed outputs) and an evaluation forward (no gradients). Each engine runs in a
process of its own, where every round times its eager model twice and its compiled model once,
in both modes, in a fresh random order, each timing at least 50 ms of back-to-back calls; figures
are medians over the rounds, and the ratio is compiled time over eager time in the same process
(below 1: compiled faster), beside the eager model's second timing over its first: the same work,
what the machine's drift alone makes of a ratio. The first compiled call's time (compilation) is reported apart. Each
engine's process also times torch's own cost of a compiled call, in the same rounds: a model of
the read-out alone (class ``ReadOut``, a code object of its own), compiled less eager; the
table sets the layer's model's compiled-less-eager time beside it. (In one
process, the engines' models would share dynamo's caches of compiled frames, one per code object,
the model's forward and the layer's, and each engine's ratio would depend on the others:
docs/benchmarks/compile.md.)
Beside the engines, two floors: the read-out alone (``nn.Linear``) and torch.nn.LSTM with the
read-out (``nn.LSTM``), what compiling adds to a call whatever the model.

    python benchmarks/compile.py [--size 16/64/128] [--steps 50] [--rounds 5] [--engines ...]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time

import torch

import rnnlab
from rnnlab.bench import MIN_TIMING


#: torch's own cost of a compiled call, measured beside the engines: a model of the read-out alone,
#: and one holding torch.nn.LSTM (of which torch 2.13's dynamo compiles nothing: it runs eagerly)
FLOORS = ("nn.Linear", "nn.LSTM")


class Model(torch.nn.Module):
    def __init__(self, I, H, engine):
        super().__init__()
        if engine == "nn.Linear":
            self.rnn, self.out = None, torch.nn.Linear(I, 1)
        else:
            self.rnn = torch.nn.LSTM(I, H) if engine == "nn.LSTM" else rnnlab.LSTM(I, H, engine=engine)
            self.out = torch.nn.Linear(H, 1)

    def forward(self, x):
        return self.out(x if self.rnn is None else self.rnn(x)[0])


class ReadOut(torch.nn.Module):
    """The read-out alone on the input, x W^T + b: torch's own cost of a compiled call, timed in
    each engine's process beside its model (a class, so a code object, of its own: dynamo's cache
    of the layer's model is not touched)."""

    def __init__(self, I):
        super().__init__()
        self.out = torch.nn.Linear(I, 1)

    def forward(self, x):
        return self.out(x)


def timing(fn) -> float:
    """Seconds per call of ``fn``, over back-to-back calls lasting at least MIN_TIMING."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= MIN_TIMING:
            return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="16/64/128", help="B/I/H")
    ap.add_argument("--steps", type=int, default=50, help="T")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-call", type=int, default=0, metavar="N",
                    help="instead of timed blocks: N rounds of one call of each, in a fresh random "
                         "order, medians of the single calls (steadier on a busy machine)")
    ap.add_argument("--engines", nargs="+", default=["native", "compiled", "bptt", "loop", *FLOORS],
                    help="rnnlab engines, and the floors: nn.Linear (the read-out alone) and nn.LSTM "
                         "(torch's LSTM and the read-out), torch's own cost of a compiled call")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        rows = {}
        for engine in args.engines:
            command = [sys.executable, __file__, "--child", "--size", args.size, "--steps", str(args.steps),
                       "--rounds", str(args.rounds), "--per-call", str(args.per_call), "--engines", engine]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.update(json.loads(out.strip().split("\n")[-1]))
        report(args, rows)
        return
    B, I, H = map(int, args.size.split("/"))
    torch.manual_seed(0)
    x = torch.randn(args.steps, B, I)
    calls, first, failed = {}, {}, {}
    floor = ["floor"] if any(e != "nn.Linear" for e in args.engines) else []
    for engine in [*args.engines, *floor]:
        model = ReadOut(I) if engine == "floor" else Model(I, H, engine)
        compiled = torch.compile(model)
        for name, m in (("eager", model), ("compiled", compiled)):
            if engine in failed:
                break
            def train(m=m, model=model):
                model.zero_grad(set_to_none=True)
                m(x).sum().backward()

            def evaluate(m=m):
                with torch.no_grad():
                    m(x)
            for mode, fn in (("train", train), ("eval", evaluate)):
                t0 = time.perf_counter()
                try:
                    fn()  # warm-up (the compiled model compiles here)
                except Exception as e:  # reported in the table, the other engines measured
                    failed[engine] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:120]}"
                    break
                first[engine, name, mode] = time.perf_counter() - t0
                calls[engine, name, mode] = fn
                if name == "eager":  # timed twice: what drift alone makes of a ratio
                    calls[engine, "eager again", mode] = fn
        for key in [k for k in calls if k[0] in failed]:
            del calls[key]
    times = {k: [] for k in calls}
    keys = list(calls)
    for _ in range(args.per_call or args.rounds):
        random.shuffle(keys)
        for k in keys:
            if args.per_call:
                t0 = time.perf_counter()
                calls[k]()
                times[k].append(time.perf_counter() - t0)
            else:
                times[k].append(timing(calls[k]))
    rows = {}
    for engine in args.engines:
        if engine in failed:
            rows[engine] = failed[engine]
            continue
        for mode in ("train", "eval"):
            rows[f"{engine} {mode}"] = [statistics.median(times[engine, name, mode]) * 1e3
                                        for name in ("eager", "compiled", "eager again")] + [first[engine, "compiled", mode]]
            if floor and engine != "nn.Linear":  # torch's own cost of a compiled call, this process
                rows[f"{engine} {mode}"].append(statistics.median(times["floor", "compiled", mode]) * 1e3
                                                - statistics.median(times["floor", "eager", mode]) * 1e3)
    print(json.dumps(rows))


def report(args, rows) -> None:
    """The table of the engines' figures: {"engine mode": [eager ms, compiled ms, eager ms timed
    again, first call s(, torch's own cost of a compiled call ms)]}, or {engine: why it failed}."""
    print(f"LSTM B/I/H {args.size}, T {args.steps}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, medians of "
          f"{f'{args.per_call} single calls' if args.per_call else f'{args.rounds} rounds'} (ms per call)")
    print("| engine | mode | eager ms | compiled ms | compiled / eager | eager again / eager "
          "| compiled - eager ms | torch's own cost ms | first compiled call s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine in args.engines:
        if engine in rows:
            print(f"| {engine} | | | fails under compile: {rows[engine]} | | | | | |")
            continue
        for mode in ("train", "eval"):
            e, c, again, first, *own = rows[f"{engine} {mode}"]
            own = f"{own[0]:.3f}" if own else ""
            print(f"| {engine} | {mode} | {e:.2f} | {c:.2f} | {c / e:.2f} | {again / e:.2f} | {c - e:.3f} "
                  f"| {own} | {first:.1f} |")


if __name__ == "__main__":
    main()
