"""Skip connections through time (rnnlab.engines.skip): z_t = ... + W_skip h_{t-d}.

The hand-written backward equals autograd's loop and an independent plain-autograd recurrence
(values and gradients, float64, with lengths, bidirectional, several cells); gradcheck; d = 1 is
the plain cell with W_hh + W_skip; the native kernel refuses the option; the long-memory models
take ``skip_steps``.
"""
import pytest
import torch

import rnnlab
from engine_check import LENGTHS, assert_engines_agree, gradcheck_layer
from rnnlab.engines.skip import SkipConnections, output_gradient
from rnnlab.cli import main
from rnnlab.engines.bptt import record_state_gradients
from rnnlab.models.long_memory import AddingModel, AddingModelConfig, CopyModel, CopyModelConfig

CASES = [(rnnlab.RNN, {}), (rnnlab.RNN, {"nonlinearity": "relu", "bias": False}), (rnnlab.LSTM, {}),
         (rnnlab.LSTM, {"peephole": "diagonal"}), (rnnlab.GRU, {"reset_after": False}),
         (rnnlab.GRU, {}), (rnnlab.LeakyRNN, {}), (rnnlab.ResidualRNN, {"gated": True}),
         (rnnlab.DeepTransitionRNN, {})]
IDS = [f"{cls.__name__}-{o}" for cls, o in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("d,layers,bidirectional", [(1, 1, False), (3, 2, True)])
def test_bptt_equals_loop(case, d, layers, bidirectional):
    cls, options = case
    torch.manual_seed(0)
    layer = cls(3, 4, layers, bidirectional=bidirectional, dtype=torch.float64, skip_steps=d, **options)
    assert isinstance(layer.cells[0], SkipConnections)
    assert_engines_agree(layer, LENGTHS, return_states=True)
    assert_engines_agree(layer, None)


@pytest.mark.slow_cases
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4]], ids=[IDS[0], IDS[2], IDS[4]])
def test_gradcheck(case):
    cls, options = case
    torch.manual_seed(1)
    gradcheck_layer(cls(3, 4, dtype=torch.float64, skip_steps=2, **options), torch.tensor([3, 2]))


def direct_skip_rnn(x, lengths, W_ih, W_hh, W_skip, b, d):
    """The skip RNN written out: h_t = tanh(W_ih x_t + W_hh h_{t-1} + W_skip h_{t-d} + b), h_t = 0
    for t <= 0, the state carried unchanged past each sequence's end; returns (T, B, H)."""
    T, B, _ = x.shape
    past = [x.new_zeros(B, W_hh.shape[0])] * d           # h_{t-d} .. h_{t-1}
    out = []
    for t in range(T):
        h = torch.tanh(x[t] @ W_ih.T + past[-1] @ W_hh.T + past[-d] @ W_skip.T + b)
        real = (t < lengths).unsqueeze(1)
        h = torch.where(real, h, past[-1])
        # past the end the whole state is carried, the delay line included
        past = [torch.where(real, p_new, p_old) for p_new, p_old in zip(past[1:] + [h], past)]
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("engine", ["bptt", "loop"])
@pytest.mark.parametrize("d", [1, 4])
def test_equals_the_recurrence_written_out(engine, d):
    torch.manual_seed(2)
    T, B, I, H = 7, 3, 2, 5
    layer = rnnlab.RNN(I, H, skip_steps=d, engine=engine, dtype=torch.float64)
    with torch.no_grad():  # a biased W_skip, so that a wrong slot shows
        layer.weight_skip_l0.add_(0.3)
    x = torch.randn(T, B, I, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5])
    out, h_n = layer(x, lengths=lengths)
    w = torch.linspace(-1, 1, H, dtype=torch.float64)
    loss = (out * w).sin().sum() + h_n[0].sum()
    p = dict(layer.named_parameters())
    names = ["weight_ih_l0", "weight_hh_l0", "weight_skip_l0", "bias_ih_l0"]
    grads = torch.autograd.grad(loss, [p[n] for n in names])
    ref_h = direct_skip_rnn(x, lengths, *(p[n] for n in names[:3]), p["bias_ih_l0"] + p["bias_hh_l0"], d)
    mask = (torch.arange(T).unsqueeze(1) < lengths).unsqueeze(2)
    ref_out = ref_h * mask
    ref_loss = (ref_out * w).sin().sum() + ref_h[-1].sum()
    ref_grads = torch.autograd.grad(ref_loss, [p[n] for n in names])
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n[0][0], ref_h[-1], rtol=1e-10, atol=1e-12)
    for n, a, b in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=lambda m: f"{n}: {m}")


@pytest.mark.parametrize("cls", [rnnlab.RNN, rnnlab.LSTM])
def test_one_step_back_is_the_plain_cell_with_w_hh_plus_w_skip(cls):
    torch.manual_seed(3)
    skip = cls(3, 4, skip_steps=1, dtype=torch.float64, engine="bptt")
    plain = cls(3, 4, dtype=torch.float64, engine="bptt")
    with torch.no_grad():
        for name, param in plain.named_parameters():
            param.copy_(getattr(skip, name) + (skip.weight_skip_l0 if name == "weight_hh_l0" else 0))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out_s, _ = skip(x)
    out_p, _ = plain(x)
    torch.testing.assert_close(out_s, out_p, rtol=1e-12, atol=1e-12)
    # and the gradients: dW_hh and dW_skip of the skip cell each equal the plain cell's dW_hh
    g_s = torch.autograd.grad(out_s.sin().sum(), [skip.weight_hh_l0, skip.weight_skip_l0])
    g_p = torch.autograd.grad(out_p.sin().sum(), [plain.weight_hh_l0])[0]
    torch.testing.assert_close(g_s[0], g_p, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_s[1], g_p, rtol=1e-10, atol=1e-12)


def test_the_gradient_through_the_skip_connections_reaches_far_back():
    """With W_hh = 0 only the skip connections carry h back, d steps at a time: the total dL/dh_k
    (output_gradient) is nonzero exactly at lags that are multiples of d."""
    torch.manual_seed(4)
    d, T = 3, 10
    layer = rnnlab.RNN(2, 4, skip_steps=d, engine="bptt", dtype=torch.float64)
    with torch.no_grad():
        layer.weight_hh_l0.zero_()
    x = torch.randn(T, 2, 2, dtype=torch.float64)
    with record_state_gradients() as record:
        out, _ = layer(x)
        out[-1].sum().backward()
    g = output_gradient(layer.cells[0], record[-1][1]).norm(dim=(1, 2))      # (T,)
    for t in range(T):
        lag = T - 1 - t
        assert (g[t] > 0) == (lag % d == 0), (t, g)


def test_native_refuses_and_auto_runs_bptt():
    layer = rnnlab.LSTM(3, 4, skip_steps=2)
    assert layer.resolve_engine(x=torch.randn(5, 2, 3)) == "bptt"
    with pytest.raises(ValueError, match=r"no fused kernel for SkipConnections\(LSTMCell\(3, 4\), steps=2\)"):
        rnnlab.LSTM(3, 4, skip_steps=2, engine="native")(torch.randn(5, 2, 3))


def test_layer_parameters_state_and_errors():
    layer = rnnlab.GRU(3, 4, num_layers=2, bidirectional=True, skip_steps=5)
    assert layer.weight_skip_l1_reverse.shape == (12, 4)
    assert "skip_steps=5" in repr(layer)
    assert layer.cells[0].state_names == ("h", "delay") and layer.cells[0].state_sizes == (4, 20)
    out, (h_n, delay_n) = layer(torch.randn(6, 2, 3))
    assert out.shape == (6, 2, 8) and delay_n.shape == (4, 2, 20)
    torch.testing.assert_close(delay_n[..., :4], h_n)       # the delay line's newest slot is h_T
    assert isinstance(layer.cells[0].cell, rnnlab.GRUCell) and layer.cells[0].steps == 5
    with pytest.raises(ValueError, match="skip_steps must be a whole number >= 0"):
        rnnlab.RNN(3, 4, skip_steps=-1)
    feedback = rnnlab.OutputFeedbackRNN(3, 4, output_size=2, skip_steps=2)  # its delay line holds y
    assert feedback.cells[0].state_sizes == (4, 2, 4) and feedback.weight_skip_l0.shape == (4, 2)


def test_long_memory_models_take_skip_steps(tmp_path, capsys):
    m = AddingModel(AddingModelConfig(inputs=2, cell="rnn", hidden_size=8, skip_steps=4))
    assert m.rnn.skip_steps == 4 and m(torch.randn(9, 3, 2)).shape == (3,)
    c = CopyModel(CopyModelConfig(symbols=10, classes=9, cell="gru", hidden_size=8, skip_steps=2))
    assert c(torch.randint(0, 10, (7, 3))).shape == (7, 3, 9)
    assert main(["train", "--task", "adding", "--cell", "rnn", "--skip-steps", "x1", "--out",
                 str(tmp_path / "r")]) == 2
    assert main(["train", "--task", "adding", "--cell", "rnn", "--skip-steps", "-2", "--out",
                 str(tmp_path / "r")]) == 2
    assert "skip_steps must be a whole number >= 0" in capsys.readouterr().err
