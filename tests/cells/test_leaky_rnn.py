import pytest
import torch

import rnnlab
from engine_check import LENGTHS, assert_engines_agree

H = 4
UNIT_LEAKS = [0.1, 0.5, 0.9, 0.99]  # one per unit: several time scales


@pytest.mark.parametrize("leak", [0.25, UNIT_LEAKS])
def test_one_step_by_hand(leak):
    cell = rnnlab.LeakyRNNCell(3, H, leak=leak, init="torch", dtype=torch.float64)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    a = torch.as_tensor(leak, dtype=torch.float64)
    v = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    out, h1 = cell(x, h)
    torch.testing.assert_close(h1, a * h + (1 - a) * v, rtol=1e-12, atol=1e-14)
    assert out is h1


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
def test_leak_near_zero_is_the_vanilla_rnn(nonlinearity):
    m = rnnlab.LeakyRNN(3, H, 2, bidirectional=True, leak=1e-12, nonlinearity=nonlinearity,
                        dtype=torch.float64)
    rnn = rnnlab.RNN(3, H, 2, nonlinearity=nonlinearity, bidirectional=True, dtype=torch.float64)
    rnn.load_state_dict(m.state_dict())  # same parameter names; the fixed leak is no state
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    for a, b in zip(m(x, lengths=LENGTHS), rnn(x, lengths=LENGTHS)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_leak_near_one_holds_the_state():
    m = rnnlab.LeakyRNN(3, H, leak=1 - 1e-12, dtype=torch.float64)
    h0 = torch.randn(1, 2, H, dtype=torch.float64)
    out, _ = m(torch.randn(7, 2, 3, dtype=torch.float64), h0)
    torch.testing.assert_close(out, h0.expand(7, 2, H), rtol=0, atol=1e-10)


@pytest.mark.parametrize("leak", [0.5, UNIT_LEAKS])
def test_learned_leak_stays_inside_0_1(leak, compiled_runs):
    m = rnnlab.LeakyRNN(3, H, leak_mode="learned", leak=leak, dtype=torch.float64)
    opt = torch.optim.Adam(m.parameters(), lr=1.0)  # large steps, each moves the logit by ~1
    x, h0 = torch.randn(6, 2, 3, dtype=torch.float64), torch.randn(1, 2, H, dtype=torch.float64)
    for _ in range(6):
        out, _ = m(x, h0)
        loss = ((out - h0) ** 2).sum()  # best met by a -> 1: the state held
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.last_engine == ("compiled" if compiled_runs else "bptt")
    logit = m.leak_logit_l0.detach()
    assert (logit > 1).all()  # a raw leak taking these steps would have left (0, 1)
    a = torch.sigmoid(logit)
    assert ((a > 0) & (a < 1)).all() and (a > 0.9).all(), a


def test_fixed_leak_is_a_buffer_learned_leak_a_parameter():
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    fixed = rnnlab.LeakyRNN(3, H, leak=UNIT_LEAKS)
    assert [n for n, _ in fixed.named_parameters()] == names  # torch.nn.RNN's
    assert "leak_l0" in dict(fixed.named_buffers())  # owned by the layer, so it follows .to()
    assert "leak_l0" not in fixed.state_dict()  # a torch.nn.RNN state dict loads unchanged
    torch.testing.assert_close(fixed.leak_l0, torch.tensor(UNIT_LEAKS))
    assert fixed.double().leak_l0.dtype == torch.float64
    learned = rnnlab.LeakyRNN(3, H, leak_mode="learned", leak=0.8, bidirectional=True)
    assert learned.leak_logit_l0.shape == () and learned.leak_logit_l0_reverse.shape == ()
    assert dict(learned.named_buffers()) == {}


@pytest.mark.parametrize("init", ["rnnlab", "torch"])
def test_learned_leak_starts_at_leak(init):
    m = rnnlab.LeakyRNN(3, H, leak_mode="learned", leak=UNIT_LEAKS, init=init, dtype=torch.float64)
    torch.testing.assert_close(torch.sigmoid(m.leak_logit_l0),
                               torch.tensor(UNIT_LEAKS, dtype=torch.float64))


@pytest.mark.parametrize("to_double", [lambda m: m.double(), lambda m: m.to(torch.float64)],
                         ids=["double", "to"])
@pytest.mark.parametrize("options", [{"leak": UNIT_LEAKS}, {"leak": 0.3},
                                     {"leak_mode": "learned", "leak": UNIT_LEAKS}], ids=str)
def test_fixed_leak_follows_the_layer_dtype(to_double, options):
    m = to_double(rnnlab.LeakyRNN(3, H, 2, bidirectional=True, **options))  # built in float32
    out, h_n = m(torch.randn(5, 3, 3, dtype=torch.float64))
    assert out.dtype == h_n.dtype == torch.float64
    assert_engines_agree(m, LENGTHS)


@pytest.mark.parametrize("options", [{"leak": UNIT_LEAKS, "nonlinearity": "sigmoid"},
                                     {"leak_mode": "learned", "leak": UNIT_LEAKS}], ids=str)
def test_second_backward_through_retained_graph(options):
    m = rnnlab.LeakyRNN(3, H, engine="bptt", dtype=torch.float64, **options)  # grads over saves
    out, _ = m(torch.randn(5, 2, 3, dtype=torch.float64))
    first = torch.autograd.grad(out.sum(), list(m.parameters()), retain_graph=True)
    for a, b in zip(first, torch.autograd.grad(out.sum(), list(m.parameters()))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("options,match", [
    ({"leak": 0.0}, r"strictly inside \(0, 1\), got 0.0"),
    ({"leak": 1.0}, r"strictly inside \(0, 1\), got 1.0"),
    ({"leak": -0.5, "leak_mode": "learned"}, r"strictly inside \(0, 1\)"),
    ({"leak": float("nan")}, r"strictly inside \(0, 1\)"),
    ({"leak": [0.5, 0.5, 1.5, 0.5]}, r"strictly inside \(0, 1\), got values in \[0.5, 1.5\]"),
    ({"leak": [0.5, 0.5]}, r"shape \(\) or \(4,\) for leak_shape=None, got shape \(2,\)"),
    ({"leak": [[0.5] * 4]}, r"got shape \(1, 4\)"),
    ({"leak": UNIT_LEAKS, "leak_shape": "scalar"}, r"shape \(\) for leak_shape='scalar'"),
    ({"leak": "slow"}, r"leak must be a float or 4 floats"),
    ({"leak_mode": "trained"}, r"leak_mode must be 'fixed' or 'learned', got 'trained'"),
    ({"leak_shape": "units"}, r"leak_shape must be None, 'scalar' or 'unit', got 'units'"),
    ({"nonlinearity": "gelu"}, r"nonlinearity must be one of .*, got 'gelu'"),
    ({"init": "xavier"}, r"init must be one of"),
])
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        rnnlab.LeakyRNN(3, H, **options)
    with pytest.raises(ValueError, match=match):
        rnnlab.LeakyRNNCell(3, H, **options)
