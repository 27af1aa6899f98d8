"""Engines that run a cell over time: ``native``, ``compiled``, ``bptt`` and ``loop``; ``auto`` picks one."""
from __future__ import annotations

from .bptt import BPTTFunction, run_bptt
from .compiled import compiled_broken, compiled_layer_unsupported, compiled_unsupported, run_compiled
from .loop import run_loop
from .native import native_is_fastest, native_unsupported, run_native

ENGINES = ("auto", "native", "compiled", "bptt", "loop")
RUNNERS = {"compiled": run_compiled, "bptt": run_bptt, "loop": run_loop}


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {name!r}")
    return name


__all__ = ["ENGINES", "RUNNERS", "BPTTFunction", "check_engine", "compiled_broken",
           "compiled_layer_unsupported", "compiled_unsupported", "run_compiled", "native_is_fastest", "native_unsupported",
           "run_bptt", "run_loop", "run_native"]
