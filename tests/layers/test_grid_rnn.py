"""The two-dimensional RNN: the anti-diagonal sweep equals a plain loop over the grid cell by cell
(values and gradients, every corner, both cells, non-square grids); one row or column is a 1-D
RNN / LSTM with the same weights; each corner's sweep reads exactly its quadrant."""
import pytest
import torch

from rnnlab.layers import LSTM, RNN, GridRNN
from rnnlab.layers.grid_rnn import CORNERS

DT = torch.float64


def reference(layer: GridRNN, x: torch.Tensor) -> torch.Tensor:
    """The module docstring's equations, one cell at a time: for each corner, rows and columns in
    the order that corner's sweep visits them, predecessors one step back towards the corner."""
    B, Hg, Wg, C = x.shape
    H = layer.hidden_size
    outs = []
    for k, corner in enumerate(CORNERS[:layer.directions]):
        di = 1 if corner.startswith("top") else -1          # direction of travel down the rows
        dj = 1 if corner.endswith("left") else -1           # and along the columns
        rows = range(Hg) if di == 1 else range(Hg - 1, -1, -1)
        cols = range(Wg) if dj == 1 else range(Wg - 1, -1, -1)
        W, Uv, Uh = layer.weight_ih[k], layer.weight_hh_v[k], layer.weight_hh_h[k]
        b = layer.bias_ih[k] + layer.bias_hh[k] if layer.bias else 0
        h, c = {}, {}
        zero = x.new_zeros(B, H)
        for i in rows:
            for j in cols:
                h_up, h_left = h.get((i - di, j), zero), h.get((i, j - dj), zero)
                z = x[:, i, j] @ W.T + h_up @ Uv.T + h_left @ Uh.T + b
                if layer.cell == "rnn":
                    h[i, j] = {"tanh": torch.tanh, "relu": torch.relu,
                               "sigmoid": torch.sigmoid}[layer.nonlinearity](z)
                else:
                    zi, zfv, zfh, zg, zo = z.split(H, dim=1)
                    c[i, j] = (torch.sigmoid(zfv) * c.get((i - di, j), zero)
                               + torch.sigmoid(zfh) * c.get((i, j - dj), zero)
                               + torch.sigmoid(zi) * torch.tanh(zg))
                    h[i, j] = torch.sigmoid(zo) * torch.tanh(c[i, j])
        outs.append(torch.stack([torch.stack([h[i, j] for j in range(Wg)], 1) for i in range(Hg)], 1))
    return torch.cat(outs, dim=-1)                                           # (B, Hg, Wg, D*H)


def layer_with_random_weights(cell, directions, C=2, H=3, **kw):
    layer = GridRNN(C, H, cell=cell, directions=directions, dtype=DT, **kw)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
    return layer


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("directions", [1, 4])
@pytest.mark.parametrize("grid", [(4, 6), (5, 3), (1, 4), (3, 1), (1, 1)])
def test_diagonal_sweep_equals_loop_over_the_grid(cell, directions, grid):
    layer = layer_with_random_weights(cell, directions)
    x = torch.randn(2, *grid, 2, dtype=DT, requires_grad=True)
    out = layer(x)
    ref = reference(layer, x)
    assert out.shape == (2, *grid, directions * 3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(out)
    params = [x] + list(layer.parameters())
    got = torch.autograd.grad((out * w).sum(), params)
    want = torch.autograd.grad((ref * w).sum(), params)
    for name, a, b in zip(["x"] + [n for n, _ in layer.named_parameters()], got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("nonlinearity", ["relu", "sigmoid"])
def test_other_nonlinearities_and_no_bias(nonlinearity):
    layer = layer_with_random_weights("rnn", 4, nonlinearity=nonlinearity, bias=False)
    x = torch.randn(2, 3, 4, 2, dtype=DT)
    torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-12, atol=1e-12)


def test_channels_first_is_the_same_layer():
    layer = layer_with_random_weights("lstm", 4)
    first = GridRNN(2, 3, cell="lstm", directions=4, channels_first=True, dtype=DT)
    first.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 5, 2, dtype=DT)
    torch.testing.assert_close(first(x.permute(0, 3, 1, 2)), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradcheck_on_a_tiny_grid(cell):
    layer = layer_with_random_weights(cell, 4, C=2, H=2)
    x = torch.randn(1, 3, 2, 2, dtype=DT, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(f, (x, *layer.parameters()))


def one_d_layer(grid: GridRNN, along: str):
    """A bidirectional 1-D rnnlab layer with the weights the 2-D sweeps use on one column
    (``along="v"``: U_v) or one row (``"h"``: U_h): forward = the top-left sweep, reverse = the
    sweep from the far end (bottom-left for a column, top-right for a row)."""
    C, H = grid.input_size, grid.hidden_size
    cls = LSTM if grid.cell == "lstm" else RNN
    one = cls(C, H, bidirectional=True, engine="loop", dtype=DT)
    U = grid.weight_hh_v if along == "v" else grid.weight_hh_h
    # the 2-D LSTM's gate rows i, f_v, f_h, g, o; the predecessor's forget gate is f
    rows = (list(range(0, H)) + list(range(H, 2 * H) if along == "v" else range(2 * H, 3 * H))
            + list(range(3 * H, 5 * H))) if grid.cell == "lstm" else list(range(H))
    far = CORNERS.index("bottom-left" if along == "v" else "top-right")
    with torch.no_grad():
        for k, suffix in ((0, "_l0"), (far, "_l0_reverse")):
            getattr(one, "weight_ih" + suffix).copy_(grid.weight_ih[k, rows])
            getattr(one, "weight_hh" + suffix).copy_(U[k, rows])
            getattr(one, "bias_ih" + suffix).copy_(grid.bias_ih[k, rows])
            getattr(one, "bias_hh" + suffix).copy_(grid.bias_hh[k, rows])
    return one, far


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("along", ["v", "h"])
def test_one_column_or_row_is_a_one_dimensional_rnn(cell, along):
    grid = layer_with_random_weights(cell, 4)
    one, far = one_d_layer(grid, along)
    x = torch.randn(2, 7, 1, 2, dtype=DT) if along == "v" else torch.randn(2, 1, 7, 2, dtype=DT)
    out = grid(x).view(2, 7, 4, 3)                                           # (B, T, D, H)
    seq = x.view(2, 7, 2).transpose(0, 1)                                    # (T, B, C)
    want, _ = one(seq)                                                       # (T, B, 2H)
    torch.testing.assert_close(out[:, :, 0].transpose(0, 1), want[..., :3], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[:, :, far].transpose(0, 1), want[..., 3:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_each_corner_sees_exactly_its_quadrant(cell):
    layer = layer_with_random_weights(cell, 4, H=4)
    Hg, Wg, (pi, pj) = 5, 6, (2, 3)
    x = torch.randn(1, Hg, Wg, 2, dtype=DT)
    y = x.clone()
    y[0, pi, pj] += 1.0                                                       # perturb one pixel
    changed = (layer(x) - layer(y)).abs().view(Hg, Wg, 4, 4).amax(-1) > 1e-12    # (Hg, Wg, D)
    i = torch.arange(Hg).view(Hg, 1)
    j = torch.arange(Wg).view(1, Wg)
    quadrant = {"top-left": (i >= pi) & (j >= pj), "top-right": (i >= pi) & (j <= pj),
                "bottom-left": (i <= pi) & (j >= pj), "bottom-right": (i <= pi) & (j <= pj)}
    for k, corner in enumerate(CORNERS):
        assert torch.equal(changed[..., k], quadrant[corner]), corner


def test_bad_input_and_options_are_refused():
    layer = GridRNN(3, 4)
    with pytest.raises(ValueError, match=r"expects a 4-D input \(B, H, W, C\), got \(2, 5, 3\)"):
        layer(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"C = 3 .* got \(2, 5, 5, 2\)"):
        layer(torch.randn(2, 5, 5, 2))
    with pytest.raises(ValueError, match="directions must be 1 or 4, got 2"):
        GridRNN(3, 4, directions=2)
    with pytest.raises(ValueError, match="cell must be 'rnn' or 'lstm', got 'gru'"):
        GridRNN(3, 4, cell="gru")



REGULARIZED = [{}, {"layer_norm": True}, {"zoneout": 0.3, "recurrent_dropout": 0.2},
               {"layer_norm": True, "zoneout": (0.2, 0.1), "weight_drop": 0.3}]


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
@pytest.mark.parametrize("options", REGULARIZED, ids=lambda o: "+".join(o) or "plain")
def test_raster_equals_the_diagonal_sweep_with_every_regularizer(cell, options):
    """The sweep that export runs (cell by cell in torch's scan) against the diagonal one, in
    training with the same masks drawn: values and gradients."""
    options = dict(options) if cell == "lstm" or "zoneout" not in options else {**options, "zoneout": 0.2}
    layer = layer_with_random_weights(cell, 4, **options).train()
    x = torch.randn(2, 3, 5, 2, dtype=DT, requires_grad=True)
    outs, grads = [], []
    for sweep in (layer._diagonals, layer._raster):
        layer._diagonals = sweep           # (the instance attribute hides the method)
        torch.manual_seed(1)
        y = layer(x)
        outs.append(y)
        grads.append(torch.autograd.grad((y * torch.linspace(-1, 1, y.numel(), dtype=DT).view_as(y)).sum(),
                                         [x, *layer.parameters()]))
        del layer._diagonals
    torch.testing.assert_close(outs[1], outs[0], atol=1e-12, rtol=0)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_torch_export_keeps_the_image_size_dynamic(cell):
    layer = layer_with_random_weights(cell, 4, layer_norm=True, zoneout=0.2).eval()
    dims = {0: torch.export.Dim("B", min=1), 1: torch.export.Dim("H", min=1), 2: torch.export.Dim("W", min=1)}
    with torch.no_grad():
        program = torch.export.export(layer, (torch.randn(2, 4, 6, 2, dtype=DT),), dynamic_shapes=(dims,))
        for shape in [(2, 4, 6, 2), (3, 7, 2, 2), (1, 1, 5, 2), (1, 5, 5, 2)]:
            x = torch.randn(*shape, dtype=DT)
            torch.testing.assert_close(program.module()(x), layer(x), atol=1e-12, rtol=0)
