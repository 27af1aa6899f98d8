"""The purely output-recurrent RNN, s_t = a(U x_t + W y_{t-1} + b): under teacher forcing its
one-pass training equals the step loop (values and gradients, float64), its hand-written open-loop
BPTT equals autograd, and it is the output-feedback RNN with V = 0."""
import pytest
import torch

import rnnlab
from engine_check import LENGTHS, gradcheck_layer, loss_of, make_inputs
from rnnlab.cells.output_recurrent_cell import OutputRecurrentCell
from rnnlab.layers.output_recurrent import OutputRecurrentRNN
from rnnlab.sequence import reverse_padded

I, H, O = 3, 4, 2
F64 = torch.float64
OPTIONS = [
    {},
    {"output_activation": "tanh"},
    {"output_activation": "sigmoid", "nonlinearity": "sigmoid"},
    {"nonlinearity": "relu", "init": "torch"},
    {"bias": False},
]
SHAPES = [(1, False), (2, True), (1, True)]


def make(layers=1, bidirectional=False, **options):
    return OutputRecurrentRNN(I, H, O, layers, bidirectional=bidirectional, dtype=F64, **options)


def run(layer, engine, x, hx, teacher, lengths, return_states=False):
    """Values and gradients w.r.t. input, initial states, teacher and every parameter (an unused
    input's gradient as zeros)."""
    layer.engine = engine
    res = layer(x, hx, lengths=lengths, return_states=return_states, teacher=teacher)
    values = [res[0], *res[1]] + (list(res[2]) if return_states else [])
    wrt = [x, *hx, teacher, *layer.parameters()]
    grads = torch.autograd.grad(loss_of(*res), wrt, allow_unused=True)
    return values, [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_one_pass_equals_the_step_loop(options, layers, bidirectional, with_lengths):
    m = make(layers, bidirectional, **options)
    lengths = LENGTHS if with_lengths else None
    x, hx = make_inputs(m)
    D = 2 if bidirectional else 1
    teacher = (0.5 * torch.randn(5, 3, D * O, dtype=F64)).requires_grad_()
    ref_v, ref_g = run(m, "loop", x, hx, teacher, lengths, return_states=True)
    v, g = run(m, "bptt", x, hx, teacher, lengths, return_states=True)
    names = ["input", "s0", "y0", "teacher"] + [n for n, _ in m.named_parameters()]
    for a, b in zip(ref_v, v):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for name, a, b in zip(names, ref_g, g):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=lambda s: f"grad {name}: {s}")


def test_teacher_forced_training_runs_no_step():
    """One layer, teacher-forced under ``bptt``: the cell's core runs once over all T*B rows,
    forward and backward (all T steps are one pass); the ``loop`` engine steps T times."""
    m = make(engine="bptt")
    cell = m.cells[0]
    calls = []
    original, original_backward = cell.core, cell.core_backward
    cell.core = lambda p, z, *a: calls.append(z.shape[0]) or original(p, z, *a)
    cell.core_backward = lambda *a: calls.append("backward") or original_backward(*a)
    x, teacher = torch.randn(7, 2, I, dtype=F64), torch.randn(7, 2, O, dtype=F64)
    out, _ = m(x, teacher=teacher)
    out.sum().backward()
    assert calls == [14, "backward"] and m.weight_yh_l0.grad.abs().sum() > 0
    calls.clear()
    m.engine = "loop"
    m(x, teacher=teacher)
    assert calls == [2] * 7


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_open_loop_bptt_equals_autograd(options, with_lengths):
    m = make(2, True, **options)
    lengths = LENGTHS if with_lengths else None
    x, hx = make_inputs(m)
    ref_v, ref_g = run_open(m, "loop", x, hx, lengths)
    v, g = run_open(m, "bptt", x, hx, lengths)
    for a, b in zip(ref_v + ref_g, v + g):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def run_open(layer, engine, x, hx, lengths):
    layer.engine = engine
    out, h_n, states = layer(x, hx, lengths=lengths, return_states=True)
    wrt = [x, *hx, *layer.parameters()]
    grads = torch.autograd.grad(loss_of(out, h_n, states), wrt, allow_unused=True)
    return [out, *h_n, *states], [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]


def test_gradcheck_open_loop_and_teacher_forced():
    m = OutputRecurrentRNN(2, 3, O, 1, bidirectional=True, dtype=F64, output_activation="tanh")
    lengths = torch.tensor([3, 1])
    gradcheck_layer(m, lengths)
    x, hx = make_inputs(m, T=3, B=2)
    teacher = torch.randn(3, 2, 2 * O, dtype=F64, requires_grad=True)
    names = [n for n, _ in m.named_parameters()]

    def f(x, s0, y0, teacher, *params):
        out, (s_n, y_n) = torch.func.functional_call(
            m, dict(zip(names, params)), (x, (s0, y0)), {"lengths": lengths, "teacher": teacher})
        return out, s_n, y_n

    assert torch.autograd.gradcheck(f, (x, *hx, teacher, *m.parameters()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("teacher_forced", [False, True])
def test_it_is_the_output_feedback_rnn_with_v_zero(teacher_forced):
    m = make(1, True, output_activation="tanh", init="torch")
    ref = rnnlab.OutputFeedbackRNN(I, H, O, 1, bidirectional=True, dtype=F64, output_activation="tanh")
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(getattr(m, name) if hasattr(m, name) else torch.zeros_like(p))
    x, hx = make_inputs(m)
    teacher = torch.randn(5, 3, 2 * O, dtype=F64) if teacher_forced else None
    want_out, want_h = ref(x, hx, lengths=LENGTHS, teacher=teacher)
    got_out, got_h = m(x, hx, lengths=LENGTHS, teacher=teacher)
    for a, b in zip((want_out, *want_h), (got_out, *got_h)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_teacher_of_own_outputs_reproduces_open_loop():
    m = make(1, True, output_activation="tanh")
    x, (s0, y0) = make_inputs(m)
    out, (s_n, y_n) = m(x, (s0, y0), lengths=LENGTHS)
    parts = []
    for d in range(2):
        y = out[..., d * O:(d + 1) * O]
        y = reverse_padded(y, LENGTHS) if d else y
        shifted = torch.cat((y0[d][None], y[:-1]))
        parts.append(reverse_padded(shifted, LENGTHS) if d else shifted)
    tf_out, (tf_s, tf_y) = m(x, (s0, y0), lengths=LENGTHS, teacher=torch.cat(parts, -1).detach())
    for a, b in zip((out, s_n, y_n), (tf_out, tf_s, tf_y)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_step_is_the_equations_and_parameters():
    cell = OutputRecurrentCell(I, H, O, output_activation="sigmoid", init="torch", dtype=F64)
    x, s, y = (torch.randn(2, n, dtype=F64) for n in (I, H, O))
    s_new = torch.tanh(x @ cell.weight_ih.T + y @ cell.weight_yh.T + cell.bias_ih)
    out, (s1, y1) = cell(x, (s, y))
    torch.testing.assert_close(s1, s_new)
    torch.testing.assert_close(y1, torch.sigmoid(s_new @ cell.weight_hy.T + cell.bias_hy))
    torch.testing.assert_close(out, y1)
    m = OutputRecurrentRNN(3, 4, 2)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (4, 3), "weight_yh_l0": (4, 2), "weight_hy_l0": (2, 4), "bias_ih_l0": (4,),
        "bias_hy_l0": (2,)}
