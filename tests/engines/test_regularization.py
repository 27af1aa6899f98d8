"""Regularization (rnnlab.regularization and the cells' layer_norm): every regularizer, on every
cell, under the hand-written ``bptt`` engine equals autograd's ``loop`` with the same masks
(float64, outputs and all gradients), passes gradcheck with its masks fixed, is off at evaluation
(zoneout: its expectation), and follows its own equation in a hand-written loop of the cell.
"""
import pytest
import torch

import rnnlab
from rnnlab.errors import ConfigError
from rnnlab.engines.regularization import Regularization, make_call
from engine_check import LENGTHS, loss_of, make_inputs

CELLS = [
    (rnnlab.RNN, {}), (rnnlab.RNN, {"nonlinearity": "relu"}),
    (rnnlab.LSTM, {}), (rnnlab.LSTM, {"peephole": "full"}), (rnnlab.LSTM, {"forget_gate": False}),
    (rnnlab.GRU, {"reset_after": True}), (rnnlab.GRU, {"reset_after": False}),
    (rnnlab.LeakyRNN, {"leak_mode": "learned", "leak": 0.7}), (rnnlab.ResidualRNN, {"gated": True}),
    (rnnlab.DeepTransitionRNN, {}), (rnnlab.DeepTransitionRNN, {"skip": False}),
]
REGULARIZERS = {
    "weight_drop": {"weight_drop": 0.4},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "all": {"weight_drop": 0.3, "recurrent_dropout": 0.3, "zoneout": 0.2},
}
SHORT = torch.tensor([3, 2])  # for T = 3, B = 2
CELL_IDS = [f"{c.__name__}-{o}" for c, o in CELLS]


def make(case, reg, layers=1, bidirectional=False, I=3, H=4):
    cls, options = case
    return cls(I, H, layers, bidirectional=bidirectional, dtype=torch.float64, **options, **reg)


def run_seeded(layer, engine, x, hx, lengths, seed=0, **extra):
    """Outputs and gradients of ``loss_of`` under ``engine``, the masks drawn from ``seed``."""
    layer.engine = engine
    torch.manual_seed(seed)
    out, h_n = layer(x, hx if len(hx) > 1 else hx[0], lengths=lengths, **extra)
    assert layer.last_engine == engine
    h_n = h_n if isinstance(h_n, tuple) else (h_n,)
    wrt = [x] + list(hx) + list(layer.parameters())
    return [out, *h_n], torch.autograd.grad(loss_of(out, h_n), wrt, allow_unused=True)


@pytest.mark.slow_cases
@pytest.mark.parametrize("reg", REGULARIZERS, ids=list(REGULARIZERS))
@pytest.mark.parametrize("case", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("layers, bidirectional, lengths", [(2, True, LENGTHS), (1, False, None)])
def test_bptt_equals_loop(case, reg, layers, bidirectional, lengths):
    torch.manual_seed(1)
    layer = make(case, REGULARIZERS[reg], layers, bidirectional)
    x, hx = make_inputs(layer)
    ref_v, ref_g = run_seeded(layer, "loop", x, hx, lengths)
    v, g = run_seeded(layer, "bptt", x, hx, lengths)
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
    for name, a, b in zip(names, ref_g, g):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.slow_cases
@pytest.mark.parametrize("case, reg, lengths", [
    (CELLS[2], "weight_drop", None), (CELLS[2], "recurrent_dropout", SHORT),
    (CELLS[3], "zoneout", SHORT), (CELLS[6], "all", None), (CELLS[0], "all", SHORT),
], ids=["lstm-wd", "lstm-rd", "lstm-peep-zo", "gru-all", "rnn-all"])
def test_gradcheck(case, reg, lengths):
    """gradcheck of the bptt engine w.r.t. input, states and parameters, the masks fixed (the
    generator reseeded at every call)."""
    torch.manual_seed(2)
    layer = make(case, REGULARIZERS[reg], I=2, H=3)
    layer.engine = "bptt"
    x, hx = make_inputs(layer, T=3, B=2)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *rest):
        hx_, ps = rest[:len(hx)], rest[len(hx):]
        torch.manual_seed(5)
        o, h = torch.func.functional_call(layer, dict(zip(names, ps)),
                                          (x, hx_ if len(hx_) > 1 else hx_[0]), {"lengths": lengths})
        return (o,) + (h if isinstance(h, tuple) else (h,))

    assert torch.autograd.gradcheck(f, (x, *hx, *layer.parameters()), eps=1e-6, atol=1e-6, rtol=1e-5)


def plain_twin(layer, case):
    """The same cells and weights without regularization."""
    cls, options = case
    twin = cls(layer.input_size, layer.hidden_size, layer.num_layers,
               bidirectional=layer.bidirectional, dtype=torch.float64, **options)
    twin.load_state_dict(layer.state_dict())
    return twin


@pytest.mark.parametrize("reg", ["weight_drop", "recurrent_dropout"])
@pytest.mark.parametrize("case", [CELLS[2], CELLS[6], CELLS[7]], ids=["lstm", "gru", "leaky"])
def test_dropout_is_off_in_eval(case, reg):
    """In eval mode (either engine) the layer is the plain cell; in training it is not."""
    torch.manual_seed(3)
    layer = make(case, REGULARIZERS[reg], 2, True)
    twin = plain_twin(layer, case)
    x, hx = make_inputs(layer)
    for engine in ("bptt", "loop"):
        layer.engine = twin.engine = engine
        want = twin(x, hx if len(hx) > 1 else hx[0], lengths=LENGTHS)[0]
        layer.eval()
        torch.testing.assert_close(layer(x, hx if len(hx) > 1 else hx[0], lengths=LENGTHS)[0], want,
                                   rtol=0, atol=0)
        layer.train()
        assert not torch.allclose(layer(x, hx if len(hx) > 1 else hx[0], lengths=LENGTHS)[0], want)


def cell_loop(cell, p, x, state, step):
    """A hand-written loop: state_t = step(t, state_{t-1}, the cell's new state), via the cell's
    own one-step module call with the (possibly masked) parameters ``p``."""
    outs = []
    for t in range(x.shape[0]):
        new = torch.func.functional_call(cell, p, (x[t], state))[1]
        new = new if isinstance(new, tuple) else (new,)
        prev = state if isinstance(state, tuple) else (state,)
        state = step(t, prev, new)
        state = state if len(state) > 1 else state[0]
        outs.append((state if isinstance(state, tuple) else (state,))[cell.output_state])
    return torch.stack(outs)


def loose_cell(layer):
    """A stand-alone cell of the layer's class and options holding the layer's own parameters."""
    cell = type(layer.cells[0])(layer.input_size, layer.hidden_size, dtype=torch.float64,
                                **layer.cell_options)
    return cell, layer.cell_params(0)


@pytest.mark.parametrize("case", [CELLS[0], CELLS[2], CELLS[6]], ids=["rnn", "lstm", "gru"])
def test_zoneout_equation(case):
    """Training: s_t = d_t s_{t-1} + (1 - d_t) s~_t with d_t ~ Bernoulli(z) per unit and step
    (the masks read back by drawing them from the same seed); evaluation: the expectation
    s_t = z s_{t-1} + (1 - z) s~_t."""
    z = 0.4
    torch.manual_seed(4)
    layer = make(case, {"zoneout": z})
    x, hx = make_inputs(layer, T=6)
    state0 = tuple(h[0] for h in hx)
    cell, p = loose_cell(layer)
    torch.manual_seed(9)
    keeps = make_call(cell, p, x, None, Regularization(zoneout=(z,) * len(state0)), True).zoneout
    assert all(((k == 0) | (k == 1)).all() for k in keeps)
    assert 0.2 < float(1 - torch.cat([k.flatten() for k in keeps]).mean()) < 0.6  # d_t ~ Bernoulli(z)
    want = cell_loop(cell, p, x, state0 if len(state0) > 1 else state0[0],
                     lambda t, prev, new: tuple(k[t] * n + (1 - k[t]) * s for k, n, s in zip(keeps, new, prev)))
    for engine in ("bptt", "loop"):
        layer.engine = engine
        torch.manual_seed(9)
        torch.testing.assert_close(layer(x, hx if len(hx) > 1 else hx[0])[0], want)
    layer.eval()
    want = cell_loop(cell, p, x, state0 if len(state0) > 1 else state0[0],
                     lambda t, prev, new: tuple(z * s + (1 - z) * n for n, s in zip(new, prev)))
    for engine in ("bptt", "loop"):
        layer.engine = engine
        torch.testing.assert_close(layer(x, hx if len(hx) > 1 else hx[0])[0], want)


def test_weight_drop_and_recurrent_dropout_equations():
    """An RNN: h_t = tanh(W_ih x_t + b + (W_hh * M / (1-q)) (m * h_{t-1})) with ONE weight mask M
    per call and ONE unit mask m per sequence, the same at every step."""
    q_w, q_h = 0.5, 0.3
    torch.manual_seed(6)
    layer = make(CELLS[0], {"weight_drop": q_w, "recurrent_dropout": q_h}, H=6)
    x, hx = make_inputs(layer, T=7, B=4)
    cell, p = loose_cell(layer)
    torch.manual_seed(11)
    call = make_call(cell, p, x, None, Regularization(weight_drop=q_w, recurrent_dropout=q_h), True)
    W_t, m = call.p["weight_hh"], call.masks[0]
    assert m.shape == (4, 6) and set(m.unique().tolist()) <= {0.0, 1 / (1 - q_h)}
    assert set((W_t / p["weight_hh"]).unique().tolist()) <= {0.0, 1 / (1 - q_w)}
    h = hx[0][0]
    outs = []
    for t in range(7):
        h = torch.tanh(x[t] @ p["weight_ih"].t() + p["bias_ih"] + p["bias_hh"] + (m * h) @ W_t.t())
        outs.append(h)
    want = torch.stack(outs)
    for engine in ("bptt", "loop"):
        layer.engine = engine
        torch.manual_seed(11)
        torch.testing.assert_close(layer(x, hx[0])[0], want)


def test_seeded_runs_reproduce_and_seeds_differ():
    layer = make(CELLS[2], REGULARIZERS["all"], 2, True)
    layer.engine = "bptt"
    x, hx = make_inputs(layer)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(layer(x, hx)[0])
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_native_refuses_and_auto_avoids():
    layer = rnnlab.LSTM(3, 4, weight_drop=0.5)
    assert "weight_drop=0.5" in repr(layer)
    layer.engine = "native"
    with pytest.raises(ValueError, match="fused kernel has no weight_drop"):
        layer(torch.randn(5, 2, 3))
    layer.engine = "auto"
    layer(torch.randn(5, 2, 3))
    assert layer.last_engine in ("compiled", "bptt")  # the engines that run the regularizers


@pytest.mark.parametrize("bad", [{"weight_drop": 1.0}, {"recurrent_dropout": -0.1},
                                 {"zoneout": "0.2"}, {"zoneout": (0.1, 0.2, 0.3)}])
def test_bad_options(bad):
    with pytest.raises(ConfigError):
        rnnlab.LSTM(3, 4, **bad)


def test_language_model_takes_the_options():
    from rnnlab.models.language_model import LanguageModel, LanguageModelConfig
    m = LanguageModel(LanguageModelConfig(vocab_size=20, hidden_size=8, weight_drop=0.5,
                                          recurrent_dropout=0.25, zoneout=0.1))
    reg = m.rnn.regularization
    assert (reg.weight_drop, reg.recurrent_dropout, reg.zoneout) == (0.5, 0.25, (0.1, 0.1))
    assert LanguageModel(LanguageModelConfig(vocab_size=20, hidden_size=8)).rnn.regularization is None


# ---------------------------------------------------------------------- layer normalisation
LN_CELLS = CELLS


def perturb_gains(layer):
    """Gains and shifts away from their 1 / 0 start, so that no gradient is trivially equal."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))


@pytest.mark.parametrize("with_masks", [False, True], ids=["ln", "ln+masks"])
@pytest.mark.parametrize("case", LN_CELLS, ids=[i for c, i in zip(CELLS, CELL_IDS) if c in LN_CELLS])
@pytest.mark.parametrize("layers, bidirectional, lengths", [(2, True, LENGTHS), (1, False, None)])
def test_layer_norm_bptt_equals_loop(case, with_masks, layers, bidirectional, lengths):
    torch.manual_seed(7)
    reg = {"layer_norm": True, **(REGULARIZERS["all"] if with_masks else {})}
    layer = make(case, reg, layers, bidirectional)
    perturb_gains(layer)
    x, hx = make_inputs(layer)
    ref_v, ref_g = run_seeded(layer, "loop", x, hx, lengths)
    v, g = run_seeded(layer, "bptt", x, hx, lengths)
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
    assert any(n.startswith("ln_gain_hh") for n in names)
    for name, a, b in zip(names, ref_g, g):
        assert a is not None and b is not None, name
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.slow_cases
@pytest.mark.parametrize("case, lengths", [(CELLS[3], SHORT), (CELLS[5], None), (CELLS[6], SHORT),
                                           (CELLS[8], SHORT)],
                         ids=["lstm-peep", "gru", "gru-notes", "residual"])
def test_layer_norm_gradcheck(case, lengths):
    torch.manual_seed(8)
    layer = make(case, {"layer_norm": True, "recurrent_dropout": 0.3}, I=2, H=3)
    perturb_gains(layer)
    layer.engine = "bptt"
    x, hx = make_inputs(layer, T=3, B=2)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *rest):
        hx_, ps = rest[:len(hx)], rest[len(hx):]
        torch.manual_seed(5)
        o, h = torch.func.functional_call(layer, dict(zip(names, ps)),
                                          (x, hx_ if len(hx_) > 1 else hx_[0]), {"lengths": lengths})
        return (o,) + (h if isinstance(h, tuple) else (h,))

    assert torch.autograd.gradcheck(f, (x, *hx, *layer.parameters()), eps=1e-6, atol=1e-6, rtol=1e-5)


def ln(a, gain, blocks):
    """torch's layer_norm applied to each of ``blocks`` blocks of a's last dimension, times gain."""
    parts = a.chunk(blocks, -1)
    return torch.cat([torch.nn.functional.layer_norm(v, v.shape[-1:], eps=1e-5) for v in parts], -1) * gain


def test_layer_norm_lstm_equals_direct_formula():
    """z = LN(W_ih x) + LN(W_hh h) + b per gate block; h = o tanh(LN(C) g_c + b_c), written
    out with torch.nn.functional.layer_norm, equals both engines, in training and in eval."""
    torch.manual_seed(9)
    layer = make(CELLS[2], {"layer_norm": True}, H=5)
    perturb_gains(layer)
    x, (h0, c0) = make_inputs(layer, T=6)
    p = layer.cell_params(0)
    h, c = h0[0], c0[0]
    outs = []
    for t in range(6):
        z = (ln(x[t] @ p["weight_ih"].t(), p["ln_gain_ih"], 4) + ln(h @ p["weight_hh"].t(), p["ln_gain_hh"], 4)
             + p["bias_ih"] + p["bias_hh"])
        i, f, g, o = z.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, p["ln_gain_c"], 1) + p["ln_bias_c"])
        outs.append(h)
    want = torch.stack(outs)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        for engine in ("bptt", "loop"):
            layer.engine = engine
            out, (h_n, c_n) = layer(x, (h0, c0))
            torch.testing.assert_close(out, want)
            torch.testing.assert_close(c_n[0], c)


def test_layer_norm_gru_equals_direct_formula():
    """torch's GRU form: n = tanh(LN(W_in x) + b_in + r (LN(W_hn h) + b_hn))."""
    torch.manual_seed(10)
    layer = make(CELLS[5], {"layer_norm": True}, H=5)
    perturb_gains(layer)
    x, (h0,) = make_inputs(layer, T=6)
    p = layer.cell_params(0)
    h, outs = h0[0], []
    for t in range(6):
        a_x = ln(x[t] @ p["weight_ih"].t(), p["ln_gain_ih"], 3) + p["bias_ih"]
        a_h = ln(h @ p["weight_hh"].t(), p["ln_gain_hh"], 3) + p["bias_hh"]
        (xr, xz, xn), (hr, hz, hn) = a_x.chunk(3, -1), a_h.chunk(3, -1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + r * hn) + z * h
        outs.append(h)
    for engine in ("bptt", "loop"):
        layer.engine = engine
        torch.testing.assert_close(layer(x, h0)[0], torch.stack(outs))


def test_layer_norm_gru_notes_equals_direct_formula():
    """The notes' GRU form: r, z = sigma(LN(W_i{r,z} x) + LN(W_h{r,z} h) + b),
    n = tanh(LN(W_in x) + LN(W_hn (r h)) + b_in + b_hn), in training and in eval."""
    torch.manual_seed(11)
    layer = make(CELLS[6], {"layer_norm": True}, H=5)
    perturb_gains(layer)
    x, (h0,) = make_inputs(layer, T=6)
    p = layer.cell_params(0)
    H, h, outs = 5, h0[0], []
    g_hh, W_hh = p["ln_gain_hh"], p["weight_hh"]
    for t in range(6):
        a_x = ln(x[t] @ p["weight_ih"].t(), p["ln_gain_ih"], 3) + p["bias_ih"] + p["bias_hh"]
        (xr, xz, xn) = a_x.chunk(3, -1)
        hr, hz = ln(h @ W_hh[:2 * H].t(), g_hh[:2 * H], 2).chunk(2, -1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + ln((r * h) @ W_hh[2 * H:].t(), g_hh[2 * H:], 1))
        h = (1 - z) * n + z * h
        outs.append(h)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        for engine in ("bptt", "loop"):
            layer.engine = engine
            torch.testing.assert_close(layer(x, h0)[0], torch.stack(outs))


@pytest.mark.parametrize("build", [
    lambda: rnnlab.LSTM(3, 4, layer_norm="yes"),
], ids=["not-bool"])
def test_layer_norm_refusals(build):
    with pytest.raises(ConfigError):
        build()


def test_layer_norm_native_refuses():
    layer = rnnlab.LSTM(3, 4, layer_norm=True, engine="native")
    with pytest.raises(ValueError, match="no fused kernel"):
        layer(torch.randn(4, 2, 3))
    assert rnnlab.LSTM(3, 4, layer_norm=False).cell_options == {}


@pytest.mark.parametrize("teacher", [False, True], ids=["open-loop", "teacher-forced"])
def test_output_feedback_masks_bptt_equals_loop(teacher):
    """The output-feedback layer (s_t reads y_{t-1}) under all three masks, both of its modes."""
    torch.manual_seed(12)
    layer = rnnlab.OutputFeedbackRNN(3, 4, 2, dtype=torch.float64, **REGULARIZERS["all"])
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, 2, dtype=torch.float64) if teacher else None
    res = []
    for engine in ("loop", "bptt"):
        layer.engine = engine
        torch.manual_seed(3)
        out, _ = layer(x, teacher=y)
        res.append([out, *torch.autograd.grad(out.sin().sum(), [x, *layer.parameters()])])
    for a, b in zip(*res):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)


def make_feedback(reg, layers=1, bidirectional=False, I=3, H=4, O=2):
    return rnnlab.OutputFeedbackRNN(I, H, O, layers, bidirectional=bidirectional, dtype=torch.float64,
                                    output_activation="tanh", layer_norm=True, **reg)


@pytest.mark.parametrize("teacher", [False, True], ids=["open-loop", "teacher-forced"])
@pytest.mark.parametrize("with_masks", [False, True], ids=["ln", "ln+masks"])
@pytest.mark.parametrize("layers, bidirectional, lengths", [(2, True, LENGTHS), (1, False, None)])
def test_layer_norm_output_feedback_bptt_equals_loop(teacher, with_masks, layers, bidirectional, lengths):
    """LN of U x, V s and W y each (open loop and teacher-forced), under bptt equals loop
    (outputs, all gradients)."""
    torch.manual_seed(13)
    layer = make_feedback(REGULARIZERS["all"] if with_masks else {}, layers, bidirectional)
    perturb_gains(layer)
    x, hx = make_inputs(layer)
    y = torch.randn(5, 3, (2 if bidirectional else 1) * 2, dtype=torch.float64) if teacher else None
    ref_v, ref_g = run_seeded(layer, "loop", x, hx, lengths, teacher=y)
    v, g = run_seeded(layer, "bptt", x, hx, lengths, teacher=y)
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    names = ["input"] + [f"hx{k}" for k in range(len(hx))] + [n for n, _ in layer.named_parameters()]
    assert any(n.startswith("ln_gain_yh") for n in names)
    for name, a, b in zip(names, ref_g, g):
        if teacher and name == "hx1" and a is None and b is None:  # y_0 unread: one layer, forced
            continue
        assert a is not None and b is not None, name
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("teacher", [False, True], ids=["open-loop", "teacher-forced"])
def test_layer_norm_output_feedback_gradcheck(teacher):
    torch.manual_seed(14)
    layer = make_feedback({"recurrent_dropout": 0.3}, I=2, H=3)
    perturb_gains(layer)
    layer.engine = "bptt"
    x, hx = make_inputs(layer, T=3, B=2)
    names = [n for n, _ in layer.named_parameters()]
    y = torch.randn(3, 2, 2, dtype=torch.float64) if teacher else None

    def f(x, *rest):
        hx_, ps = rest[:len(hx)], rest[len(hx):]
        torch.manual_seed(5)
        o, h = torch.func.functional_call(layer, dict(zip(names, ps)), (x, hx_),
                                          {"lengths": SHORT, "teacher": y})
        return (o,) + h

    assert torch.autograd.gradcheck(f, (x, *hx, *layer.parameters()), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_layer_norm_output_feedback_equals_direct_formula():
    """s = tanh(LN(U x) + LN(V s) + LN(W y) + b), y = tanh(W_hy s + b_y), in training and eval,
    open loop (y_{t-1} the previous output) and teacher-forced (y_{t-1} the given one)."""
    torch.manual_seed(15)
    layer = make_feedback({}, H=5)
    perturb_gains(layer)
    x, (s0, y0) = make_inputs(layer, T=6)
    p = layer.cell_params(0)
    teacher = torch.randn(6, 3, 2, dtype=torch.float64)

    def direct(forced):
        s, y, outs = s0[0], y0[0], []
        for t in range(6):
            y = teacher[t] if forced else y
            s = torch.tanh(ln(x[t] @ p["weight_ih"].t(), p["ln_gain_ih"], 1) + ln(s @ p["weight_hh"].t(), p["ln_gain_hh"], 1)
                           + ln(y @ p["weight_yh"].t(), p["ln_gain_yh"], 1) + p["bias_ih"] + p["bias_hh"])
            y = torch.tanh(s @ p["weight_hy"].t() + p["bias_hy"])
            outs.append(y)
        return torch.stack(outs), s

    for forced in (False, True):
        want, s_last = direct(forced)
        for mode in ("train", "eval"):
            getattr(layer, mode)()
            for engine in ("bptt", "loop"):
                layer.engine = engine
                out, (s_n, y_n) = layer(x, (s0, y0), teacher=teacher if forced else None)
                torch.testing.assert_close(out, want)
                torch.testing.assert_close(s_n[0], s_last)


def test_output_recurrent_cell_regularizes_its_feedback_weight():
    """The output-recurrent cell has no weight_hh: weight drop masks its W (weight_yh), zoneout
    covers (s, y) (tests/engines/test_regularize_output_recurrent.py checks them in full)."""
    from rnnlab.layers.output_recurrent import OutputRecurrentRNN
    from rnnlab.engines.regularization import recurrent_weights
    layer = OutputRecurrentRNN(3, 4, 2, zoneout=0.1, weight_drop=0.2)
    assert layer.regularization.zoneout == (0.1, 0.1)
    assert recurrent_weights(layer.cells[0]) == ("weight_yh",) and "weight_hh" not in layer.cell_params(0)
