"""The ``compiled`` engine for the cells beyond LSTM, GRU and vanilla RNN equals ``bptt``.

Leaky RNN (leak fixed / learned, scalar / per unit), residual RNN (plain / gated), deep
transition (depth, skip), output feedback and output recurrence (open loop; teacher-forced too,
where the layer runs its own path with the engine it was given): values and gradients w.r.t.
input, initial states and every parameter, float64 within a relative 1e-7, with and without
``lengths``, one layer and two bidirectional layers, every nonlinearity; long enough sequences
to take the engine's per-step path for big products too; float32 close; gradcheck; ``auto``
picks ``compiled`` for them on the CPU, and what it does not run runs on ``bptt``.
"""
import pytest
import torch

import rnnlab
from engine_check import (LENGTHS, assert_engine_equals_bptt, generate_steps, gradcheck_layer, loss_of,
                          make_inputs, outputs_and_grads)

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

F64 = torch.float64

CASES = [(rnnlab.LeakyRNN, o) for o in (
    {}, {"leak": 0.8, "leak_shape": "unit", "nonlinearity": "relu"},
    {"leak_mode": "learned", "nonlinearity": "sigmoid"},
    {"leak_mode": "learned", "leak": [0.1, 0.3, 0.5, 0.7, 0.9]},
    {"leak_mode": "learned", "leak_shape": "unit", "bias": False},
)] + [(rnnlab.ResidualRNN, o) for o in (
    {}, {"nonlinearity": "relu"}, {"gated": True}, {"gated": True, "nonlinearity": "sigmoid", "bias": False},
)] + [(rnnlab.DeepTransitionRNN, o) for o in (
    {}, {"depth": 3, "skip": False, "nonlinearity": "relu"}, {"depth": 1, "skip": False, "nonlinearity": "sigmoid"},
    {"depth": 1}, {"depth": 3, "bias": False},
)] + [(cls, o) for cls in (rnnlab.OutputFeedbackRNN, rnnlab.OutputRecurrentRNN) for o in (
    {}, {"nonlinearity": "relu", "output_activation": "tanh"},
    {"nonlinearity": "sigmoid", "output_activation": "sigmoid", "bias": False},
)]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for cls, o in CASES]


def make(cls, I=4, H=5, **options):
    if cls in (rnnlab.OutputFeedbackRNN, rnnlab.OutputRecurrentRNN):
        return cls(I, H, 3, **options)
    return cls(I, H, **options)


@pytest.mark.parametrize("cls,options", CASES, ids=IDS)
def test_equals_bptt(cls, options):
    """Every cell and option: one layer and two bidirectional layers, with and without lengths,
    the states of every step included."""
    torch.manual_seed(0)
    assert_engine_equals_bptt(lambda **layout: make(cls, dtype=F64, **layout, **options))


LONG = [(rnnlab.LeakyRNN, {"leak_mode": "learned", "leak_shape": "unit"}),
        (rnnlab.ResidualRNN, {"gated": True}),
        (rnnlab.DeepTransitionRNN, {"depth": 3}),
        (rnnlab.DeepTransitionRNN, {"depth": 2, "skip": False}),
        (rnnlab.OutputFeedbackRNN, {"output_activation": "tanh"}),
        (rnnlab.OutputRecurrentRNN, {})]


@pytest.mark.parametrize("cls,options", LONG, ids=[f"{c.__name__}-{o}" for c, o in LONG])
def test_long_sequences_equal_bptt(cls, options):
    """Sequences long and wide enough for the engine's separate forward loop (the input
    projection apart, W^T copied row-major for the per-step products), padded batch included."""
    torch.manual_seed(1)
    layer = make(cls, I=48, H=40, dtype=F64, **options)
    T, B = 20, 8  # T*B*I*H above linalg.MIN_MACS: the separate projection, then the loop
    x = torch.randn(T, B, 48, dtype=F64, requires_grad=True)
    lengths = torch.tensor([20, 13, 1, 17, 20, 5, 19, 2])
    results = outputs_and_grads(layer, x, lengths)
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-7, atol=1e-9)
    for name, a, b in zip(["input"] + [n for n, _ in layer.named_parameters()], *(r[1] for r in results)):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


FLOAT32 = [(rnnlab.LeakyRNN, {"leak_mode": "learned", "leak_shape": "unit"}),
           (rnnlab.ResidualRNN, {"gated": True}), (rnnlab.DeepTransitionRNN, {"depth": 3}),
           (rnnlab.OutputFeedbackRNN, {"output_activation": "sigmoid"}), (rnnlab.OutputRecurrentRNN, {})]


@pytest.mark.parametrize("cls,options", FLOAT32, ids=[c.__name__ for c, _ in FLOAT32])
def test_float32_close_to_bptt(cls, options):
    """float32 (the fast exp/tanh of the C++ loops) within float32 rounding of bptt."""
    torch.manual_seed(2)
    layer = make(cls, I=6, H=8, num_layers=2, bidirectional=True, **options)
    x, hx = make_inputs(layer, T=7, B=3, dtype=torch.float32)
    results = []
    for engine in ("bptt", "compiled"):
        layer.engine = engine
        out, h_n = layer(x, hx, lengths=torch.tensor([7, 3, 5]))
        assert layer.last_engine == engine
        results.append((out, torch.autograd.grad(loss_of(out, h_n), [x, *hx, *layer.parameters()])))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


GRADCHECK = [(rnnlab.LeakyRNN, {"leak_mode": "learned", "leak_shape": "unit"}, torch.tensor([3, 2])),
             (rnnlab.LeakyRNN, {"leak_mode": "learned", "nonlinearity": "sigmoid"}, None),
             (rnnlab.ResidualRNN, {"gated": True}, torch.tensor([2, 3])),
             (rnnlab.DeepTransitionRNN, {"depth": 3, "skip": False}, torch.tensor([3, 1])),
             (rnnlab.DeepTransitionRNN, {"depth": 2}, None),
             (rnnlab.OutputFeedbackRNN, {"output_activation": "tanh"}, torch.tensor([2, 3])),
             (rnnlab.OutputRecurrentRNN, {"output_activation": "sigmoid"}, None)]


@pytest.mark.parametrize("cls,options,lengths", GRADCHECK, ids=[f"{c.__name__}-{o}" for c, o, _ in GRADCHECK])
def test_gradcheck(cls, options, lengths):
    """torch.autograd.gradcheck of the compiled engine, float64, w.r.t. input, states, parameters."""
    torch.manual_seed(3)
    layer = make(cls, I=3, H=4, dtype=F64, engine="compiled", **options)
    gradcheck_layer(layer, lengths, engine="compiled")


@pytest.mark.parametrize("cls", [rnnlab.OutputFeedbackRNN, rnnlab.OutputRecurrentRNN])
def test_teacher_forcing_runs_on_bptt(cls):
    """Teacher-forced (states given at every step) ``auto`` runs ``bptt``; ``engine='compiled'``
    says in one line that it takes no given states."""
    layer = cls(4, 5, 3, dtype=F64)
    x, teacher = torch.randn(5, 3, 4, dtype=F64), torch.randn(5, 3, 3, dtype=F64)
    layer(x, teacher=teacher)
    assert layer.last_engine == "bptt"
    layer.engine = "compiled"
    with pytest.raises(ValueError, match="teacher forcing") as e:
        layer(x, teacher=teacher)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cls,options", [(rnnlab.LeakyRNN, {"leak_mode": "learned"}),
                                         (rnnlab.DeepTransitionRNN, {"depth": 3}),
                                         (rnnlab.OutputFeedbackRNN, {})])
def test_generation_and_second_backward(cls, options):
    """Generation's path (batch 1, one step per call, no gradients) equals bptt's; a second
    backward through a retained graph recomputes the spent forward (the saved u^(j) included)."""
    torch.manual_seed(5)
    layer = make(cls, num_layers=2, dtype=F64, **options)
    xs = torch.randn(8, 1, 1, 4, dtype=F64)
    outs = {engine: generate_steps(layer, engine, xs)[0] for engine in ("bptt", "compiled")}
    torch.testing.assert_close(outs["compiled"], outs["bptt"], rtol=1e-7, atol=1e-9)
    x, hx = make_inputs(layer, T=4, B=2)
    loss = loss_of(*layer(x, hx))
    g1 = torch.autograd.grad(loss, [x, *layer.parameters()], retain_graph=True)
    g2 = torch.autograd.grad(loss, [x, *layer.parameters()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_auto_picks_compiled_and_falls_back_on_what_it_does_not_know(monkeypatch):
    monkeypatch.setenv("RNNLAB_AUTOTUNE", "0")  # auto by its rules: compiled wherever it runs
    x = torch.randn(4, 2, 3)
    for layer in (rnnlab.LeakyRNN(3, 4, leak_mode="learned"), rnnlab.ResidualRNN(3, 4, gated=True),
                  rnnlab.DeepTransitionRNN(3, 4, depth=3, skip=False),
                  rnnlab.OutputFeedbackRNN(3, 4, 2), rnnlab.OutputRecurrentRNN(3, 4, 2)):
        layer(x)
        assert layer.last_engine == "compiled", type(layer).__name__
    # what the engine does not run: layer normalisation of the output cells, skip connections
    for layer, what in ((rnnlab.OutputFeedbackRNN(3, 4, 2, layer_norm=True), "layer"),
                        (rnnlab.LeakyRNN(3, 4, skip_steps=2), "SkipConnections")):
        layer(x)
        assert layer.last_engine == "bptt"
        layer.engine = "compiled"
        with pytest.raises(ValueError, match=what):
            layer(x)
