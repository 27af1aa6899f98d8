"""Shared checks: a layer under one engine against another, gradcheck, and torch.nn."""
from __future__ import annotations

import torch

LENGTHS = torch.tensor([5, 2, 4])  # for T = 5, B = 3


def loss_of(out, h_n, states=None):
    """A loss that weighs every output and final state differently, so no gradient is trivial."""
    h_n = h_n if isinstance(h_n, tuple) else (h_n,)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sin().sum()
    for k, h in enumerate(h_n):
        loss = loss + ((k + 1) * h).tanh().sum() * 0.7
    for s in states or ():
        loss = loss + (s * 0.3).cos().sum()
    return loss


def run(layer, engine, x, hx, lengths, return_states=False):
    """Outputs and the gradients of ``loss_of`` w.r.t. input, initial states and every parameter."""
    layer.engine = engine
    res = layer(x, hx, lengths=lengths, return_states=return_states)
    assert layer.last_engine == engine
    values = [res[0]] + list(res[1] if isinstance(res[1], tuple) else (res[1],))
    if return_states:
        values += list(res[2])
    wrt = [x] + list(hx) + list(layer.parameters())
    grads = torch.autograd.grad(loss_of(*res), wrt, allow_unused=True)
    return values, grads


def make_inputs(layer, T=5, B=3, dtype=torch.float64):
    x = torch.randn(T, B, layer.input_size, dtype=dtype, requires_grad=True)
    D = 2 if layer.bidirectional else 1
    cell = layer.cells[0]
    hx = tuple((0.5 * torch.randn(layer.num_layers * D, B, s, dtype=dtype)).requires_grad_()
               for s in cell.state_sizes)
    return x, hx


def assert_engines_agree(layer, lengths=None, return_states=False, rtol=1e-7, atol=1e-9,
                         engines=("loop", "bptt")):
    """Values and gradients of ``engines[1]`` equal those of ``engines[0]`` (float64)."""
    x, hx = make_inputs(layer)
    ref_v, ref_g = run(layer, engines[0], x, hx, lengths, return_states)
    v, g = run(layer, engines[1], x, hx, lengths, return_states)
    names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    for name, a, b in zip(names, ref_g, g):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"grad {name}: {m}")


def gradcheck_layer(layer, lengths=None, T=3, B=2, engine="bptt"):
    """torch.autograd.gradcheck of ``engine`` w.r.t. input, states and parameters."""
    layer.engine = engine
    x, hx = make_inputs(layer, T=T, B=B)
    params = list(layer.parameters())
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *rest):
        hx_, ps = rest[:len(hx)], rest[len(hx):]
        out = torch.func.functional_call(layer, dict(zip(names, ps)),
                                         (x, hx_ if len(hx_) > 1 else hx_[0]), {"lengths": lengths})
        o, h = out
        return (o,) + (h if isinstance(h, tuple) else (h,))

    assert torch.autograd.gradcheck(f, (x, *hx, *params), eps=1e-6, atol=1e-6, rtol=1e-5)
    assert layer.last_engine == engine


def outputs_and_grads(layer, x, lengths, engines=("bptt", "compiled")):
    """[(output, gradients w.r.t. x and every parameter)] of ``layer`` under each engine."""
    results = []
    for engine in engines:
        layer.engine = engine
        out, h_n = layer(x, lengths=lengths)
        assert layer.last_engine == engine
        results.append((out, torch.autograd.grad(loss_of(out, h_n), [x, *layer.parameters()])))
    return results


def assert_engine_equals_bptt(build, engine="compiled"):
    """``engine`` against ``bptt`` for ``build(num_layers=, bidirectional=)``: one layer and two
    bidirectional layers, with and without lengths, the states of every step included."""
    for layers, bidirectional in ((1, False), (2, True)):
        for lengths in (None, LENGTHS):
            layer = build(num_layers=layers, bidirectional=bidirectional)
            assert_engines_agree(layer, lengths=lengths, return_states=True, engines=("bptt", engine))


def generate_steps(layer, engine, xs):
    """Generation's path under ``engine``: ``xs`` (N, T, B, I) fed one call at a time, the state
    carried, no gradients. Returns (the outputs concatenated over the calls, the last state)."""
    layer.engine = engine
    state, seq = None, []
    with torch.no_grad():
        for x in xs:
            out, state = layer(x, state)
            seq.append(out)
    assert layer.last_engine == engine
    return torch.cat(seq), state


def assert_matches_loop_of_cell(layer, x):
    """The layer (one layer, one direction) equals a plain Python loop of its cell."""
    assert layer.num_layers == 1 and not layer.bidirectional
    cell = type(layer.cells[0])(layer.input_size, layer.hidden_size, bias=layer.bias,
                                dtype=x.dtype, **layer.cell_options)
    own = layer.cell_params(0)
    cell.load_state_dict({n: own[n] for n in cell.state_dict()})
    state = None
    outs = []
    for t in range(x.shape[0]):
        o, state = cell(x[t], state)
        outs.append(o)
    out, h_n = layer(x)
    torch.testing.assert_close(out, torch.stack(outs))
    final = state if isinstance(state, tuple) else (state,)
    h_n = h_n if isinstance(h_n, tuple) else (h_n,)
    for a, b in zip(h_n, final):
        torch.testing.assert_close(a[0], b)
