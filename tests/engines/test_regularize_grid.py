"""Regularization of the 2-D RNN (GridRNN): weight drop on U_v and U_h, recurrent dropout on the
predecessors' h, layer normalisation per gate block, zoneout towards the predecessors' mean.
The anti-diagonal sweep equals a plain loop over the grid, cell by cell, written from the
equations with the same masks (float64, outputs and gradients, every corner, both cells); it
passes gradcheck with the masks fixed; it is off at evaluation (zoneout: its expectation)."""
import pytest
import torch
from torch.nn import functional as F

from rnnlab.errors import ConfigError
from rnnlab.layers import LSTM, GridRNN
from rnnlab.engines.call import Call
from rnnlab.engines.loop import run_loop
from rnnlab.layers.grid_rnn import _MIRROR

DT = torch.float64
OPTIONS = {
    "weight_drop": {"weight_drop": 0.4},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "layer_norm": {"layer_norm": True},
    "all": {"layer_norm": True, "weight_drop": 0.3, "recurrent_dropout": 0.3, "zoneout": 0.25},
}
ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def ln(a, gain, blocks):
    """torch's layer_norm on each of ``blocks`` blocks of a's last dimension, times gain."""
    parts = a.chunk(blocks, -1)
    return torch.cat([F.layer_norm(v, v.shape[-1:], eps=1e-5) for v in parts], -1) * gain


def reference(layer: GridRNN, x: torch.Tensor, masks) -> torch.Tensor:
    """The module docstring's equations one cell at a time, each sweep on its mirrored grid from
    the top-left corner, with the masks of ``masks`` (a :class:`GridMasks`)."""
    B, Hg, Wg, C = x.shape
    H, G = layer.hidden_size, layer.gate_count
    zero = x.new_zeros(B, H)
    outs = []
    for k, mirror in enumerate(_MIRROR[:layer.directions]):
        xk = x.flip(mirror) if mirror else x
        W, Uv, Uh = layer.weight_ih[k], masks.weight_hh_v[k], masks.weight_hh_h[k]
        m = 1.0 if masks.recurrent is None else masks.recurrent[k]           # (B, H)
        b = layer.bias_ih[k] + layer.bias_hh[k]
        h, c = {}, {}
        for i in range(Hg):
            for j in range(Wg):
                hu, hl = h.get((i - 1, j), zero), h.get((i, j - 1), zero)
                a, u = xk[:, i, j] @ W.T, (m * hu) @ Uv.T + (m * hl) @ Uh.T
                if layer.layer_norm:
                    a, u = ln(a, layer.ln_gain_ih[k], G), ln(u, layer.ln_gain_hh[k], G)
                z = a + u + b
                if layer.cell == "rnn":
                    h_new = ACT[layer.nonlinearity](z)
                else:
                    zi, zfv, zfh, zg, zo = z.split(H, dim=1)
                    cu, cl = c.get((i - 1, j), zero), c.get((i, j - 1), zero)
                    c_new = (torch.sigmoid(zfv) * cu + torch.sigmoid(zfh) * cl
                             + torch.sigmoid(zi) * torch.tanh(zg))
                    c_out = ln(c_new, layer.ln_gain_c[k], 1) + layer.ln_bias_c[k] if layer.layer_norm else c_new
                    h_new = torch.sigmoid(zo) * torch.tanh(c_out)
                if masks.keeps is None:
                    h[i, j] = h_new
                    if layer.cell == "lstm":
                        c[i, j] = c_new
                else:   # s = k s~ + (1 - k) mean of the predecessors inside the grid
                    n = max(1, (i > 0) + (j > 0))
                    kh = masks.keeps[0][k, :, i, j]
                    h[i, j] = kh * h_new + (1 - kh) * ((i > 0) * hu + (j > 0) * hl) / n
                    if layer.cell == "lstm":
                        kc = masks.keeps[1][k, :, i, j]
                        c[i, j] = kc * c_new + (1 - kc) * ((i > 0) * cu + (j > 0) * cl) / n
        out = torch.stack([torch.stack([h[i, j] for j in range(Wg)], 1) for i in range(Hg)], 1)
        outs.append(out.flip(mirror) if mirror else out)
    return torch.cat(outs, dim=-1)                                           # (B, Hg, Wg, D*H)


def make(cell, options, directions=4, C=2, H=3, **kw):
    layer = GridRNN(C, H, cell=cell, directions=directions, dtype=DT, **options, **kw)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
    return layer


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_diagonal_sweep_equals_loop_over_the_grid(cell, option, mode):
    torch.manual_seed(1)
    layer = make(cell, OPTIONS[option])
    getattr(layer, mode)()
    x = torch.randn(2, 3, 4, 2, dtype=DT, requires_grad=True)
    torch.manual_seed(5)
    masks = layer.draw_masks(x)
    torch.manual_seed(5)
    out = layer(x)
    ref = reference(layer, x, masks)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    w = torch.randn_like(out)
    params = [x] + list(layer.parameters())
    got = torch.autograd.grad((out * w).sum(), params)
    want = torch.autograd.grad((ref * w).sum(), params)
    names = ["x"] + [n for n, _ in layer.named_parameters()]
    if option in ("layer_norm", "all"):
        assert "ln_gain_hh" in names and (cell == "rnn" or "ln_gain_c" in names)
    for name, a, b in zip(names, got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


def test_masks_are_what_the_options_say():
    """Weight drop: entries of U_v, U_h scaled by 0 or 1/(1-q); recurrent dropout: one (D, B, H)
    mask of 0 or 1/(1-q); zoneout: keep weights 0/1 per unit and cell (about 1 - z of them 1)
    for h and c in training, 1 - z in evaluation; nothing in eval but zoneout's expectation."""
    torch.manual_seed(2)
    layer = make("lstm", {"weight_drop": 0.5, "recurrent_dropout": 0.25, "zoneout": (0.3, 0.6)}, H=8)
    x = torch.randn(5, 6, 7, 2, dtype=DT)
    U_v, U_h, m, (k_h, k_c) = layer.draw_masks(x)
    for U, U0 in ((U_v, layer.weight_hh_v), (U_h, layer.weight_hh_h)):
        assert set((U / U0).unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(U_v == 0, U_h == 0)                                # a mask each
    assert m.shape == (4, 5, 8) and set(m.unique().tolist()) == {0.0, 1 / 0.75}
    assert k_h.shape == k_c.shape == (4, 5, 6, 7, 8)
    assert set(k_h.unique().tolist()) == {0.0, 1.0}
    assert abs(float(k_h.mean()) - 0.7) < 0.05 and abs(float(k_c.mean()) - 0.4) < 0.05
    layer.eval()
    U_v, U_h, m, (k_h, k_c) = layer.draw_masks(x)
    assert U_v is layer.weight_hh_v and U_h is layer.weight_hh_h and m is None
    assert bool((k_h == 0.7).all()) and bool((k_c == 0.4).all())


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradcheck_on_a_tiny_grid(cell):
    layer = make(cell, OPTIONS["all"], directions=1, C=2, H=2)              # one sweep: the others
    x = torch.randn(2, 3, 2, 2, dtype=DT, requires_grad=True)                # are its mirror images
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *params):
        torch.manual_seed(5)
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(f, (x, *layer.parameters()))


@pytest.mark.parametrize("option", ["weight_drop", "recurrent_dropout"])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_dropout_is_off_in_eval(cell, option):
    """In eval mode the layer is the plain layer with the same weights; in training it is not."""
    torch.manual_seed(3)
    layer = make(cell, OPTIONS[option])
    twin = GridRNN(2, 3, cell=cell, directions=4, dtype=DT)
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 4, 2, dtype=DT)
    layer.eval()
    torch.testing.assert_close(layer(x), twin(x), rtol=0, atol=0)
    layer.train()
    assert not torch.allclose(layer(x), twin(x))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_one_column_with_zoneout_is_the_one_dimensional_lstm(mode):
    """On one column the predecessors' mean is the cell above alone: the top-left sweep is the
    1-D LSTM with zoneout, s_t = k s~_t + (1 - k) s_{t-1}, with the same keep weights."""
    torch.manual_seed(4)
    z = 0.35
    grid = make("lstm", {"zoneout": z}, directions=1)
    getattr(grid, mode)()
    x = torch.randn(3, 6, 1, 2, dtype=DT)
    torch.manual_seed(9)
    _, _, _, (k_h, k_c) = grid.draw_masks(x)                                # (1, B, 6, 1, H)
    one = LSTM(2, 3, engine="loop", dtype=DT)
    rows = list(range(0, 6)) + list(range(9, 15))                            # i, f_v, g, o
    with torch.no_grad():
        one.weight_ih_l0.copy_(grid.weight_ih[0, rows])
        one.weight_hh_l0.copy_(grid.weight_hh_v[0, rows])
        one.bias_ih_l0.copy_(grid.bias_ih[0, rows])
        one.bias_hh_l0.copy_(grid.bias_hh[0, rows])
    p = one.cell_params(0)
    seq = x[:, :, 0].transpose(0, 1)                                         # (T, B, C)
    keeps = tuple(k[0, :, :, 0].transpose(0, 1) for k in (k_h, k_c))        # (T, B, H)
    h_seq, _ = run_loop(Call(one.cells[0], p, zoneout=keeps), seq, (seq.new_zeros(3, 3), seq.new_zeros(3, 3)))
    torch.manual_seed(9)
    torch.testing.assert_close(grid(x)[:, :, 0].transpose(0, 1), h_seq, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad, found", [
    ({"zoneout": 1.5}, "1.5"), ({"recurrent_dropout": -0.1}, "-0.1"), ({"weight_drop": "x"}, "'x'"),
    ({"zoneout": (0.1, 0.2, 0.3)}, "3 rates"), ({"layer_norm": "x"}, "'x'"),
])
def test_bad_values_are_one_line_config_errors(bad, found):
    with pytest.raises(ConfigError) as e:
        GridRNN(3, 4, **bad)
    assert found in str(e.value) and "\n" not in str(e.value)


def test_describes_itself_and_reproduces_with_the_seed():
    layer = make("lstm", OPTIONS["all"])
    assert "layer_norm=True" in repr(layer) and "zoneout=0.25" in repr(layer)
    x = torch.randn(2, 3, 4, 2, dtype=DT)
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(layer(x))
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_bars_task_takes_the_options_for_either_architecture():
    """``rnnlab train --task bars --layer-norm --zoneout Z ...``: the model settings reach the
    grid's GridRNN and the raster's rnnlab layer; off by default."""
    from rnnlab.models.image_classifier import ImageClassifier, ImageClassifierConfig
    from rnnlab.tasks.bar_images import RECIPE
    settings = {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.1, "weight_drop": 0.2}
    assert {k: RECIPE.setting_defaults()[k] for k in settings} == {
        "layer_norm": False, "recurrent_dropout": 0.0, "zoneout": 0.0, "weight_drop": 0.0}
    for architecture, states in (("grid", 2), ("raster", 2)):
        model = ImageClassifier(ImageClassifierConfig(channels=1, classes=2, hidden_size=4,
                                                      architecture=architecture, **settings))
        reg = model.rnn.regularization
        assert (reg.weight_drop, reg.recurrent_dropout, reg.zoneout) == (0.2, 0.3, (0.1,) * states)
        assert any(n.startswith("ln_gain_hh") for n, _ in model.rnn.named_parameters())
        plain = ImageClassifier(ImageClassifierConfig(channels=1, classes=2, hidden_size=4,
                                                      architecture=architecture))
        assert plain.rnn.regularization is None
    # a regularizer among the cell options is the same option (every task alike); twice, refused
    ImageClassifierConfig(channels=1, classes=2, architecture="raster", cell_options={"zoneout": 0.1}).check()
    with pytest.raises(ConfigError, match="zoneout given twice"):
        ImageClassifierConfig(channels=1, classes=2, architecture="raster", zoneout=0.2,
                              cell_options={"zoneout": 0.1}).check()
