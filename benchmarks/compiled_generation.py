"""Generation speed of the ``compiled`` engine against ``bptt``: batch 1, one step per call.

Two levels, each the median over interleaved rounds of the per-round ratio:

- engine: the runner alone (``run_compiled`` / ``run_bptt`` on one (1, 1, I) step, the state fed
  back), what the engine itself costs per step;
- layer: ``layer(x_t, state)`` as generation calls it, the layer's own Python around the engine
  included (input checks, state formatting), the same for both engines;
- sample (the LSTM, GRU and RNN): a character language model (embedding, the layer, the output
  layer over 65 symbols) drawing symbols with :func:`rnnlab.decoding.sampling.generate`, what ``rnnlab sample``
  runs: the embedding, the output layer and the draw are the same for both engines.

    python benchmarks/compiled_generation.py [--steps 300] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnlab
from rnnlab.decoding.sampling import generate
from rnnlab.engines import run_bptt, run_compiled
from rnnlab.models.language_model import LanguageModel, LanguageModelConfig

CELL_OF = {rnnlab.LSTM: "lstm", rnnlab.GRU: "gru", rnnlab.RNN: "rnn"}
VOCAB = 65  # the characters of Tiny Shakespeare

CONFIGS = [("lstm", rnnlab.LSTM, {}), ("gru", rnnlab.GRU, {}), ("rnn tanh", rnnlab.RNN, {}),
           ("lstm peephole=diagonal", rnnlab.LSTM, {"peephole": "diagonal"}),
           ("leaky rnn learned", rnnlab.LeakyRNN, {"leak_mode": "learned"}),
           ("residual rnn gated", rnnlab.ResidualRNN, {"gated": True}),
           ("deep transition depth=2", rnnlab.DeepTransitionRNN, {"depth": 2}),
           ("output feedback", rnnlab.OutputFeedbackRNN, {"output_size": 32})]


def engine_step_time(runner, layer, steps: int) -> float:
    cell, p = layer.cells[0], layer.cell_params(0)
    x = torch.randn(1, 1, layer.input_size)
    state = cell.initial_state(1, x)
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(steps):
            state = tuple(s[-1] for s in runner(cell, p, x, state, None))
    return (time.perf_counter() - t0) / steps


def layer_step_time(engine: str, layer, steps: int) -> float:
    layer.engine = engine
    x = torch.randn(1, 1, layer.input_size)
    state = None
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(steps):
            _, state = layer(x, state)
    assert layer.last_engine == engine
    return (time.perf_counter() - t0) / steps


def sample_step_time(engine: str, model: LanguageModel, steps: int) -> float:
    model.rnn.engine = engine
    t0 = time.perf_counter()
    generate(model, [1, 2, 3], steps, seed=0)
    assert model.rnn.last_engine == engine
    return (time.perf_counter() - t0) / steps


def language_model(cls, options: dict, hidden: int) -> LanguageModel:
    return LanguageModel(LanguageModelConfig(vocab_size=VOCAB, embed_size=64, cell=CELL_OF[cls],
                                             hidden_size=hidden, cell_options=dict(options)).check())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"batch 1, I=64, H={args.hidden}, {args.steps} steps x {args.rounds} rounds, 1 thread; "
          f"medians of per-round ratios")
    print("| cell | level | bptt us/step | compiled us/step | speed-up |")
    print("|---|---|---:|---:|---:|")
    for name, cls, options in CONFIGS:
        layer = cls(64, args.hidden, **options)
        levels = [("engine", lambda e: engine_step_time(
                      {"bptt": run_bptt, "compiled": run_compiled}[e], layer, args.steps)),
                  ("layer", lambda e: layer_step_time(e, layer, args.steps))]
        if cls in CELL_OF:  # the language model's cells
            model = language_model(cls, options, args.hidden)
            levels.append(("sample", lambda e: sample_step_time(e, model, args.steps)))
        for level, timer in levels:
            timer("bptt"), timer("compiled")  # warm-up
            pairs = [(timer("bptt"), timer("compiled")) for _ in range(args.rounds)]
            b = statistics.median(p[0] for p in pairs)
            c = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[0] / p[1] for p in pairs)
            print(f"| {name} | {level} | {b * 1e6:.0f} | {c * 1e6:.0f} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
