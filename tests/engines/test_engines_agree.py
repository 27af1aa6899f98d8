"""For every cell and every option: the hand-written ``bptt`` engine equals autograd's ``loop``.

Values and gradients (w.r.t. input, initial states and every parameter) in float64 within a
relative 1e-7, with and without ``lengths``, one and two layers, one and two directions, and the
states of every step; ``torch.autograd.gradcheck`` on small sizes; and each layer equals a plain
Python loop of its cell. Cell-specific checks live in the cell's own test file.
"""
import pytest
import torch

import rnnlab
from rnnlab.engines import compiled_layer_unsupported
from engine_check import (LENGTHS, assert_engines_agree, assert_matches_loop_of_cell,
                          gradcheck_layer)

UNIT_LEAKS = [0.1, 0.5, 0.9, 0.99]  # one per unit (H = 4): several time scales

CASES = [(rnnlab.RNN, o) for o in (
    {}, {"nonlinearity": "relu"}, {"nonlinearity": "sigmoid"}, {"bias": False},
)] + [(rnnlab.LSTM, o) for o in (
    {}, {"peephole": "diagonal"}, {"peephole": "full"}, {"forget_gate": False},
    {"forget_gate": False, "peephole": "diagonal"}, {"forget_gate": False, "peephole": "full"},
    {"bias": False, "peephole": "full"}, {"peephole": "diagonal", "peephole_candidate": True},
    {"peephole": "full", "peephole_candidate": True},
    {"forget_gate": False, "peephole": "full", "peephole_candidate": True},
)] + [(rnnlab.GRU, o) for o in (
    {"reset_after": True}, {"reset_after": False},
    {"reset_after": True, "bias": False}, {"reset_after": False, "bias": False},
)] + [(rnnlab.LeakyRNN, o) for o in (
    {},                                                        # fixed scalar 0.5
    {"leak": 0.9, "nonlinearity": "relu"},
    {"leak": UNIT_LEAKS, "nonlinearity": "sigmoid"},           # fixed per unit
    {"leak": 0.3, "leak_shape": "unit", "bias": False},
    {"leak_mode": "learned", "leak": 0.7},                     # learned scalar
    {"leak_mode": "learned", "leak": 0.2, "nonlinearity": "relu", "bias": False},
    {"leak_mode": "learned", "leak": UNIT_LEAKS},              # learned per unit
    {"leak_mode": "learned", "leak": 0.6, "leak_shape": "unit", "nonlinearity": "sigmoid"},
)] + [(rnnlab.ResidualRNN, o) for o in (
    {}, {"nonlinearity": "relu"}, {"nonlinearity": "sigmoid", "bias": False},
    {"gated": True}, {"gated": True, "nonlinearity": "relu", "bias": False},
    {"gated": True, "nonlinearity": "sigmoid"},
)] + [(rnnlab.DeepTransitionRNN, o) for o in (
    {}, {"skip": False}, {"depth": 1}, {"depth": 3}, {"depth": 3, "skip": False, "bias": False},
    {"nonlinearity": "relu", "init": "torch"},  # nonzero biases: no pre-activation on the kink
    {"nonlinearity": "sigmoid", "skip": False},
)]
IDS = [f"{cls.__name__}-{opts}" for cls, opts in CASES]
SHAPES = [(1, False), (2, True), (1, True), (2, False)]


def make(case, input_size, layers=1, bidirectional=False):
    cls, options = case
    return cls(input_size, 4, layers, bidirectional=bidirectional, dtype=torch.float64, **options)


@pytest.mark.slow_cases
@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_equals_loop(case, layers, bidirectional, with_lengths):
    assert_engines_agree(make(case, 3, layers, bidirectional), LENGTHS if with_lengths else None)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_equals_loop_all_states(case, with_lengths):
    assert_engines_agree(make(case, 3, 2, True), LENGTHS if with_lengths else None,
                         return_states=True)


@pytest.mark.slow_cases
@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck(case, layers, bidirectional, with_lengths):
    gradcheck_layer(make(case, 2, layers, bidirectional),
                    torch.tensor([3, 1]) if with_lengths else None)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_layer_equals_loop_of_cell(case):
    assert_matches_loop_of_cell(make(case, 3), torch.randn(6, 2, 3, dtype=torch.float64))


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in (rnnlab.RNN, rnnlab.LSTM,
                                                                   rnnlab.GRU) or c[1]], ids=str)
def test_native_runs_only_what_torch_computes(case, compiled_runs):  # compiled_runs: see conftest.py
    """``native`` refuses, naming the cell, what torch's kernels do not compute; ``auto`` runs
    ``compiled`` (where it runs the configuration) or ``bptt`` for it."""
    layer = make(case, 3)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    layer.engine = "native"
    if layer.cells[0].native_mode is None:
        with pytest.raises(ValueError, match="engine='native' cannot run this layer: torch has "
                                             f"no fused kernel for {type(layer.cells[0]).__name__}"):
            layer(x)
        layer.engine = "auto"
        layer(x)  # the compiled engine where it runs this configuration, else bptt
        assert layer.last_engine == ("bptt" if compiled_layer_unsupported(layer, x) else "compiled")
    else:
        layer(x)
        assert layer.last_engine == "native"
