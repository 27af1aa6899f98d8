"""Every regularizer with every cell, under every engine that runs it, equals ``loop``; and a layer
called from two threads at once gives each thread what it gets alone.

The engines own the regularizers (layer normalisation of the products, recurrent dropout, weight
drop, zoneout, skip connections through time), so each must hold for every cell: values, final
states, the states of every step and every gradient, float64, with lengths, two bidirectional
layers. In training mode the masks are drawn alike (torch seeded before each engine's call).
"""
import threading

import pytest
import torch

import rnnlab
from engine_check import LENGTHS, loss_of, make_inputs

CELLS = [
    (rnnlab.LSTM, {}), (rnnlab.LSTM, {"forget_gate": False}), (rnnlab.LSTM, {"peephole": "diagonal"}),
    (rnnlab.LSTM, {"peephole": "full"}), (rnnlab.LSTM, {"peephole": "diagonal", "peephole_candidate": True}),
    (rnnlab.LSTM, {"peephole": "full", "peephole_candidate": True}),
    (rnnlab.GRU, {}), (rnnlab.GRU, {"reset_after": False}), (rnnlab.RNN, {}),
    (rnnlab.RNN, {"nonlinearity": "relu"}), (rnnlab.LeakyRNN, {"leak_mode": "learned", "leak": [0.2, 0.5, 0.7, 0.9]}),
    (rnnlab.ResidualRNN, {"gated": True}), (rnnlab.DeepTransitionRNN, {"depth": 3}),
    (rnnlab.OutputFeedbackRNN, {"output_size": 2}), (rnnlab.OutputRecurrentRNN, {"output_size": 2}),
]
REGULARIZERS = [{"layer_norm": True}, {"recurrent_dropout": 0.3}, {"zoneout": 0.2},
                {"weight_drop": 0.3}, {"skip_steps": 2},
                {"layer_norm": True, "skip_steps": 2, "zoneout": 0.2, "recurrent_dropout": 0.2,
                 "weight_drop": 0.2}]
IDS = [f"{c.__name__}-{o}" for c, o in CELLS]


def build(cls, options, reg, **layer):
    torch.manual_seed(0)
    options = dict(options)
    if cls in (rnnlab.OutputFeedbackRNN, rnnlab.OutputRecurrentRNN):
        return cls(3, 4, options.pop("output_size"), dtype=torch.float64, **layer, **options, **reg)
    return cls(3, 4, dtype=torch.float64, **layer, **options, **reg)


def outputs_and_grads(layer, engine, x, hx, lengths, seed=5):
    layer.engine = engine
    torch.manual_seed(seed)  # the same masks under every engine
    out, h_n, states = layer(x, hx, lengths=lengths, return_states=True)
    assert layer.last_engine == engine
    values = [out, *(h_n if isinstance(h_n, tuple) else (h_n,)), *states]
    grads = torch.autograd.grad(loss_of(out, h_n, states), [x, *hx, *layer.parameters()], allow_unused=True)
    return values, grads


def engines_for(layer):
    return [e for e in ("bptt", "compiled") if _runs(layer, e)]


def _runs(layer, engine):
    layer.engine = engine
    try:
        layer.resolve_engine(True, torch.zeros(1, 1, layer.input_size, dtype=torch.float64))
        return True
    except ValueError:
        return False


@pytest.mark.slow_cases
@pytest.mark.parametrize("cell", CELLS, ids=IDS)
@pytest.mark.parametrize("reg", REGULARIZERS, ids=[",".join(r) for r in REGULARIZERS])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_every_engine_equals_loop(cell, reg, training):
    for layers, bidirectional, lengths in ((1, False, None), (2, True, LENGTHS)):
        layer = build(*cell, reg, num_layers=layers, bidirectional=bidirectional)
        layer.train(training)
        x, hx = make_inputs(layer)
        ref_v, ref_g = outputs_and_grads(layer, "loop", x, hx, lengths)
        names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
        for engine in engines_for(layer):
            v, g = outputs_and_grads(layer, engine, x, hx, lengths)
            for a, b in zip(ref_v, v):
                torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
            for name, a, b in zip(names, ref_g, g):
                assert (a is None) == (b is None), name
                if a is not None:
                    torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9,
                                               msg=lambda m: f"{engine} grad {name}: {m}")


def test_masks_are_drawn_and_make_a_difference():
    """The training-mode comparisons above are not vacuous: masks change the result."""
    layer = build(rnnlab.LSTM, {}, {"recurrent_dropout": 0.5, "zoneout": 0.3})
    x, hx = make_inputs(layer)
    a, _ = outputs_and_grads(layer, "bptt", x, hx, None, seed=1)
    b, _ = outputs_and_grads(layer, "bptt", x, hx, None, seed=2)
    assert not torch.allclose(a[0], b[0])


@pytest.mark.slow_cases
@pytest.mark.parametrize("reg", REGULARIZERS, ids=[",".join(r) for r in REGULARIZERS])
@pytest.mark.parametrize("cls,options", [(rnnlab.LSTM, {}), (rnnlab.GRU, {"reset_after": False})],
                         ids=["lstm", "gru-notes"])
def test_two_threads_on_one_layer(cls, options, reg):
    """Two threads run forward and backward through one layer at once, many times over; each
    gets the gradients it gets alone (random masks off: eval mode where the regularizer draws)."""
    layer = build(cls, options, reg, num_layers=2)
    random = any(k in reg for k in ("recurrent_dropout", "zoneout", "weight_drop"))
    layer.train(not random)
    inputs = [make_inputs(layer, T=6, B=2) for _ in range(2)]
    for engine in ["loop"] + engines_for(layer):
        layer.engine = engine
        alone = [outputs_and_grads(layer, engine, x, hx, None) for x, hx in inputs]
        errors = []

        def work(k):
            try:
                for _ in range(15):
                    v, g = outputs_and_grads(layer, engine, *inputs[k], None)
                    for a, b in zip(alone[k][1], g):
                        torch.testing.assert_close(b, a, rtol=0, atol=0)
            except Exception as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, f"{engine}: {errors[0]!r}"


def test_the_cell_written_in_the_docs_gets_every_option():
    """docs/writing-a-cell.md's cell, nothing but its core: runs as written, and with every
    regularizer ``bptt`` equals ``loop``."""
    import pathlib
    import re
    page = pathlib.Path(__file__).resolve().parents[2] / "docs" / "writing-a-cell.md"
    space = {}
    exec(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)[0], space)
    layer = space["layer"].double()
    x, hx = make_inputs(layer)
    ref_v, ref_g = outputs_and_grads(layer, "loop", x, hx, LENGTHS)
    v, g = outputs_and_grads(layer, "bptt", x, hx, LENGTHS)
    for a, b in zip(ref_v + list(ref_g), v + list(g)):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
