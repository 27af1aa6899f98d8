import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab
from engine_check import (LENGTHS, assert_engines_agree, assert_matches_loop_of_cell,
                          gradcheck_layer, loss_of, make_inputs)
from rnnlab.sequence import reverse_padded

OPTIONS = [
    {},
    {"output_activation": "tanh"},
    {"output_activation": "sigmoid", "nonlinearity": "sigmoid"},
    {"nonlinearity": "relu", "init": "torch"},  # nonzero biases: no pre-activation on the kink
    {"bias": False},
]
SHAPES = [(1, False), (2, True), (1, True), (2, False)]
I, H, O = 3, 4, 2
F64 = torch.float64


def make(layers=1, bidirectional=False, **options):
    return rnnlab.OutputFeedbackRNN(I, H, O, layers, bidirectional=bidirectional, dtype=F64,
                                    **options)


def make_teacher(layer, T=5, B=3):
    D = 2 if layer.bidirectional else 1
    return (0.5 * torch.randn(T, B, D * O, dtype=F64)).requires_grad_()


def run(layer, engine, x, hx, teacher, lengths, return_states=False):
    """Values and gradients w.r.t. input, initial states, teacher and every parameter."""
    layer.engine = engine
    res = layer(x, hx, lengths=lengths, return_states=return_states, teacher=teacher)
    assert layer.last_engine == engine
    values = [res[0], *res[1]] + (list(res[2]) if return_states else [])
    wrt = [x, *hx, teacher, *layer.parameters()]
    return values, torch.autograd.grad(loss_of(*res), wrt, allow_unused=True)


def assert_teacher_forced_engines_agree(layer, lengths=None, return_states=False):
    x, hx = make_inputs(layer)
    teacher = make_teacher(layer)
    ref_v, ref_g = run(layer, "loop", x, hx, teacher, lengths, return_states)
    v, g = run(layer, "bptt", x, hx, teacher, lengths, return_states)
    names = ["input", "s0", "y0", "teacher"] + [n for n, _ in layer.named_parameters()]
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)
    for name, a, b in zip(names, ref_g, g):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("mode", ["open_loop", "teacher"])
def test_bptt_equals_loop(options, layers, bidirectional, with_lengths, mode):
    m = make(layers, bidirectional, **options)
    lengths = LENGTHS if with_lengths else None
    if mode == "open_loop":
        assert_engines_agree(m, lengths)
    else:
        assert_teacher_forced_engines_agree(m, lengths)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("mode", ["open_loop", "teacher"])
def test_bptt_equals_loop_all_states(options, mode):
    m = make(2, True, **options)
    if mode == "open_loop":
        assert_engines_agree(m, LENGTHS, return_states=True)
    else:
        assert_teacher_forced_engines_agree(m, LENGTHS, return_states=True)


@pytest.mark.slow_cases
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck_open_loop(options, layers, bidirectional, with_lengths):
    m = rnnlab.OutputFeedbackRNN(2, 3, O, layers, bidirectional=bidirectional, dtype=F64, **options)
    gradcheck_layer(m, torch.tensor([3, 1]) if with_lengths else None)


@pytest.mark.slow_cases
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck_teacher_forced(options, layers, bidirectional, with_lengths):
    """gradcheck of ``bptt`` under teacher forcing w.r.t. input, states, teacher and parameters."""
    m = rnnlab.OutputFeedbackRNN(2, 3, O, layers, bidirectional=bidirectional, dtype=F64, **options)
    m.engine = "bptt"
    lengths = torch.tensor([3, 1]) if with_lengths else None
    x, hx = make_inputs(m, T=3, B=2)
    teacher = make_teacher(m, T=3, B=2)
    names = [n for n, _ in m.named_parameters()]

    def f(x, s0, y0, teacher, *params):
        out, (s_n, y_n) = torch.func.functional_call(
            m, dict(zip(names, params)), (x, (s0, y0)), {"lengths": lengths, "teacher": teacher})
        return out, s_n, y_n

    assert torch.autograd.gradcheck(f, (x, *hx, teacher, *m.parameters()), eps=1e-6, atol=1e-6,
                                    rtol=1e-5)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_open_loop_layer_equals_loop_of_cell(options):
    assert_matches_loop_of_cell(make(**options), torch.randn(6, 2, I, dtype=F64))


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("engine", ["loop", "bptt"])
def test_teacher_forced_layer_equals_loop_of_cell(options, engine):
    """Teacher forcing is stepping the cell with the state (s_{t-1}, y*_{t-1}); y_0 of hx unread."""
    m = make(**options)
    m.engine = engine
    cell = rnnlab.OutputFeedbackCell(I, H, bias=m.bias, dtype=F64, **m.cell_options)
    cell.load_state_dict(m.cell_params(0))
    x, teacher = torch.randn(6, 2, I, dtype=F64), torch.randn(6, 2, O, dtype=F64)
    s0 = torch.randn(2, H, dtype=F64)
    s, outs = s0, []
    for t in range(6):
        y, (s, _) = cell(x[t], (s, teacher[t]))
        outs.append(y)
    out, (s_n, y_n) = m(x, (s0[None], torch.full((1, 2, O), 7.0, dtype=F64)), teacher=teacher)
    assert m.last_engine == engine
    torch.testing.assert_close(out, torch.stack(outs))
    torch.testing.assert_close(s_n[0], s)
    torch.testing.assert_close(y_n[0], outs[-1])


def own_previous_outputs(out, y0, lengths, D):
    """The teacher that feeds each direction its own outputs: forward outputs shifted one step
    later (y_0 first), backward outputs shifted one step earlier within each length."""
    parts = []
    for d in range(D):
        y = out[..., d * O:(d + 1) * O]  # (T, B, O), this direction's outputs
        if d == 1:
            y = reverse_padded(y, lengths)  # in the backward direction's own time
        shifted = torch.cat((y0[d][None], y[:-1]))
        parts.append(reverse_padded(shifted, lengths) if d == 1 else shifted)
    return torch.cat(parts, -1).detach()


@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("engine", ["loop", "bptt"])
def test_teacher_of_own_outputs_reproduces_open_loop(layers, bidirectional, with_lengths, engine):
    m = make(layers, bidirectional, output_activation="tanh")
    m.engine = engine
    lengths = LENGTHS if with_lengths else None
    x, (s0, y0) = make_inputs(m)
    out, (s_n, y_n), states = m(x, (s0, y0), lengths=lengths, return_states=True)
    D = 2 if bidirectional else 1
    teacher = own_previous_outputs(out, y0[-D:], lengths, D)  # the last layer's y_0
    tf_out, (tf_s_n, tf_y_n), tf_states = m(x, (s0, y0), lengths=lengths, return_states=True,
                                            teacher=teacher)
    for a, b in zip((out, s_n, y_n, *states), (tf_out, tf_s_n, tf_y_n, *tf_states)):
        torch.testing.assert_close(b, a)


def test_step_is_the_equations():
    """s_t = a(U x + V s + W y + b), y_t = g(W_hy s_t + b_y)."""
    cell = rnnlab.OutputFeedbackCell(I, H, O, output_activation="sigmoid", init="torch", dtype=F64)
    x, s, y = (torch.randn(2, n, dtype=F64) for n in (I, H, O))
    s_new = torch.tanh(x @ cell.weight_ih.T + s @ cell.weight_hh.T + y @ cell.weight_yh.T
                       + cell.bias_ih + cell.bias_hh)
    y_new = torch.sigmoid(s_new @ cell.weight_hy.T + cell.bias_hy)
    out, (s1, y1) = cell(x, (s, y))
    torch.testing.assert_close(s1, s_new)
    torch.testing.assert_close(y1, y_new)
    torch.testing.assert_close(out, y_new)


def test_teacher_forced_output_recurrence_runs_as_one_step(monkeypatch):
    """Teacher-forced, the output-recurrent cell's steps read nothing of each other: ``bptt`` runs
    them as one step over T*B rows; the output-feedback cell (V s_{t-1}) keeps its T steps."""
    import rnnlab.engines.bptt as bptt
    seen = []
    original = bptt.forward_states

    def spy(call, xw, state0):
        seen.append(tuple(xw.shape[:2]))
        return original(call, xw, state0)

    monkeypatch.setattr(bptt, "forward_states", spy)
    x, teacher = torch.randn(5, 3, I, dtype=F64), torch.randn(5, 3, O, dtype=F64)
    for cls, want in ((rnnlab.OutputRecurrentRNN, (1, 15)), (rnnlab.OutputFeedbackRNN, (5, 3))):
        seen.clear()
        m = cls(I, H, O, engine="bptt", dtype=F64)
        out, _ = m(x, teacher=teacher)
        out.sum().backward()
        assert seen == [want] and m.weight_yh_l0.grad.abs().sum() > 0


def test_layouts_batch_first_unbatched_packed():
    m = make(1, True)
    x, teacher = torch.randn(5, 3, I, dtype=F64), torch.randn(5, 3, 2 * O, dtype=F64)
    ref, ref_h = m(x, lengths=LENGTHS, teacher=teacher)
    mb = make(1, True)
    mb.load_state_dict(m.state_dict())
    mb.batch_first = True
    out, h = mb(x.transpose(0, 1), lengths=LENGTHS, teacher=teacher.transpose(0, 1))
    torch.testing.assert_close(out.transpose(0, 1), ref)
    packed_x = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    packed_t = pack_padded_sequence(teacher, LENGTHS, enforce_sorted=False)
    out, h = m(packed_x, teacher=packed_t)
    torch.testing.assert_close(out.data, pack_padded_sequence(ref, LENGTHS, enforce_sorted=False).data)
    for a, b in zip(h, ref_h):
        torch.testing.assert_close(a, b)
    out, h = m(x[:, 1], teacher=teacher[:, 1])  # unbatched (T, I)
    full, _ = m(x, teacher=teacher)
    torch.testing.assert_close(out, full[:, 1])


def test_parameters_and_errors(compiled_runs):
    m = rnnlab.OutputFeedbackRNN(3, 4, 2, bias=True)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (4, 3), "weight_hh_l0": (4, 4), "weight_yh_l0": (4, 2),
        "weight_hy_l0": (2, 4), "bias_ih_l0": (4,), "bias_hh_l0": (4,), "bias_hy_l0": (2,)}
    torch.testing.assert_close(m.weight_hh_l0 @ m.weight_hh_l0.T, torch.eye(4))
    assert len(m.state_dict()) == 7
    x = torch.randn(5, 2, 3)
    out, (s_n, y_n) = m(x)
    assert out.shape == (5, 2, 2) and s_n.shape == (1, 2, 4) and y_n.shape == (1, 2, 2)
    assert m.last_engine == ("compiled" if compiled_runs else "bptt")
    m.engine = "native"
    with pytest.raises(ValueError, match="native"):
        m(x)
    with pytest.raises(ValueError, match="native"):
        m(x, teacher=torch.randn(5, 2, 2))
    m.engine = "auto"
    with pytest.raises(ValueError, match=r"teacher .* shape \(5, 2, 2\)"):
        m(x, teacher=torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="output_activation"):
        rnnlab.OutputFeedbackCell(3, 4, 2, output_activation="relu6")
    with pytest.raises(ValueError, match="output_size"):
        rnnlab.OutputFeedbackRNN(3, 4, 0)
