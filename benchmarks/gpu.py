"""rnnlab on a CUDA GPU: training tokens/s of every cell under ``auto`` (torch's cuDNN kernel
where it has one, the fused ``triton`` engine elsewhere) and ``bptt``, beside torch.nn.LSTM/GRU
(cuDNN), at the ``rnnlab bench`` sizes plus H=1024; and generation at batch 1 (one step per call,
the state carried). Medians of --repeats timings, each synchronised.

    python benchmarks/gpu.py [--repeats 7] [--steps 100] [--json out.json]

It refuses with one line where torch sees no CUDA device: no GPU figure is ever made up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

SIZES = {"small": (16, 64, 128), "medium": (32, 128, 256), "large": (64, 512, 512),
         "H1024": (64, 512, 1024)}
REFERENCES = {"lstm": lambda I, H: nn.LSTM(I, H), "gru": lambda I, H: nn.GRU(I, H)}


def timed(fn, device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` synchronised runs (two warm-ups first: the
    first builds the kernels and records the CUDA graphs)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_step(module, x):
    module.zero_grad(set_to_none=True)
    module(x)[0].sum().backward()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=100, help="T, steps per sequence")
    ap.add_argument("--generate", type=int, default=200, help="steps generated at batch 1")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"benchmarks/gpu.py: no CUDA device (torch {torch.__version__}); it measures GPUs only",
              file=sys.stderr)
        return 2
    from rnnlab.bench import CONFIGS
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    print(f"device: {name}; torch {torch.__version__}; T={args.steps}; medians of {args.repeats}")
    rows = []
    for size, (B, I, H) in SIZES.items():
        x = torch.randn(args.steps, B, I, device=device)
        tokens = args.steps * B
        for config in CONFIGS:
            row = {"size": size, "B": B, "I": I, "H": H, "cell": config.label}
            for engine in ("auto", "bptt"):
                layer = config.layer(I, H, engine=engine, **config.options).to(device)
                row[f"{engine} tok/s"] = tokens / timed(lambda: train_step(layer, x), device, args.repeats)
                if engine == "auto":
                    row["auto ran"] = layer.last_engine
            base = config.label.split()[0]
            if base in REFERENCES and config.label == base:
                ref = REFERENCES[base](I, H).to(device)
                row["cuDNN tok/s"] = tokens / timed(lambda: train_step(ref, x), device, args.repeats)
            row["auto / bptt"] = row["auto tok/s"] / row["bptt tok/s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
        for config in CONFIGS:  # generation: batch 1, one step per call, no gradients
            layer = config.layer(I, H, **config.options).to(device)
            xs = torch.randn(args.generate, 1, 1, I, device=device)

            def generate():
                state = None
                with torch.no_grad():
                    for xt in xs:
                        _, state = layer(xt, state)
            sec = timed(generate, device, max(1, args.repeats // 2))
            row = {"size": size, "cell": config.label, "generation steps/s": args.generate / sec,
                   "auto ran": layer.last_engine}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
