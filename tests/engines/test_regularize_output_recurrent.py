"""Regularization of the output-recurrent RNN (s_t = a(U x_t + W y_{t-1} + b)): weight drop on W,
recurrent dropout on y_{t-1}, zoneout on (s, y) and layer normalisation, open loop and
teacher-forced. The hand-written ``bptt`` engine (open loop) and the one pass (teacher-forced)
equal autograd's step loop with the same masks (float64, outputs and all gradients), pass
gradcheck with the masks fixed, follow the equations written out by hand, and are off at
evaluation (zoneout: its expectation)."""
import pytest
import torch
from torch.nn import functional as F

from rnnlab.engines.regularization import make_call
from rnnlab.errors import ConfigError
from rnnlab.layers.output_recurrent import OutputRecurrentRNN
from engine_check import LENGTHS, loss_of, make_inputs

DT = torch.float64
OPTIONS = {
    "weight_drop": {"weight_drop": 0.4},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "layer_norm": {"layer_norm": True},
    "all": {"layer_norm": True, "weight_drop": 0.3, "recurrent_dropout": 0.3, "zoneout": (0.2, 0.3)},
}
SHORT = torch.tensor([3, 2])  # for T = 3, B = 2


def make(options, layers=1, bidirectional=False, I=3, H=4, O=2):
    layer = OutputRecurrentRNN(I, H, O, layers, bidirectional=bidirectional, dtype=DT,
                               output_activation="tanh", **options)
    with torch.no_grad():  # layer-norm gains away from 1, so no gradient is trivially equal
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer


def teacher_for(layer, T=5, B=3):
    D = 2 if layer.bidirectional else 1
    return torch.randn(T, B, D * layer.output_size, dtype=DT)


def run_seeded(layer, engine, x, hx, lengths, teacher, seed=3):
    """Outputs, final states and the gradients of ``loss_of`` under ``engine``, masks from ``seed``."""
    layer.engine = engine
    torch.manual_seed(seed)
    out, h_n = layer(x, hx, lengths=lengths, teacher=teacher)
    assert layer.last_engine == engine
    wrt = [x] + list(hx) + list(layer.parameters())
    return [out, *h_n], torch.autograd.grad(loss_of(out, h_n), wrt, allow_unused=True)


@pytest.mark.parametrize("forced", [False, True], ids=["open-loop", "teacher-forced"])
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("layers, bidirectional, lengths", [(2, True, LENGTHS), (1, False, None)],
                         ids=["2-bi-lengths", "1"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_bptt_and_one_pass_equal_the_loop(option, forced, layers, bidirectional, lengths, mode):
    """Open loop: the hand-written bptt equals the loop engine. Teacher-forced: the one pass (or,
    under zoneout, the pass with its element-wise blend over time) equals the step loop."""
    torch.manual_seed(1)
    layer = make(OPTIONS[option], layers, bidirectional)
    getattr(layer, mode)()
    x, hx = make_inputs(layer)
    teacher = teacher_for(layer) if forced else None
    ref_v, ref_g = run_seeded(layer, "loop", x, hx, lengths, teacher)
    v, g = run_seeded(layer, "bptt", x, hx, lengths, teacher)
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    names = ["input", "hx_s", "hx_y"] + [n for n, _ in layer.named_parameters()]
    if option in ("layer_norm", "all"):
        assert "ln_gain_yh_l0" in names and "ln_gain_ih_l0" in names
    for name, a, b in zip(names, ref_g, g):
        if a is None or b is None:  # s_0 (and y_0, forced) unread: autograd's None, bptt's zeros
            assert name in ("hx_s", "hx_y") and all(t is None or not t.any() for t in (a, b)), name
            continue
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.slow_cases
@pytest.mark.parametrize("forced", [False, True], ids=["open-loop", "teacher-forced"])
@pytest.mark.parametrize("option", OPTIONS)
def test_gradcheck(option, forced):
    """gradcheck of ``bptt`` (open loop) and the one pass (teacher-forced) w.r.t. input, states
    and parameters, the masks fixed (the generator reseeded at every call), with lengths."""
    torch.manual_seed(2)
    layer = make(OPTIONS[option], I=2, H=3)
    layer.engine = "bptt"
    x, hx = make_inputs(layer, T=3, B=2)
    teacher = teacher_for(layer, T=3, B=2) if forced else None
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *rest):
        torch.manual_seed(5)
        o, h = torch.func.functional_call(layer, dict(zip(names, rest[2:])), (x, rest[:2]),
                                          {"lengths": SHORT, "teacher": teacher})
        return (o,) + h

    assert torch.autograd.gradcheck(f, (x, *hx, *layer.parameters()), eps=1e-6, atol=1e-6, rtol=1e-5)


def ln(a, gain):
    return F.layer_norm(a, a.shape[-1:], eps=1e-5) * gain


@pytest.mark.parametrize("forced", [False, True], ids=["open-loop", "teacher-forced"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "ln"])
def test_equations_written_out(layer_norm, forced):
    """Training: s~_t = tanh(U x_t + W~ (m * y_{t-1}) + b) (each product layer-normalised with
    ``layer_norm``), y~_t = tanh(W_hy s~_t + b_y), s_t = k^s_t s~_t + (1 - k^s_t) s_{t-1},
    y_t = k^y_t y~_t + (1 - k^y_t) y_{t-1}, with W~ = W M / (1 - q) one mask per call, m one mask
    per sequence, k = 1 - d per unit and step (read back by drawing from the same seed); under
    teacher forcing y*_{t-1} takes y_{t-1}'s place. Evaluation: W, no m, k = 1 - z."""
    qw, qh, z = 0.5, 0.3, 0.4
    torch.manual_seed(6)
    layer = make({"layer_norm": layer_norm, "weight_drop": qw, "recurrent_dropout": qh, "zoneout": z}, H=6)
    x, (s0, y0) = make_inputs(layer, T=7, B=4)
    teacher = teacher_for(layer, T=7, B=4)
    cell, p = layer.cells[0], layer.cell_params(0)
    torch.manual_seed(11)
    call = make_call(cell, p, x, None, layer.regularization, True)
    (k_s, k_y), W, m = call.zoneout, call.p["weight_yh"], call.masks[1]
    assert m.shape == (4, 2) and set(m.unique().tolist()) <= {0.0, 1 / (1 - qh)}
    assert set((W / p["weight_yh"]).unique().tolist()) <= {0.0, 1 / (1 - qw)}
    assert k_s.shape == (7, 4, 6) and k_y.shape == (7, 4, 2)
    assert set(torch.cat((k_s.flatten(), k_y.flatten())).unique().tolist()) == {0.0, 1.0}

    def direct(W, m, k_s, k_y):
        s, y, outs, states = s0[0], y0[0], [], []
        for t in range(7):
            y_in = teacher[t] if forced else y
            a, f = x[t] @ p["weight_ih"].t(), (m * y_in) @ W.t()
            if layer_norm:
                a, f = ln(a, p["ln_gain_ih"]), ln(f, p["ln_gain_yh"])
            s_new = torch.tanh(a + f + p["bias_ih"])
            y_new = torch.tanh(s_new @ p["weight_hy"].t() + p["bias_hy"])
            s = k_s[t] * s_new + (1 - k_s[t]) * s
            y = k_y[t] * y_new + (1 - k_y[t]) * y_in
            outs.append(y)
            states.append(s)
        return torch.stack(outs), torch.stack(states)

    for mode, args in (("train", (W, m, k_s, k_y)),
                       ("eval", (p["weight_yh"], 1.0, torch.full_like(k_s, 1 - z), torch.full_like(k_y, 1 - z)))):
        getattr(layer, mode)()
        want_y, want_s = direct(*args)
        for engine in ("bptt", "loop"):
            layer.engine = engine
            torch.manual_seed(11)
            out, (s_n, y_n), states = layer(x, (s0, y0), teacher=teacher if forced else None,
                                            return_states=True)
            torch.testing.assert_close(out, want_y, msg=f"{mode} {engine}")
            torch.testing.assert_close(states[0], want_s, msg=f"{mode} {engine}")


@pytest.mark.parametrize("option", ["zoneout", "all"])
def test_teacher_forced_with_its_own_outputs_is_the_open_loop(option):
    """With the same masks, teacher forcing fed the open loop's own previous outputs gives the
    open-loop run: zoneout keeps the y that was fed (y*_{t-1} = y_{t-1} here)."""
    torch.manual_seed(7)
    layer = make(OPTIONS[option])
    x, (s0, y0) = make_inputs(layer)
    for engine in ("bptt", "loop"):
        layer.engine = engine
        torch.manual_seed(4)
        out, _ = layer(x, (s0, y0))
        teacher = torch.cat((y0, out[:-1])).detach()                        # y*_{t-1} = y_{t-1}
        torch.manual_seed(4)
        forced, _ = layer(x, (s0, y0), teacher=teacher)
        torch.testing.assert_close(forced, out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("forced", [False, True], ids=["open-loop", "teacher-forced"])
@pytest.mark.parametrize("option", ["weight_drop", "recurrent_dropout"])
def test_dropout_is_off_in_eval(option, forced):
    """In eval mode the layer is the plain layer with the same weights (both engines); in
    training it is not."""
    torch.manual_seed(8)
    layer = make(OPTIONS[option], 2, True)
    twin = make({}, 2, True)
    twin.load_state_dict(layer.state_dict())
    x, hx = make_inputs(layer)
    teacher = teacher_for(layer) if forced else None
    for engine in ("bptt", "loop"):
        layer.engine = twin.engine = engine
        want = twin(x, hx, lengths=LENGTHS, teacher=teacher)[0]
        layer.eval()
        torch.testing.assert_close(layer(x, hx, lengths=LENGTHS, teacher=teacher)[0], want, rtol=0, atol=0)
        layer.train()
        assert not torch.allclose(layer(x, hx, lengths=LENGTHS, teacher=teacher)[0], want)


def test_seeded_runs_reproduce_and_describe_themselves():
    layer = make(OPTIONS["all"])
    assert "weight_drop=0.3" in repr(layer) and "zoneout=(0.2, 0.3)" in repr(layer)
    x, hx = make_inputs(layer)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(layer(x, hx, teacher=teacher_for(layer) * 0)[0])
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


@pytest.mark.parametrize("bad, found", [
    ({"zoneout": 1.5}, "1.5"), ({"recurrent_dropout": -0.1}, "-0.1"), ({"weight_drop": "x"}, "'x'"),
    ({"zoneout": (0.1, 0.2, 0.3)}, "3 rates"), ({"layer_norm": "x"}, "'x'"),
])
def test_bad_values_are_one_line_config_errors(bad, found):
    with pytest.raises(ConfigError) as e:
        OutputRecurrentRNN(3, 4, 2, **bad)
    assert found in str(e.value) and "\n" not in str(e.value)
