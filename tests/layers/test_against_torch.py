"""LSTM, GRU and RNN under each engine equal torch.nn's with the same weights."""
import itertools

import pytest
import torch

import rnnlab
from torch_check import assert_matches_torch

GRID = list(itertools.product(["native", "bptt", "loop"], [1, 2], [False, True], [False, True],
                              [False, True]))
IDS = [f"{e}-L{l}-bi{int(d)}-bf{int(bf)}-packed{int(p)}" for e, l, d, bf, p in GRID]


@pytest.mark.slow_cases
@pytest.mark.parametrize("ours_cls,theirs_cls", [(rnnlab.LSTM, torch.nn.LSTM),
                                                (rnnlab.GRU, torch.nn.GRU)], ids=["LSTM", "GRU"])
@pytest.mark.parametrize("engine,layers,bidirectional,batch_first,packed", GRID, ids=IDS)
def test_lstm_and_gru(ours_cls, theirs_cls, engine, layers, bidirectional, batch_first, packed):
    theirs = theirs_cls(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first)
    ours = ours_cls(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first,
                    engine=engine)
    assert_matches_torch(ours, theirs, batch_first=batch_first, packed=packed)
    assert ours.last_engine == engine


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("engine,layers,bidirectional,batch_first,packed", GRID, ids=IDS)
def test_rnn(nonlinearity, engine, layers, bidirectional, batch_first, packed):
    theirs = torch.nn.RNN(3, 5, layers, nonlinearity=nonlinearity, bidirectional=bidirectional,
                          batch_first=batch_first)
    ours = rnnlab.RNN(3, 5, layers, nonlinearity=nonlinearity, bidirectional=bidirectional,
                      batch_first=batch_first, engine=engine)
    assert_matches_torch(ours, theirs, batch_first=batch_first, packed=packed)


@pytest.mark.parametrize("with_compiled", [True, False], ids=["compiled", "no-compiler"])
def test_auto_picks_the_faster_engine_that_computes_the_configuration(with_compiled, monkeypatch, request):
    # on the CPU the compiled engine wherever it can run (built here); without it
    # (RNNLAB_COMPILED=0), torch's kernel for the float32 LSTM (oneDNN) and bptt for the rest
    if with_compiled:
        request.getfixturevalue("compiled_runs") or pytest.skip("the compiled engine cannot run here")
    else:
        monkeypatch.setenv("RNNLAB_COMPILED", "0")
    x = torch.randn(4, 2, 3)
    for layer, want in [(rnnlab.LSTM(3, 4), "native"),
                        (rnnlab.GRU(3, 4), "bptt"), (rnnlab.RNN(3, 4), "bptt"),
                        (rnnlab.LSTM(3, 4, dtype=torch.float64), "bptt"),
                        (rnnlab.LSTM(3, 4, peephole="diagonal"), "bptt"),
                        (rnnlab.LSTM(3, 4, forget_gate=False), "bptt"),
                        (rnnlab.RNN(3, 4, nonlinearity="sigmoid"), "bptt")]:
        layer(x.to(layer.weight_ih_l0.dtype))
        assert layer.last_engine == ("compiled" if with_compiled else want)
    lstm = rnnlab.LSTM(3, 4)
    lstm(x, return_states=True)  # the fused kernel cannot return every C_t
    assert lstm.last_engine == ("compiled" if with_compiled else "bptt")


def test_native_refuses_what_torch_lacks():
    with pytest.raises(ValueError, match="no fused kernel"):
        rnnlab.LSTM(3, 4, peephole="full", engine="native")(torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="every step"):
        rnnlab.LSTM(3, 4, engine="native")(torch.randn(2, 1, 3), return_states=True)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(1)
    m = rnnlab.LSTM(3, 8, 2, dropout=0.5, engine="bptt")
    x = torch.randn(5, 2, 3)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    torch.testing.assert_close(a, b)
    m.train()
    c, _ = m(x)
    assert not torch.allclose(a, c)
    m1 = rnnlab.LSTM(3, 8, 1, dropout=0.5, engine="bptt").train()  # one layer: no dropout applied
    torch.testing.assert_close(m1(x)[0], m1(x)[0])
