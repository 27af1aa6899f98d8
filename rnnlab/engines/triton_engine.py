r"""The ``triton`` engine: each cell's point-wise core as fused Triton kernels, for accelerators.

The ``bptt`` engine's time loops (:mod:`rnnlab.engines.bptt`: the products, their weight
gradients, every regularizer, lengths, given states) with the cell's core and its derivative each
run as ONE generated Triton kernel per step instead of a dozen torch operations:

    z_t = xw_t + W_hh (m * h_{t-1})         torch.matmul (cuBLAS on a GPU), as in bptt
    state_t, saved_t = core(z_t, ...)       one fused kernel, generated from the cell's core
    dz_t, dstate_{t-1} = core_backward(...) one fused kernel, generated from its derivative

The kernels are generated from the cells' own Python (:mod:`rnnlab.engines.triton_codegen`): the
core is traced to a graph of aten operations (``make_fx``) and its point-wise part written out as
Triton, one program per tile of (batch rows, units), every H-wide block of z a separate tile
value. So the equations live in one place, the cell's ``core``/``core_backward``; nothing here
knows any cell. What is not point-wise (the sums over the batch of a peephole's or a leak's
gradient, the layer normalisation of the LSTM's cell state) runs in torch around the kernel; a
core that forms a product itself (``mm``: full peepholes, the notes' GRU, the deep-transition and
output cells) runs as the cell's Python core, the products then through ``bptt``'s bookkeeping.

On a CUDA device the whole sequence's forward and backward are recorded once as CUDA graphs per
shape and replayed (:func:`run_triton`, ``torch.cuda.make_graphed_callables``): no Python per
step. Elsewhere (Triton's interpreter, ``TRITON_INTERPRET=1``, which runs the kernels on CPU
tensors for tests) the loop runs plainly. ``engine="triton"`` on a CPU tensor without the
interpreter is an error: Triton compiles for GPUs.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .bptt import run_bptt
from .call import Call


def interpreted() -> bool:
    """Whether Triton runs its kernels with its interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_unsupported(x: Optional[torch.Tensor] = None) -> Optional[str]:
    """Why ``engine="triton"`` cannot run on ``x``'s device here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "it needs the triton package (pip install triton; it comes with torch's CUDA builds)"
    if x is not None and x.device.type != "cuda" and not interpreted():
        return (f"Triton kernels run on a CUDA GPU, got a tensor on {x.device.type} "
                f"(on the CPU only under Triton's interpreter, TRITON_INTERPRET=1)")
    return None


@dataclass(frozen=True)
class FusedCore:
    """``cell`` with its core and derivative run as generated Triton kernels; every other
    attribute (sizes, products, options) is the cell's."""
    cell: object

    def __getattr__(self, name):
        return getattr(self.cell, name)

    @property
    def autograd_cell(self):
        """The cell whose Python core autograd follows (a second derivative recomputes with it)."""
        return self.cell

    @property
    def forms_products(self) -> bool:
        """Whether the core forms a product itself (``mm``): then it runs as the cell's Python."""
        return any(pr.inner for pr in self.cell.products)

    def core(self, p, z, u, state, mm):
        if self.forms_products:
            return self.cell.core(p, z, u, state, mm)
        from .triton_codegen import fused
        program = fused(self.cell, "core", p, (z, tuple(u), tuple(state)))
        new_state, saved = program(p, (z, tuple(u), tuple(state)))
        return new_state, saved

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        if self.forms_products:
            return self.cell.core_backward(p, saved, state, new_state, d_new, mm_grad)
        from .triton_codegen import fused
        args = (tuple(saved), tuple(state), tuple(new_state), tuple(d_new))
        return fused(self.cell, "core_backward", p, args)(p, args)


def run_triton(call: Call, x: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """Run ``call.cell`` over ``x`` (T, B, I) with fused Triton cores; same contract as
    :func:`rnnlab.engines.loop.run_loop`."""
    why = triton_unsupported(x)
    if why:
        raise ValueError(f"engine='triton' cannot run here: {why}; use engine='auto'")
    fused_call = dataclasses.replace(call, cell=FusedCore(call.cell))
    if x.is_cuda and not interpreted():
        from .cuda_graphs import run_graphed
        return run_graphed(run_bptt, fused_call, x, state0)
    return run_bptt(fused_call, x, state0)
