"""The ``compiled`` engine with every regularizer equals ``bptt``: recurrent dropout, zoneout,
weight drop and layer normalisation, alone and together, on every cell the engine runs, one
layer and two bidirectional layers with lengths; values and gradients w.r.t. input, initial
states and every parameter, float64 within a relative 1e-7, the random masks made equal by
seeding torch before each engine's call; the same at evaluation (no masks, zoneout's
expectation) and teacher-forced. Layer normalisation and the LSTM's candidate peephole
(``peephole_candidate``, z_g += w_cc C_{t-1}) against a plain autograd loop of their equations;
gradcheck with the masks fixed (evaluation).
"""
import pytest
import torch

import rnnlab
from rnnlab.cells.lstm_cell import LSTMCell
from rnnlab.engines import compiled
from rnnlab.engines.bptt import run_bptt
from rnnlab.engines.call import Call
from engine_check import LENGTHS, gradcheck_layer, loss_of, make_inputs, run

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

F64 = torch.float64
CELLS = [(rnnlab.RNN, {}), (rnnlab.RNN, {"nonlinearity": "relu"}),
         (rnnlab.LSTM, {}), (rnnlab.LSTM, {"peephole": "diagonal"}),
         (rnnlab.LSTM, {"peephole": "full", "forget_gate": False}), (rnnlab.LSTM, {"bias": False}),
         (rnnlab.GRU, {}), (rnnlab.GRU, {"reset_after": False}),
         (rnnlab.LeakyRNN, {"leak_mode": "learned"}), (rnnlab.LeakyRNN, {"leak": 0.6, "nonlinearity": "sigmoid"}),
         (rnnlab.ResidualRNN, {"gated": True}), (rnnlab.ResidualRNN, {}),
         (rnnlab.DeepTransitionRNN, {}), (rnnlab.DeepTransitionRNN, {"depth": 3, "skip": False}),
         (rnnlab.OutputFeedbackRNN, {"output_activation": "tanh"}), (rnnlab.OutputRecurrentRNN, {})]
REGULARIZERS = {"recurrent_dropout": {"recurrent_dropout": 0.4}, "zoneout": {"zoneout": 0.3},
                "weight_drop": {"weight_drop": 0.4}, "layer_norm": {"layer_norm": True},
                "masks": {"recurrent_dropout": 0.3, "zoneout": 0.2, "weight_drop": 0.3},
                "all": {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2, "weight_drop": 0.3}}
OUTPUT = (rnnlab.OutputFeedbackRNN, rnnlab.OutputRecurrentRNN)  # no layer_norm in this engine
CASES = [(c, o, r) for c, o in CELLS for r in REGULARIZERS
         if not (c in OUTPUT and REGULARIZERS[r].get("layer_norm"))]


def make(cls, options, reg, **layout):
    args = (4, 5, 3) if cls in OUTPUT else (4, 5)
    return cls(*args, dtype=F64, **layout, **options, **REGULARIZERS[reg])


def seeded(layer, engine, x, hx, lengths, teacher=None):
    """engine_check.run with the masks drawn from seed 7 (the same for every engine)."""
    torch.manual_seed(7)
    if teacher is None:
        return run(layer, engine, x, hx, lengths, return_states=True)
    layer.engine = engine
    out, h_n = layer(x, hx, lengths=lengths, teacher=teacher)
    assert layer.last_engine == engine
    return [out, *h_n], torch.autograd.grad(loss_of(out, h_n), [x, *hx, *layer.parameters()])


def assert_compiled_equals_bptt(layer, lengths, teacher=None):
    x, hx = make_inputs(layer)
    results = {engine: seeded(layer, engine, x, hx, lengths, teacher) for engine in ("bptt", "compiled")}
    names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
    (ref_v, ref_g), (v, g) = results["bptt"], results["compiled"]
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    for name, a, b in zip(names, ref_g, g):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.slow_cases
@pytest.mark.parametrize("cls,options,reg", CASES, ids=[f"{c.__name__}-{o}-{r}" for c, o, r in CASES])
@pytest.mark.parametrize("layers,bidirectional,lengths", [(1, False, None), (2, True, LENGTHS)],
                         ids=["one layer", "two bidirectional layers, lengths"])
def test_equals_bptt(cls, options, reg, layers, bidirectional, lengths):
    torch.manual_seed(0)
    layer = make(cls, options, reg, num_layers=layers, bidirectional=bidirectional)
    assert_compiled_equals_bptt(layer, lengths)


@pytest.mark.parametrize("cls,options", CELLS[2:9:2], ids=[f"{c.__name__}-{o}" for c, o in CELLS[2:9:2]])
def test_evaluation_equals_bptt(cls, options):
    """eval(): no dropout masks, zoneout's expectation as keep weights."""
    torch.manual_seed(1)
    layer = make(cls, options, "all", num_layers=2, bidirectional=True).eval()
    assert_compiled_equals_bptt(layer, LENGTHS)


@pytest.mark.parametrize("cls,options", [(rnnlab.LSTM, {"peephole": "full"}), (rnnlab.GRU, {}),
                                         (rnnlab.GRU, {"reset_after": False}), (rnnlab.RNN, {}),
                                         (rnnlab.ResidualRNN, {"gated": True})], ids=str)
def test_gradcheck(cls, options):
    """Layer norm and zoneout's expectation (masks fixed: evaluation), float64 gradcheck."""
    torch.manual_seed(3)
    layer = cls(3, 4, dtype=F64, layer_norm=True, zoneout=0.3, **options).eval()
    gradcheck_layer(layer, torch.tensor([3, 2]), engine="compiled")


# ------------------------------------------------------------------ an independent reference
def block_norm(a, gain, blocks):
    """gain * (a - mu) / sqrt(sigma^2 + 1e-5) over each of ``blocks`` blocks of the last dim."""
    v = a.view(*a.shape[:-1], blocks, -1)
    y = (v - v.mean(-1, keepdim=True)) / (v.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    return y.reshape(a.shape) * gain


def lstm_loop(p, x, h, c, fg, ln, lengths=None, keeps=None, m=None):
    """The LSTM's equations step by step under autograd: peepholes into i, f, o and the
    candidate (diagonal w * C or full C W^T); layer norm of both products and of C_t."""
    peep = lambda name, s: 0 if name not in p else (s * p[name] if p[name].dim() == 1 else s @ p[name].t())
    G = 4 if fg else 3
    hs = []
    for t in range(x.shape[0]):
        hd = h if m is None else h * m
        a, u = x[t] @ p["weight_ih"].t(), hd @ p["weight_hh"].t()
        if ln:
            a, u = block_norm(a, p["ln_gain_ih"], G), block_norm(u, p["ln_gain_hh"], G)
        z = (a + u + p["bias_ih"] + p["bias_hh"]).chunk(G, 1)
        i = torch.sigmoid(z[0] + peep("weight_ci", c))
        f = torch.sigmoid(z[1] + peep("weight_cf", c)) if fg else 1
        g = torch.tanh(z[-2] + peep("weight_cc", c))
        c1 = f * c + i * g
        o = torch.sigmoid(z[-1] + peep("weight_co", c1))
        h1 = o * torch.tanh(block_norm(c1, p["ln_gain_c"], 1) + p["ln_bias_c"] if ln else c1)
        if keeps is not None:  # zoneout, the lengths folded in
            h1, c1 = torch.lerp(h, h1, keeps[0][t]), torch.lerp(c, c1, keeps[1][t])
        elif lengths is not None:
            real = (t < lengths)[:, None]
            h1, c1 = torch.where(real, h1, h), torch.where(real, c1, c)
        h, c = h1, c1
        hs.append(h)
    return torch.stack(hs), c


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
@pytest.mark.parametrize("forget_gate", [True, False])
@pytest.mark.parametrize("ln", [False, True], ids=["", "layer_norm"])
@pytest.mark.parametrize("masks", ["lengths", "zoneout and recurrent dropout"])
def test_lstm_candidate_peephole_and_layer_norm_equal_their_equations(peephole, forget_gate, ln, masks):
    """z_g += w_cc C_{t-1} (the notes' "not standard" candidate peephole, ``peephole_candidate``)
    beside the peepholes into i, f, o, with and without layer normalisation: values and every
    gradient equal a plain autograd loop of the equations (float64)."""
    torch.manual_seed(4)
    T, B, I, H = 6, 3, 4, 5
    cell = LSTMCell(I, H, forget_gate=forget_gate, peephole=peephole, dtype=F64)
    cell.peephole_candidate = True
    p = {k: v.detach().clone() for k, v in cell.params().items()}
    p["weight_cc"] = 0.3 * torch.randn_like(p["weight_ci"])
    p["bias_ih"], p["bias_hh"] = torch.randn_like(p["bias_ih"]), torch.randn_like(p["bias_hh"])
    if ln:
        cell.layer_norm = True
        GH = p["bias_ih"].numel()
        p.update(ln_gain_ih=1 + 0.3 * torch.randn(GH, dtype=F64), ln_gain_hh=1 + 0.3 * torch.randn(GH, dtype=F64),
                 ln_gain_c=1 + 0.3 * torch.randn(H, dtype=F64), ln_bias_c=0.3 * torch.randn(H, dtype=F64))
    p = {k: v.requires_grad_() for k, v in p.items()}
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    h0, c0 = (0.5 * torch.randn(B, H, dtype=F64), 0.5 * torch.randn(B, H, dtype=F64))
    lengths = torch.tensor([6, 2, 4])
    mask = (torch.arange(T)[:, None] < lengths)[..., None]  # (T, B, 1)
    keeps, m = None, None
    if masks != "lengths":
        keeps = tuple(torch.bernoulli(torch.full((T, B, H), 0.7, dtype=F64)) * mask for _ in range(2))
        m = torch.bernoulli(torch.full((B, H), 0.6, dtype=F64)) / 0.6
    want = lstm_loop(p, x, h0, c0, forget_gate, ln, lengths, keeps, m)
    q = dict(p) if m is None else {**p, "recurrent_mask": m}
    assert compiled.compiled_unsupported(cell, q, x) is None
    call = Call(cell, p, {} if m is None else {0: m}, lengths=mask, zoneout=keeps)
    wrt = [x, *p.values()]
    loss = lambda out: (out[0] * torch.linspace(-1, 1, H, dtype=F64)).sin().sum() + out[1].tanh().sum()
    want_grads = torch.autograd.grad(loss(want), wrt)
    for run in (compiled.run_compiled, run_bptt):  # the C++ and the Python core
        got = run(call, x, (h0, c0))
        got = (got[0], got[1][-1])
        for a, b in zip(want, got):
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
        for name, a, b in zip(["x", *p], want_grads, torch.autograd.grad(loss(got), wrt)):
                torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda s: f"grad {name}: {s}")


def test_float32_close_to_bptt():
    """float32 (the fast exp and tanh, layer norm's sums) within float32 rounding of bptt."""
    torch.manual_seed(5)
    layer = rnnlab.LSTM(6, 8, num_layers=2, bidirectional=True, layer_norm=True, zoneout=0.2,
                        recurrent_dropout=0.3, weight_drop=0.2)
    x, hx = make_inputs(layer, T=7, B=3, dtype=torch.float32)
    lengths = torch.tensor([7, 3, 5])
    (v0, g0), (v1, g1) = (seeded(layer, engine, x, hx, lengths) for engine in ("bptt", "compiled"))
    for a, b in zip(v0 + list(g0), v1 + list(g1)):  # (rounding scales with the tensor's largest entry)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * max(1.0, float(a.abs().max())))
