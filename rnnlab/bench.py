"""``rnnlab bench``: training throughput and peak memory of every cell under every engine.

Each measurement is one training step, forward and backward, of one layer over T steps of a
(T, B, I) batch, reported as tokens per second (T * B / seconds). The references, torch.nn.LSTM,
torch.nn.GRU, torch.nn.RNN and a Python loop of torch.nn.LSTMCell, are measured in the same run,
interleaved with rnnlab's measurements round by round, so that the ratios compare like with like
on a noisy machine: each round runs every measurement once, in a fresh random order, a fast one
as several back-to-back steps averaged (at least 50 ms). Every figure is the median over the
rounds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from . import layers as L

SIZES = {"small": (16, 64, 128), "medium": (32, 128, 256), "large": (64, 512, 512)}


@dataclasses.dataclass(frozen=True)
class Config:
    """One cell configuration to measure: a label, its layer class and options."""
    label: str
    layer: type
    options: dict
    reference: Optional[str] = None  # the torch.nn module computing the same thing


CONFIGS = [
    Config("lstm", L.LSTM, {}, "torch.nn.LSTM"),
    Config("lstm peephole=diagonal", L.LSTM, {"peephole": "diagonal"}),
    Config("lstm peephole=full", L.LSTM, {"peephole": "full"}),
    Config("lstm forget_gate=False", L.LSTM, {"forget_gate": False}),
    Config("gru", L.GRU, {}, "torch.nn.GRU"),
    Config("gru reset_after=False", L.GRU, {"reset_after": False}),
    Config("rnn tanh", L.RNN, {}, "torch.nn.RNN"),
    Config("rnn relu", L.RNN, {"nonlinearity": "relu"}, "torch.nn.RNN relu"),
    Config("rnn sigmoid", L.RNN, {"nonlinearity": "sigmoid"}),
    Config("leaky rnn learned", L.LeakyRNN, {"leak_mode": "learned"}),
    Config("residual rnn", L.ResidualRNN, {}),
    Config("residual rnn gated", L.ResidualRNN, {"gated": True}),
    Config("deep transition depth=2", L.DeepTransitionRNN, {"depth": 2}),
    Config("output feedback", L.OutputFeedbackRNN, {"output_size": 32}),
]

REFERENCES: Dict[str, Callable[[int, int], nn.Module]] = {
    "torch.nn.LSTM": lambda I, H: nn.LSTM(I, H),
    "torch.nn.GRU": lambda I, H: nn.GRU(I, H),
    "torch.nn.RNN": lambda I, H: nn.RNN(I, H),
    "torch.nn.RNN relu": lambda I, H: nn.RNN(I, H, nonlinearity="relu"),
}


class LSTMCellLoop(nn.Module):
    """The usual hand-rolled layer: a Python loop of torch.nn.LSTMCell under autograd."""

    def __init__(self, I: int, H: int):
        super().__init__()
        self.cell = nn.LSTMCell(I, H)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[1], self.cell.hidden_size)
        outs = []
        for x_t in x:
            h, c = self.cell(x_t, (h, c))
            outs.append(h)
        return torch.stack(outs), (h, c)


REFERENCES["loop of torch.nn.LSTMCell"] = LSTMCellLoop


def training_step(module: nn.Module, x: torch.Tensor) -> None:
    """Forward and backward of a sum-of-outputs loss."""
    out = module(x)[0]
    out.sum().backward()


#: each timing spans at least this long (short steps are repeated and averaged), so that the
#: scheduler's and the caches' jitter is small against it
MIN_TIMING = 0.05


def time_once(module: nn.Module, x: torch.Tensor, steps: int = 1) -> float:
    """Seconds per training step, averaged over ``steps`` back-to-back steps."""
    t0 = time.perf_counter()
    for _ in range(steps):
        module.zero_grad(set_to_none=True)
        training_step(module, x)
    return (time.perf_counter() - t0) / steps


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 for a moment: torch's profiler logs a line to it at every start
    and stop, which would bury the bench's own progress."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(module: nn.Module, x: torch.Tensor) -> float:
    """Peak bytes allocated during one training step above what was allocated before it (CPU:
    torch's profiler's allocation events; CUDA: the allocator's peak)."""
    module.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        training_step(module, x)
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        training_step(module, x)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return float(peak)


def engines_for(layer: nn.Module, engines: Sequence[str]) -> List[str]:
    """The requested engines this layer supports (``native`` only where torch has the kernel)."""
    out = []
    for e in engines:
        layer.engine = e
        try:
            layer.resolve_engine()
        except ValueError:
            continue
        out.append(e)
    return out


def run_bench(sizes: Sequence[str] = ("small", "medium", "large"), steps: int = 100,
              repeats: int = 7, configs: Optional[Sequence[str]] = None,
              engines: Sequence[str] = ("auto", "native", "compiled", "bptt", "loop"), memory: bool = True,
              dtype: torch.dtype = torch.float32, device: str = "cpu",
              progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """Measure every configuration; returns one row per (size, name, engine)."""
    chosen = [c for c in CONFIGS if configs is None or c.label in configs]
    rows = []
    for size in sizes:
        B, I, H = SIZES[size]
        torch.manual_seed(0)
        x = torch.randn(steps, B, I, dtype=dtype, device=device)
        runs = []  # (name, engine, module, reference)
        for name, make in REFERENCES.items():
            runs.append((name, "torch", make(I, H).to(device, dtype), None))
        for c in chosen:
            layer = c.layer(I, H, **c.options).to(device, dtype)
            for e in engines_for(layer, engines):
                m = c.layer(I, H, engine=e, **c.options).to(device, dtype)
                runs.append((c.label, e, m, c.reference))
        if progress:
            progress(f"{size}: B={B} I={I} H={H} T={steps}, {len(runs)} runs x {repeats} rounds")
        inner = []  # warm-up, and how many steps make one timing of each run
        for _, _, m, _ in runs:
            time_once(m, x)
            inner.append(max(1, round(MIN_TIMING / time_once(m, x))))
        times = [[] for _ in runs]
        order = random.Random(0)
        for r in range(repeats):  # every run once a round, in a new order each round, so that
            ks = list(range(len(runs)))  # neither drift nor a place in the round favours any
            order.shuffle(ks)
            for k in ks:
                times[k].append(time_once(runs[k][2], x, inner[k]))
        for (name, engine, m, ref), ts in zip(runs, times):
            med = statistics.median(ts)
            row = {"size": size, "B": B, "I": I, "H": H, "T": steps, "name": name,
                   "engine": engine, "ran": getattr(m, "last_engine", None) or engine,
                   "seconds": med, "tokens_per_s": steps * B / med, "reference": ref}
            if memory:
                row["peak_bytes"] = peak_memory(m, x)
            rows.append(row)
        by = {(r["name"], r["engine"]): r for r in rows if r["size"] == size}
        for r in rows:
            if r["size"] != size:
                continue
            if r["reference"]:
                r["vs_reference"] = r["tokens_per_s"] / by[(r["reference"], "torch")]["tokens_per_s"]
            r["vs_torch_lstm"] = r["tokens_per_s"] / by[("torch.nn.LSTM", "torch")]["tokens_per_s"]
            loop = by.get((r["name"], "loop"))
            if loop and r["engine"] != "loop":
                r["vs_loop"] = r["tokens_per_s"] / loop["tokens_per_s"]
                if memory:
                    r["memory_vs_loop"] = r["peak_bytes"] / loop["peak_bytes"]
    return rows


def format_table(rows: List[dict]) -> str:
    """A Markdown table per size."""
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        rs = [r for r in rows if r["size"] == size]
        r0 = rs[0]
        out.append(f"\n### {size}: T={r0['T']} B={r0['B']} I={r0['I']} H={r0['H']}\n")
        out.append("| cell | engine (ran) | tokens/s | vs torch.nn same cell | vs torch.nn.LSTM "
                   "| vs loop | peak MiB | memory vs loop |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rs:
            eng = r["engine"] if r["engine"] in ("torch", r["ran"]) else f"{r['engine']} ({r['ran']})"
            fmt = lambda k, f="{:.2f}x": f.format(r[k]) if k in r else ""
            mem = f"{r['peak_bytes'] / 2**20:.1f}" if "peak_bytes" in r else ""
            out.append(f"| {r['name']} | {eng} | {r['tokens_per_s']:,.0f} | {fmt('vs_reference')} "
                       f"| {fmt('vs_torch_lstm')} | {fmt('vs_loop')} | {mem} | {fmt('memory_vs_loop')} |")
    return "\n".join(out)


def save_json(rows: List[dict], path: str) -> None:
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)


# ------------------------------------------------------------------ auto against every engine
#: the grid ``rnnlab bench --auto`` measures, T = 100: the small, medium and large sizes and the
#: main job's (``rnnlab train``: embedding 64, LSTM 512, batch 32); ``lengths`` is the medium size
#: with every sequence its own length (uniform in [T/2, T], the longest T)
GRID = {"small": (16, 64, 128), "medium": (32, 128, 256), "main": (32, 64, 512),
        "large": (64, 512, 512), "lengths": (32, 128, 256)}
#: the cells ``--auto`` measures: label -> (rnnlab layer, the torch.nn module of the same cell)
AUTO_CELLS = {"lstm": (L.LSTM, nn.LSTM), "gru": (L.GRU, nn.GRU), "rnn": (L.RNN, nn.RNN)}
#: the engines ``auto`` chooses among (``loop`` is the oracle, never chosen)
AUTO_ENGINES = ("native", "compiled", "bptt")


class Packed(nn.Module):
    """A torch.nn recurrent module fed a padded batch as torch.nn takes it: packed by ``lengths``."""

    def __init__(self, module: nn.Module, lengths: torch.Tensor):
        super().__init__()
        self.module, self.lengths = module, lengths

    def forward(self, x):
        packed = nn.utils.rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
        out, h = self.module(packed)
        return out.data, h


class WithLengths(nn.Module):
    """An rnnlab layer fed a padded batch and its ``lengths``."""

    def __init__(self, layer: nn.Module, lengths: torch.Tensor):
        super().__init__()
        self.layer, self.lengths = layer, lengths

    @property
    def last_engine(self):
        return self.layer.last_engine

    def forward(self, x):
        return self.layer(x, lengths=self.lengths)


def run_auto_bench(points: Sequence[str] = tuple(GRID), steps: int = 100, repeats: int = 7,
                   cells: Sequence[str] = tuple(AUTO_CELLS), dtype: torch.dtype = torch.float32,
                   device: str = "cpu", progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """``auto`` against each engine that runs the cell and against torch.nn (on a PackedSequence
    for ``lengths``), training steps as :func:`run_bench` times them (rounds interleaved, medians);
    one row per (point, cell, engine) plus, on the ``auto`` row, ``vs_fastest_engine`` (auto's
    tokens/s over the fastest of native, compiled, bptt) and ``vs_torch``."""
    rows = []
    for point in points:
        B, I, H = GRID[point]
        torch.manual_seed(0)
        x = torch.randn(steps, B, I, dtype=dtype, device=device)
        lengths = None
        if point == "lengths":
            lengths = torch.randint(steps // 2, steps + 1, (B,), generator=torch.Generator().manual_seed(0))
            lengths[0] = steps
        tokens = steps * B if lengths is None else int(lengths.sum())
        for label in cells:
            layer_class, reference = AUTO_CELLS[label]
            runs = []  # (engine, module)
            torch_module = reference(I, H).to(device, dtype)
            runs.append(("torch.nn", torch_module if lengths is None else Packed(torch_module, lengths)))
            for e in ("auto",) + AUTO_ENGINES:
                layer = layer_class(I, H, engine=e).to(device, dtype)
                if e != "auto" and not engines_for(layer, [e]):
                    continue
                layer.engine = e
                runs.append((e, layer if lengths is None else WithLengths(layer, lengths)))
            if progress:
                progress(f"{point}: B={B} I={I} H={H} T={steps}{' lengths' if lengths is not None else ''}, "
                         f"{label}: {', '.join(e for e, _ in runs)} x {repeats} rounds")
            inner = []
            for _, m in runs:  # warm-up (auto measures its engines here), then the steps per timing
                time_once(m, x)
                inner.append(max(1, round(MIN_TIMING / time_once(m, x))))
            times = [[] for _ in runs]
            order = random.Random(0)
            for r in range(repeats):
                ks = list(range(len(runs)))
                order.shuffle(ks)
                for k in ks:
                    times[k].append(time_once(runs[k][1], x, inner[k]))
            group = []
            for (engine, m), ts in zip(runs, times):
                med = statistics.median(ts)
                group.append({"point": point, "B": B, "I": I, "H": H, "T": steps,
                              "lengths": lengths is not None, "cell": label, "engine": engine,
                              "ran": getattr(m, "last_engine", None) or engine, "seconds": med,
                              "tokens_per_s": tokens / med})
            by = {r["engine"]: r for r in group}
            best = max((r for r in group if r["engine"] in AUTO_ENGINES), key=lambda r: r["tokens_per_s"])
            by["auto"]["fastest_engine"] = best["engine"]
            by["auto"]["vs_fastest_engine"] = by["auto"]["tokens_per_s"] / best["tokens_per_s"]
            by["auto"]["vs_torch"] = by["auto"]["tokens_per_s"] / by["torch.nn"]["tokens_per_s"]
            rows += group
    return rows


def format_auto_table(rows: List[dict]) -> str:
    """One Markdown table: a line per (point, cell), tokens/s of every engine and auto's ratios."""
    out = ["| point (B/I/H) | cell | auto ran | auto | native | compiled | bptt | torch.nn "
           "| auto / fastest engine (which) | auto / torch.nn |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    groups: Dict[tuple, Dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["point"], r["cell"]), {})[r["engine"]] = r
    for (point, cell), by in groups.items():
        a = by["auto"]
        lengths = ", lengths; torch.nn on a PackedSequence" if a["lengths"] else ""
        where = f"{point} ({a['B']}/{a['I']}/{a['H']}, T={a['T']}{lengths})"
        tps = lambda e: f"{by[e]['tokens_per_s']:,.0f}" if e in by else "-"
        out.append(f"| {where} | {cell} | {a['ran']} | {tps('auto')} | {tps('native')} | {tps('compiled')} "
                   f"| {tps('bptt')} | {tps('torch.nn')} | {a['vs_fastest_engine']:.2f}x "
                   f"({a['fastest_engine']}) | {a['vs_torch']:.2f}x |")
    return "\n".join(out)
