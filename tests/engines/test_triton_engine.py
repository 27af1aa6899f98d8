"""The ``triton`` engine under Triton's interpreter (TRITON_INTERPRET=1, CPU tensors): for every
cell and option and every regularizer, outputs, final states and gradients equal ``loop``'s
within 1e-5 (float32), with lengths, two layers, bidirectional."""
import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: its kernels run on the CPU

import pytest  # noqa: E402
import torch  # noqa: E402

triton = pytest.importorskip("triton")

from engine_check import LENGTHS, run  # noqa: E402
from rnnlab.engines import triton_codegen  # noqa: E402
from rnnlab.layers import LAYERS, OutputFeedbackRNN, OutputRecurrentRNN  # noqa: E402

LAYERS = {**LAYERS, "output_feedback": OutputFeedbackRNN, "output_recurrent": OutputRecurrentRNN}

CONFIGS = [
    ("lstm", {}), ("lstm", {"forget_gate": False}), ("lstm", {"peephole": "diagonal"}),
    ("lstm", {"peephole": "diagonal", "peephole_candidate": True}), ("lstm", {"peephole": "full"}),
    ("gru", {}), ("gru", {"reset_after": False}),
    ("gru", {"layer_norm": True}), ("rnn", {}), ("rnn", {"nonlinearity": "relu"}),
    ("rnn", {"nonlinearity": "sigmoid"}), ("leaky", {"leak": 0.3}),
    ("leaky", {"leak": [0.2, 0.4, 0.6, 0.8], "leak_mode": "learned"}),
    ("leaky", {"leak": 0.5, "leak_mode": "learned", "leak_shape": "scalar"}),
    ("residual", {}), ("residual", {"gated": True, "nonlinearity": "relu"}),
    ("deep_transition", {"depth": 2}), ("rnn", {"skip_steps": 2}), ("rnn", {"bias": False}),
    ("output_feedback", {"output_size": 2}),
    ("output_recurrent", {"output_size": 2, "output_activation": "tanh"}),
]
REGULARIZERS = [{"recurrent_dropout": 0.3}, {"weight_drop": 0.4}, {"zoneout": 0.2},
                {"zoneout": (0.1, 0.3)}]


def compare(layer, lengths=LENGTHS, T=5, B=3, tol=1e-5):
    dtype = next(layer.parameters()).dtype
    torch.manual_seed(1)
    x = torch.randn(T, B, layer.input_size, dtype=dtype, requires_grad=True)
    D = 2 if layer.bidirectional else 1
    hx = tuple((0.5 * torch.randn(layer.num_layers * D, B, s, dtype=dtype)).requires_grad_()
               for s in layer.cells[0].state_sizes)
    torch.manual_seed(2)  # the same masks for both engines (training mode draws them per call)
    ref_v, ref_g = run(layer, "loop", x, hx, lengths)
    torch.manual_seed(2)
    v, g = run(layer, "triton", x, hx, lengths)
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
    for name, a, b in zip(names, ref_g, g):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=tol, atol=tol, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.slow_cases
@pytest.mark.parametrize("cell,options", CONFIGS, ids=[f"{c}-{o}" for c, o in CONFIGS])
def test_every_cell_equals_loop(cell, options):
    torch.manual_seed(0)
    layer = LAYERS[cell](3, 4, num_layers=2, bidirectional=True, **options)
    compare(layer)


def test_the_layer_normed_lstm_equals_loop_in_float64():
    """Its float32 gradients differ from loop's by rounding alone (up to about 8e-5: dividing by
    the blocks' deviations amplifies it; bptt's differ by 8e-6); in float64 they agree to 1e-12."""
    torch.manual_seed(0)
    layer = LAYERS["lstm"](3, 4, num_layers=2, bidirectional=True, layer_norm=True, dtype=torch.float64)
    compare(layer, tol=1e-10)


@pytest.mark.slow_cases
@pytest.mark.parametrize("reg", REGULARIZERS, ids=str)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_every_regularizer_equals_loop(reg, training):
    """Evaluation (expectations) and training (masks drawn from the same seed: the same masks)."""
    torch.manual_seed(0)
    layer = LAYERS["lstm"](3, 4, num_layers=2, bidirectional=True, **reg)
    layer.train(training)
    compare(layer)


def test_the_kernel_is_generated_from_the_core():
    """The LSTM's core is one kernel: no torch operation around it, its source Triton."""
    torch.manual_seed(0)
    layer = LAYERS["lstm"](3, 4, engine="triton")
    layer(torch.randn(2, 3, 3))
    programs = [f for key, f in triton_codegen._PROGRAMS.items() if key[0].__name__ == "LSTMCell"
                and key[2] == "core" and key[1] == layer.cells[0].extra_repr()]
    assert programs and "@triton.jit" in programs[0].text and "tl.sigmoid" in programs[0].text
    pr = programs[0].program
    assert not [n for n in pr.gm.graph.nodes if pr.kind.get(n) == "post"]


def test_second_derivatives_equal_loops():
    """A gradient penalty (create_graph=True) through the fused cores: recomputed through the
    cell's own Python core (rnnlab/engines/loop.py ``second_order``), equal to ``loop``'s."""
    grads = {}
    for engine in ("loop", "triton"):
        torch.manual_seed(0)
        layer = LAYERS["gru"](3, 4, layer_norm=True, zoneout=0.2, engine=engine)
        x = torch.randn(4, 2, 3, requires_grad=True)
        torch.manual_seed(1)
        out = layer(x)[0]
        (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        gx.square().sum().backward()
        grads[engine] = [p.grad for p in layer.parameters()] + [x.grad]
    for a, b in zip(grads["loop"], grads["triton"]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
