"""The diagnostics measure what they say: dL/dh_k, the Jacobian products, the spectra, the gates."""
from __future__ import annotations

import json
import math

import pytest
import torch

from rnnlab.cells.cell import input_projection, step

from engine_check import LENGTHS, loss_of
from rnnlab.diagnostics.gates import gate_statistics
from rnnlab.diagnostics.gradient_flow import decay_rate, norms_by_lag, state_gradients
from rnnlab.diagnostics.jacobians import jacobian_products
from rnnlab.diagnostics.spectrum import recurrent_spectra, spectral_radius
from rnnlab.errors import ConfigError
from rnnlab.layers import LAYERS

CASES = [("rnn", {}), ("lstm", {}), ("lstm", {"peephole": "diagonal"}), ("gru", {}),
         ("leaky", {"leak_mode": "learned"}), ("residual", {"gated": True}), ("deep_transition", {})]


def layer_of(name, options, layers=1, I=3, H=4):
    return LAYERS[name](I, H, num_layers=layers, dtype=torch.float64, **options)


def stepwise_state_grads(layer, x, lengths, loss_fn):
    """The reference: the first cell run step by step under autograd, every state kept with
    retain_grad, the rest of the stack (if any) fed its outputs; dL/dstate_t by autograd."""
    cell = layer.cells[0]
    p = layer.cell_params(0)
    T, B, _ = x.shape
    xw = input_projection(cell, p, x)                                       # (T, B, G*H)
    state = cell.initial_state(B, x)
    kept = []
    for t in range(T):
        new = step(cell, p, xw[t], state)
        if lengths is not None:
            m = (t < lengths).view(B, 1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
        for s in new:
            s.retain_grad()
        kept.append(new)
        state = new
    outs = torch.stack([s[cell.output_state] for s in kept])                 # (T, B, H)
    loss_fn(outs, kept).backward()
    return {name: torch.stack([s[k].grad for s in kept]) for k, name in enumerate(cell.state_names)}


@pytest.mark.parametrize("name,options", CASES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_recorded_state_gradients_equal_autograd(name, options, with_lengths):
    torch.manual_seed(0)
    layer = layer_of(name, options)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = LENGTHS if with_lengths else None

    def through_layer():
        out, h_n = layer(x, lengths=lengths)
        return loss_of(out, h_n)

    # the same loss both ways: outputs at every step (zero past each length) and the final states
    recorded = state_gradients(layer, through_layer)
    mask = None if lengths is None else (torch.arange(5)[:, None] < lengths[None, :]).unsqueeze(-1)

    def reference_loss(outs, kept):
        out = outs if mask is None else outs * mask
        return loss_of(out, tuple(kept[-1]) if len(kept[-1]) > 1 else kept[-1][0])

    expected = stepwise_state_grads(layer, x, lengths, reference_loss)
    h = layer.cells[0].state_names[layer.cells[0].output_state]
    torch.testing.assert_close(recorded, expected[h], rtol=1e-7, atol=1e-10)


def test_norms_by_lag_aligns_each_sequence_at_its_end():
    grad = torch.zeros(4, 2, 1)
    grad[:, 0, 0] = torch.tensor([1., 2., 3., 4.])   # length 4: lag 0 is step 4
    grad[:, 1, 0] = torch.tensor([10., 20., 0., 0.])  # length 2: lag 0 is step 2
    curve = norms_by_lag(grad, torch.tensor([4, 2]))
    assert curve[:2].tolist() == [(4 + 20) / 2, (3 + 10) / 2]
    assert curve[2:].tolist() == [2.0, 1.0]
    assert norms_by_lag(grad).tolist() == [2.0, 1.5, 11.0, 5.5]       # without lengths: from step T
    factor, _ = decay_rate(torch.tensor([1.0, 0.5, 0.25, 0.125]), skip=0)
    assert factor == pytest.approx(0.5)
    assert decay_rate(torch.tensor([1.0, 1e-3, 1e-7]), skip=0)[1] == 2.0


@pytest.mark.parametrize("name,options", CASES)
def test_jacobian_products_equal_autograd(name, options):
    torch.manual_seed(1)
    layer = layer_of(name, options)
    cell, p = layer.cells[0], {k: v.detach() for k, v in layer.cell_params(0).items()}
    x = torch.randn(4, 3, dtype=torch.float64)
    sizes = list(cell.state_sizes)

    def one_step(t, flat):
        state = tuple(s.unsqueeze(0) for s in flat.split(sizes))
        new = step(cell, p, input_projection(cell, p, x[t:t + 1]), state)
        return torch.cat([s[0] for s in new])

    s = torch.zeros(sum(sizes), dtype=torch.float64)
    jacobians = []
    for t in range(4):
        jacobians.append(torch.autograd.functional.jacobian(lambda v: one_step(t, v), s))
        s = one_step(t, s).detach()
    product = torch.eye(sum(sizes), dtype=torch.float64)
    got = list(jacobian_products(cell, p, x))
    for k, t in enumerate(range(3, -1, -1)):
        product = product @ jacobians[t]          # d s_4 / d s_t:  J_4 ... J_{t+1}
        torch.testing.assert_close(got[k], product, rtol=1e-9, atol=1e-12)


def test_spectrum_of_orthogonal_and_scaled_weights():
    layer = layer_of("rnn", {}, H=16)
    spectra = recurrent_spectra(layer.cells[0], layer.cell_params(0))
    assert list(spectra) == ["h"]
    torch.testing.assert_close(spectra["h"].abs(), torch.ones(16, dtype=torch.float64))  # orthogonal
    with torch.no_grad():
        layer.weight_hh_l0.mul_(0.5)
    assert spectral_radius(recurrent_spectra(layer.cells[0], layer.cell_params(0))["h"]) == \
        pytest.approx(0.5, abs=1e-9)
    lstm = layer_of("lstm", {}, H=5)
    assert list(recurrent_spectra(lstm.cells[0], lstm.cell_params(0))) == ["i", "f", "g", "o"]


def test_gate_statistics_count_what_the_gates_do():
    torch.manual_seed(2)
    lstm = layer_of("lstm", {"forget_bias": 20.0}, H=6)   # forget gate pinned open: always above 0.9
    x = torch.randn(7, 3, 3, dtype=torch.float64)
    stats = gate_statistics(lstm.cells[0], lstm.cell_params(0), x, torch.tensor([7, 3, 5]))
    assert set(stats) == {"input", "forget", "output"}
    assert stats["forget"]["above"] == 1.0 and stats["forget"]["below"] == 0.0
    assert len(stats["forget"]["mean_over_time"]) == 7
    # the input gate's statistics recomputed by hand from an autograd-free loop of the cell
    cell, p = lstm.cells[0], lstm.cell_params(0)
    state = cell.initial_state(3, x)
    values = []
    with torch.no_grad():
        for t in range(7):
            z = input_projection(cell, p, x[t]) + state[0] @ p["weight_hh"].t()
            state, (gates,) = cell.core(p, z, (), state, None)
            values.append(gates[:, :6][torch.tensor([True, t < 3, t < 5])])
    i = torch.cat(values)
    assert stats["input"]["mean"] == pytest.approx(float(i.mean()))
    assert stats["input"]["below"] == pytest.approx(float((i < 0.1).double().mean()))
    assert gate_statistics(layer_of("rnn", {}).cells[0], layer_of("rnn", {}).cell_params(0), x) == {}
    assert math.isfinite(stats["output"]["mean"])


# ------------------------------------------------------------------------------ rnnlab diagnose
FRESH = ["--length", "12", "--hidden-size", "8", "--train-sequences", "1", "--valid-sequences", "0",
         "--test-sequences", "6"]


def test_diagnose_a_fresh_model_writes_figures_that_match_autograd(tmp_path):
    from rnnlab.diagnostics import diagnose
    from rnnlab.tasks.long_memory import ADDING
    r = diagnose(task="adding", out=tmp_path / "d", cell="rnn", length=12, hidden_size=8,
                 train_sequences=1, valid_sequences=0, test_sequences=6)
    for name in ("gradient_flow.png", "jacobians.png", "spectrum.png", "diagnostics.json"):
        assert (tmp_path / "d" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "d" / "diagnostics.json").read_text())
    assert saved["gradient_flow"] == r["gradient_flow"] and len(saved["gradient_flow"]["norm"]) == 12
    # lag 0 by hand: L = mean_b (w.h_b + c - y_b)^2, so dL/dh_b = 2 (y^_b - y_b) w / B
    from rnnlab.diagnostics.diagnose import load_model
    _, data, model, _, _ = load_model(task="adding", settings=dict(cell="rnn", length=12, hidden_size=8,
                                      train_sequences=1, valid_sequences=0, test_sequences=6))
    examples = ADDING.examples(data, "test")
    x = torch.stack([e.x for e in examples], dim=1)
    y = torch.tensor([e.y for e in examples])
    with torch.no_grad():
        err = model(x) - y
    expected = float((2 * err.abs() / len(y)).mean() * model.output.weight.detach().norm())
    assert r["gradient_flow"]["norm"][0] == pytest.approx(expected, rel=1e-5)
    assert r["spectra"]["h"]["radius"] == pytest.approx(1.0, abs=1e-5)    # orthogonal at the start
    assert r["gates"] == {}


@pytest.mark.slow
def test_diagnose_on_the_command_line(tmp_path, capsys):
    from rnnlab.cli import main
    out = tmp_path / "d"
    assert main(["diagnose", "--task", "copy", "--cell", "lstm", *FRESH, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gradient flow" in text and "forget gate" in text and (out / "gates.png").exists()
    before = (out / "diagnostics.json").read_bytes()
    assert main(["diagnose", "--task", "copy", *FRESH, "--out", str(out)]) == 2      # no --force
    assert "already holds diagnostics" in capsys.readouterr().err
    assert (out / "diagnostics.json").read_bytes() == before
    run = tmp_path / "run"
    assert main(["train", "--task", "adding", "--cell", "gru", *FRESH, "--max-steps", "2",
                 "--out", str(run), "--no-progress"]) == 0
    assert main(["diagnose", str(run)]) == 0 and (run / "diagnostics" / "spectrum.png").exists()
    assert main(["diagnose", str(run), "--initial"]) == 0
    trained = json.loads((run / "diagnostics" / "diagnostics.json").read_text())
    initial = json.loads((run / "diagnostics-initial" / "diagnostics.json").read_text())
    assert trained["spectra"]["r"] != initial["spectra"]["r"]                # two updates moved W_hh
    capsys.readouterr()
    assert main(["diagnose", str(run), "--cell", "rnn"]) == 2
    assert "applies only to a fresh model" in capsys.readouterr().err
    assert main(["diagnose", str(run), "--units", "h:1", "--force"]) == 2
    assert "heatmap of a character language model" in capsys.readouterr().err
    assert main(["diagnose", "--task", "classify"]) == 2
    assert "diagnose knows the models of tasks adding, copy, lm" in capsys.readouterr().err


@pytest.mark.slow
def test_diagnose_a_character_language_model_finds_tracking_units(tmp_path):
    import rnnlab
    from rnnlab.diagnostics import diagnose
    from rnnlab.diagnostics.unit_heatmap import text_features
    text = "".join(f'def f{k}(x):\n    return "a{k}" + (x * {k})\n' for k in range(60))
    (tmp_path / "code.txt").write_text(text)
    s = rnnlab.train(data=str(tmp_path / "code.txt"), out=str(tmp_path / "lm"), hidden_size=16,
                     embed_size=8, batch_size=4, tbptt=20, max_steps=3, progress=False, sample_length=0)
    r = diagnose(s["run_dir"], window=30, batch=4)
    assert {u["feature"] for u in r["units"]} == {"quote", "column", "indentation", "brackets"}
    assert all(abs(u["correlation"]) > 0 for u in r["units"])
    assert (tmp_path / "lm" / "diagnostics" / "heatmap.png").stat().st_size > 0
    chosen = diagnose(s["run_dir"], window=30, batch=4, units=["h:3", "c:15"], force=True)["units"]
    assert [(u["state"], u["unit"]) for u in chosen] == [("h", 3), ("c", 15)]
    best = max(r["units"], key=lambda u: abs(u["correlation"]))     # chosen: its best property
    again = diagnose(s["run_dir"], window=30, batch=4, units=[f"{best['state']}:{best['unit']}"],
                     force=True)["units"][0]
    assert abs(again["correlation"]) >= abs(best["correlation"]) - 1e-12       # at least that one
    for bad, message in ((["x:1"], "STATE:UNIT"), (["h:16"], "units 0..15"), (["h"], "STATE:UNIT")):
        with pytest.raises(ConfigError, match=message):
            diagnose(s["run_dir"], window=30, batch=4, units=bad, force=True)
    f = text_features('ab "c\'d" (e[f])\n  g')
    assert f["quote"].tolist()[:9] == [0, 0, 0, 1, 1, 1, 1, 1, 0]
    assert f["brackets"].tolist()[9:14] == [1, 1, 2, 2, 1]
    assert f["column"].tolist()[-3:] == [0, 1, 2] and f["indentation"].tolist()[-1] == 2
