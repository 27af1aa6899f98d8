"""The ``compiled`` engine (C++ time loops) equals the Python ``bptt`` engine it was written from
(LSTM, GRU, vanilla RNN here; the other cells in test_compiled_cells.py).

Values and gradients w.r.t. input, initial states and every parameter, float64 within a relative
1e-7, for every cell and option it supports, with and without ``lengths``, one and two layers,
one and two directions; gradcheck on tiny cases; step-by-step generation; its refusals (a cell
class, parameters or options it does not run, checked in Python and in the C++: one line naming
them); and the fallback when the C++ cannot be built (one warning, ``bptt`` results).
"""
import logging

import pytest
import torch

import rnnlab
from rnnlab.engines import compiled
from engine_check import (LENGTHS, assert_engine_equals_bptt, generate_steps, gradcheck_layer, loss_of,
                          make_inputs)

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

CASES = [(rnnlab.RNN, o) for o in (
    {}, {"nonlinearity": "relu"}, {"nonlinearity": "sigmoid"}, {"bias": False},
)] + [(rnnlab.LSTM, o) for o in (
    {}, {"peephole": "diagonal"}, {"peephole": "full"}, {"forget_gate": False},
    {"forget_gate": False, "peephole": "diagonal"}, {"forget_gate": False, "peephole": "full"},
    {"bias": False, "peephole": "full"}, {"bias": False},
)] + [(rnnlab.GRU, o) for o in (
    {"reset_after": True}, {"reset_after": False},
    {"reset_after": True, "bias": False}, {"reset_after": False, "bias": False},
)]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for cls, o in CASES]


@pytest.mark.parametrize("cls,options", CASES, ids=IDS)
def test_equals_bptt(cls, options):
    """Every cell and option: one layer and two bidirectional layers, with and without lengths,
    the states of every step included."""
    torch.manual_seed(0)
    assert_engine_equals_bptt(lambda **layout: cls(4, 5, dtype=torch.float64, **layout, **options))


@pytest.mark.parametrize("cls,options", [(rnnlab.LSTM, {}), (rnnlab.GRU, {}), (rnnlab.RNN, {})])
def test_float32_close_to_bptt(cls, options):
    """float32 (the fast exp/tanh of the C++ loops) within float32 rounding of bptt."""
    torch.manual_seed(1)
    layer = cls(6, 8, num_layers=2, bidirectional=True, **options)
    x, hx = make_inputs(layer, T=7, B=3, dtype=torch.float32)
    results = []
    for engine in ("bptt", "compiled"):
        layer.engine = engine
        out, h_n = layer(x, hx, lengths=LENGTHS.new_tensor([7, 3, 5]))
        assert layer.last_engine == engine
        grads = torch.autograd.grad(loss_of(out, h_n), [x, *hx, *layer.parameters()])
        results.append((out, grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls,options,lengths", [
    (rnnlab.LSTM, {"peephole": "diagonal"}, torch.tensor([3, 2])),
    (rnnlab.LSTM, {"peephole": "full", "forget_gate": False}, None),
    (rnnlab.GRU, {"reset_after": False}, torch.tensor([2, 3])),
    (rnnlab.GRU, {}, None),
    (rnnlab.RNN, {"nonlinearity": "sigmoid"}, torch.tensor([3, 1])),
])
def test_gradcheck(cls, options, lengths):
    """torch.autograd.gradcheck of the compiled engine, float64, w.r.t. input, states, parameters."""
    torch.manual_seed(2)
    layer = cls(3, 4, dtype=torch.float64, engine="compiled", **options)
    gradcheck_layer(layer, lengths, engine="compiled")


def test_retained_graph_second_backward():
    """A second backward through a retained graph recomputes the spent forward: same gradients."""
    torch.manual_seed(3)
    layer = rnnlab.LSTM(3, 4, dtype=torch.float64, engine="compiled", peephole="full")
    x, hx = make_inputs(layer, T=4, B=2)
    loss = loss_of(*layer(x, hx))
    g1 = torch.autograd.grad(loss, [x, *layer.parameters()], retain_graph=True)
    g2 = torch.autograd.grad(loss, [x, *layer.parameters()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_generation_steps_equal_bptt(cls):
    """Generation's path: batch 1, one step per call, the state fed back, no gradients."""
    torch.manual_seed(4)
    layer = cls(5, 6, num_layers=2, dtype=torch.float64)
    xs = torch.randn(12, 1, 1, 5, dtype=torch.float64)
    outs = {engine: generate_steps(layer, engine, xs) for engine in ("bptt", "compiled")}
    torch.testing.assert_close(outs["compiled"][0], outs["bptt"][0], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(outs["compiled"][1], outs["bptt"][1], rtol=1e-7, atol=1e-9)


def test_what_it_does_not_run_is_named(monkeypatch):
    """Skip connections run on ``bptt`` under ``auto``; every regularizer runs in the C++."""
    monkeypatch.setenv("RNNLAB_AUTOTUNE", "0")  # auto by its rules: compiled wherever it runs
    x = torch.randn(4, 2, 3)
    skip = rnnlab.RNN(3, 4, skip_steps=2)
    skip(x)
    assert skip.last_engine == "bptt"
    for layer in (rnnlab.GRU(3, 4, reset_after=False, zoneout=0.1, layer_norm=True),
                  rnnlab.LSTM(3, 4, recurrent_dropout=0.2, weight_drop=0.3, peephole="full")):
        layer(x)
        assert layer.last_engine == "compiled"


def test_refusals_name_what_the_engine_does_not_run():
    """A cell class it does not implement, parameters its configuration does not read, options
    it does not run together (checked by the C++ Config) and misshapen tensors (checked by the
    C++ Run): ``engine='compiled'`` raises one line naming them."""
    x = torch.randn(4, 2, 3)
    skip = rnnlab.RNN(3, 4, skip_steps=2)  # a cell class it does not implement
    skip.engine = "compiled"
    with pytest.raises(ValueError, match="does not implement SkipConnections") as e:
        skip(x)
    assert "\n" not in str(e.value)
    lstm = rnnlab.LSTM(3, 4)
    lstm.cells[0].peephole_candidate = True  # without a peephole
    lstm.engine = "compiled"
    with pytest.raises(ValueError, match="peephole_candidate needs a peephole"):
        lstm(x)
    cell = rnnlab.cells.rnn_cell.RNNCell(3, 4)
    cfg = compiled._config(compiled._spec(cell))
    p = dict(cell.params())
    with pytest.raises(ValueError, match=r"weight_hh must be \(4, 4\), got \(4, 3\)"):
        compiled._ops().Run(cfg, {**p, "weight_hh": torch.zeros(4, 3)}, x, None, [torch.zeros(2, 4)], None, [])
    with pytest.raises(ValueError, match="has no tensor weight_xx"):
        compiled._ops().Run(cfg, {**p, "weight_xx": torch.zeros(4)}, x, None, [torch.zeros(2, 4)], None, [])
    with pytest.raises(ValueError, match=r"recurrent_mask must be \(2, 4\)"):
        compiled._ops().Run(cfg, {**p, "recurrent_mask": torch.ones(3, 4)}, x, None, [torch.zeros(2, 4)], None, [])
    bad = compiled._ops().Config()
    bad.kind, bad.gated = compiled._ops().Kind.lstm, True
    with pytest.raises(ValueError, match="gated is an option of the residual RNN"):
        bad.check()


def test_build_failure_falls_back_with_one_warning(monkeypatch, caplog):
    """If the C++ cannot be built or loaded: one warning, ``auto`` runs bptt (same results),
    ``engine='compiled'`` raises one line saying why."""
    def broken():
        raise RuntimeError("Error building extension 'rnnlab_compiled'\nc++: not found")

    x = torch.randn(4, 2, 3, dtype=torch.float64)
    layer = rnnlab.GRU(3, 4, reset_after=False, dtype=torch.float64, engine="bptt")  # no torch kernel
    want = layer(x)[0]
    monkeypatch.setattr(compiled, "_build", broken)
    compiled._ops.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="rnnlab"):
            layer.engine = "auto"
            got = layer(x)[0]
            assert layer.last_engine == "bptt"
            layer(x)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        warnings = [r for r in caplog.records if "compiled engine is unavailable" in r.getMessage()]
        assert len(warnings) == 1 and "c++: not found" in warnings[0].getMessage()
        layer.engine = "compiled"
        with pytest.raises(ValueError, match="could not be built") as e:
            layer(x)
        assert "\n" not in str(e.value)
    finally:
        monkeypatch.undo()
        compiled._ops.cache_clear()
    assert compiled.compiled_available()
