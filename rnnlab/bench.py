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
