"""Zoneout on both states (s, y) of the output-feedback RNN under teacher forcing.

Teacher-forced, the state fed to step t is (s_{t-1}, y*_{t-1}), so

    s~_t = a(U x_t + V (m *) s_{t-1} + W y*_{t-1} + b),   s_t = s_{t-1} + k^s_t (s~_t - s_{t-1})
    y~_t = g(W_hy s~_t + b_y),                          y_t = y*_{t-1} + k^y_t (y~_t - y*_{t-1})

with the masks drawn as an open-loop call draws them. Checked: fed the open loop's own previous
outputs (same seed) the layer gives the open-loop run exactly; ``bptt`` equals ``loop``
(outputs and every gradient) and passes gradcheck; at evaluation it is zoneout's expectation,
deterministic; padded batches and both directions (float64 throughout)."""
import pytest
import torch

from rnnlab.cells.cell import input_projection, step
from torch.nn import functional as F

import rnnlab
from engine_check import LENGTHS, loss_of, make_inputs
from rnnlab.sequence import reverse_padded

DT = torch.float64
I, H, O = 3, 4, 2
CONFIGS = {
    "zoneout": {"zoneout": 0.3},
    "two-rates": {"zoneout": (0.2, 0.45)},
    "y-only": {"zoneout": (0.0, 0.4), "recurrent_dropout": 0.3},
    "all-masks": {"zoneout": (0.25, 0.35), "weight_drop": 0.3, "recurrent_dropout": 0.3},
    "layer-norm": {"zoneout": (0.25, 0.35), "weight_drop": 0.3, "recurrent_dropout": 0.3,
                   "layer_norm": True},
}
SHAPES = [(1, False, None), (2, True, LENGTHS)]
SHAPE_IDS = ["1-layer", "2-layers-bidir-lengths"]
SHORT = torch.tensor([3, 2])  # for T = 3, B = 2


def make(config, layers=1, bidirectional=False, I=I, H=H):
    layer = rnnlab.OutputFeedbackRNN(I, H, O, layers, bidirectional=bidirectional, dtype=DT,
                                     output_activation="tanh", **CONFIGS[config])
    with torch.no_grad():  # layer-norm gains away from 1, so no gradient is trivially equal
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer


def own_previous_outputs(out, y0, lengths, D):
    """The teacher that feeds each direction its own previous outputs: y*_{t-1} = y_{t-1} in the
    direction's own time (the forward outputs one step later, y_0 first; the backward ones one
    step earlier within each length)."""
    parts = []
    for d in range(D):
        y = out[..., d * O:(d + 1) * O]                                      # (T, B, O)
        if d == 1:
            y = reverse_padded(y, lengths)
        shifted = torch.cat((y0[d][None], y[:-1]))
        parts.append(reverse_padded(shifted, lengths) if d == 1 else shifted)
    return torch.cat(parts, -1).detach()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("layers, bidirectional, lengths", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("engine", ["loop", "bptt"])
def test_teacher_of_own_outputs_is_the_open_loop(config, layers, bidirectional, lengths, engine):
    """Same seed, teacher = the open loop's own previous outputs: outputs, final states and the
    last layer's (s_t, y_t) all equal the open-loop run (training mode, masks drawn)."""
    torch.manual_seed(21)
    layer = make(config, layers, bidirectional)
    layer.engine = engine
    D = 2 if bidirectional else 1
    x, (s0, y0) = make_inputs(layer)
    torch.manual_seed(4)
    out, h_n, states = layer(x, (s0, y0), lengths=lengths, return_states=True)
    teacher = own_previous_outputs(out, y0[-D:], lengths, D)  # the last layer's y_0
    torch.manual_seed(4)
    forced, tf_h_n, tf_states = layer(x, (s0, y0), lengths=lengths, return_states=True,
                                      teacher=teacher)
    for a, b in zip((out, *h_n, *states), (forced, *tf_h_n, *tf_states)):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
    torch.manual_seed(5)  # the masks matter: other draws, another run
    other, _ = layer(x, (s0, y0), lengths=lengths, teacher=teacher)
    assert (other - forced).abs().max() > 1e-3


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("layers, bidirectional, lengths", SHAPES, ids=SHAPE_IDS)
def test_teacher_forced_bptt_equals_loop(config, layers, bidirectional, lengths):
    """Same seed: outputs, final states and the gradients w.r.t. input, initial states, teacher
    and every parameter agree between ``bptt`` and ``loop``."""
    torch.manual_seed(22)
    layer = make(config, layers, bidirectional)
    x, hx = make_inputs(layer)
    D = 2 if bidirectional else 1
    teacher = (0.5 * torch.randn(5, 3, D * O, dtype=DT)).requires_grad_()
    wrt = [x, *hx, teacher, *layer.parameters()]
    names = ["input", "s0", "y0", "teacher"] + [n for n, _ in layer.named_parameters()]
    res = []
    for engine in ("loop", "bptt"):
        layer.engine = engine
        torch.manual_seed(6)
        out, h_n = layer(x, hx, lengths=lengths, teacher=teacher)
        assert layer.last_engine == engine
        res.append(([out, *h_n], torch.autograd.grad(loss_of(out, h_n), wrt, allow_unused=True)))
    (ref_v, ref_g), (v, g) = res
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    for name, a, b in zip(names, ref_g, g):
        assert (a is None) == (b is None), name
        if name in ("teacher", "weight_yh_l0", "weight_hy_l0", "weight_hh_l0"):
            assert a is not None and a.abs().sum() > 0, name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("config", ["all-masks", "layer-norm"])
def test_teacher_forced_gradcheck(config):
    """gradcheck of ``bptt`` teacher-forced under zoneout, the masks fixed by the seed, with a
    padded batch, w.r.t. input, initial states, teacher and every parameter."""
    torch.manual_seed(23)
    layer = make(config, I=2, H=3)
    layer.engine = "bptt"
    x, hx = make_inputs(layer, T=3, B=2)
    teacher = (0.5 * torch.randn(3, 2, O, dtype=DT)).requires_grad_()
    names = [n for n, _ in layer.named_parameters()]

    def f(x, s0, y0, teacher, *params):
        torch.manual_seed(5)
        out, h_n = torch.func.functional_call(layer, dict(zip(names, params)), (x, (s0, y0)),
                                              {"lengths": SHORT, "teacher": teacher})
        return (out,) + h_n

    assert torch.autograd.gradcheck(f, (x, *hx, teacher, *layer.parameters()), eps=1e-6,
                                    atol=1e-6, rtol=1e-5)


def expected_in_eval(layer, x, s0, teacher, z_s, z_y):
    """Zoneout's expectation written out, teacher-forced (one layer, one direction):
    s_t = z_s s_{t-1} + (1 - z_s) s~_t, y_t = z_y y*_{t-1} + (1 - z_y) g(W_hy s~_t + b_y),
    s~_t = a(U x_t + V s_{t-1} + W y*_{t-1} + b) (layer-normalised: the cell's own step)."""
    p = layer.cell_params(0)
    cell = layer.cells[0]
    s, ys = s0[0], []
    for t in range(x.shape[0]):
        if getattr(cell, "layer_norm", False):
            xw = input_projection(cell, p, x[t])
            s_new, y_new = step(cell, p, xw, (s, teacher[t]))
        else:
            s_new = torch.tanh(x[t] @ p["weight_ih"].t() + s @ p["weight_hh"].t()
                               + teacher[t] @ p["weight_yh"].t() + p["bias_ih"] + p["bias_hh"])
            y_new = torch.tanh(s_new @ p["weight_hy"].t() + p["bias_hy"])
        ys.append(z_y * teacher[t] + (1 - z_y) * y_new)
        s = z_s * s + (1 - z_s) * s_new
    return torch.stack(ys), s


@pytest.mark.parametrize("config", CONFIGS)
def test_eval_is_the_expectation_and_deterministic(config):
    torch.manual_seed(24)
    layer = make(config).eval()
    x, (s0, y0) = make_inputs(layer, T=6)
    teacher = torch.randn(6, 3, O, dtype=DT)
    z_s, z_y = layer.regularization.zoneout
    with torch.no_grad():
        want, s_last = expected_in_eval(layer, x, s0, teacher, z_s, z_y)
        for engine in ("loop", "bptt"):
            layer.engine = engine
            runs = []
            for seed in (0, 1):
                torch.manual_seed(seed)
                runs.append(layer(x, (s0, y0), teacher=teacher))
            (out, (s_n, y_n)), (again, _) = runs
            assert torch.equal(out, again), engine
            torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(s_n[0], s_last, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(y_n[0], want[-1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("engine", ["loop", "bptt"])
def test_padded_batch_equals_each_sequence_alone(engine):
    """Each padded sequence of a batch gives what it gives alone (outputs and final states, the
    final y the one at its end, carried through the padding), and past its end the output is
    zero (eval: the masks are the expectation, the same for any batch)."""
    torch.manual_seed(25)
    layer = make("layer-norm", 1, True).eval()
    layer.engine = engine
    x, (s0, y0) = make_inputs(layer)
    teacher = torch.randn(5, 3, 2 * O, dtype=DT)
    with torch.no_grad():
        out, (s_n, y_n) = layer(x, (s0, y0), lengths=LENGTHS, teacher=teacher)
        for b, n in enumerate(LENGTHS.tolist()):
            alone, (s_b, y_b) = layer(x[:n, b:b + 1], (s0[:, b:b + 1], y0[:, b:b + 1]),
                                      teacher=teacher[:n, b:b + 1])
            torch.testing.assert_close(out[:n, b], alone[:, 0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(s_n[:, b], s_b[:, 0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(y_n[:, b], y_b[:, 0], rtol=1e-10, atol=1e-12)
            assert torch.equal(out[n:, b], torch.zeros_like(out[n:, b]))
