"""``--task forecast --model esn``: the echo state network's readout against an independent ridge
solution, its run directory (saved reservoir, round trip, evaluate, predict) and its settings."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import rnnlab
from rnnlab.data.series import Standardiser, read_series, window_origins, windows
from rnnlab.errors import ConfigError
from rnnlab.models.esn_forecaster import RIDGE_GRID
from rnnlab.tasks import get_recipe
from rnnlab.tasks.recipe import load_run
from test_forecasting import sine_csv

ESN = dict(model="esn", targets=["load"], features=["temp"], lookback=8, horizons=[2, 4],
           reservoir_size=20, spectral_radius=0.7, leak=0.6, sparsity=0.8, input_scale=0.5,
           threads=1)


def train(path, out, **settings):
    return rnnlab.train(task="forecast", data=str(path), out=str(out), progress=False,
                        say=lambda m: None, **dict(ESN, **settings))


@pytest.fixture(scope="module")
def esn_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("esn")
    path = sine_csv(tmp, n=200)                      # train rows [0, 140), valid [140, 160)
    return path, train(path, tmp / "run", ridge=0.01)


def numpy_features(run_dir, values):
    """phi = [1; z_{t-1}; x_{t-1}] of every window of ``values`` (rows, F standardised), the
    reservoir run in numpy from the saved W and W_in, each window measured from its last value."""
    saved = load_file(str(Path(run_dir) / "model.safetensors"))
    W, W_in = saved["model/W"], saved["model/W_in"]                       # (N, N), (N, 1 + F)
    origins = window_origins(0, len(values), 8, 4)
    past, future = windows(values, origins, 8, 4)                        # (M, 8, F), (M, 4, F)
    last = past[:, -1:, :1]                                               # (M, 1, 1): m of "last"
    z = np.concatenate([past[:, :, :1] - last, past[:, :, 1:]], axis=2)   # (M, 8, F)
    x = np.zeros((len(origins), W.shape[0]))
    for s in range(8):
        pre = W_in[:, 0] + z[:, s] @ W_in[:, 1:].T + x @ W.T
        x = 0.4 * x + 0.6 * np.tanh(pre)                                  # leak 0.6
    phi = np.concatenate([np.ones((len(origins), 1)), z[:, -1], x], axis=1)       # (M, D)
    return phi, (future[:, :, 0] - last[:, :, 0]), last[:, 0, 0], origins


def standardised(path):
    s = read_series(path, ["load"], ["temp"])
    return Standardiser.fit(s.values[:140], s.columns).transform(s.values)


def test_readout_is_the_ridge_solution_of_numpy_lstsq(esn_run):
    path, summary = esn_run
    z = standardised(path)
    phi, Y, _, _ = numpy_features(summary["run_dir"], z[:140])            # the training windows
    D = phi.shape[1]
    # min ||Phi W^T - Y||^2 + beta ||W||^2  ==  lstsq of [Phi; sqrt(beta) I] W^T = [Y; 0]
    A = np.concatenate([phi, math.sqrt(0.01) * np.eye(D)])
    B = np.concatenate([Y, np.zeros((D, Y.shape[1]))])
    want = np.linalg.lstsq(A, B, rcond=None)[0].T                         # (H C, D)
    saved = load_file(str(Path(summary["run_dir"]) / "model.safetensors"))
    np.testing.assert_allclose(saved["model/W_out"], want, rtol=0, atol=1e-9)
    assert float(saved["model/ridge"]) == 0.01
    assert summary["steps"] == 0 and summary["readout"]["train_windows"] == len(phi)


def test_ridge_is_chosen_on_the_validation_windows(tmp_path):
    path = sine_csv(tmp_path, n=200)
    summary = train(path, tmp_path / "run")
    z = standardised(path)
    phi, Y, _, _ = numpy_features(summary["run_dir"], z[:140])
    phi_v, Y_v, _, origins = numpy_features(summary["run_dir"], z)
    keep = [i for i, t in enumerate(origins) if 140 <= t <= 160 - 4]     # targets in valid rows
    scores = {}
    for beta in RIDGE_GRID:
        W = np.linalg.solve(phi.T @ phi + beta * np.eye(phi.shape[1]), phi.T @ Y)   # (D, H)
        scores[beta] = ((phi_v[keep] @ W - Y_v[keep]) ** 2).mean()
    best = min(scores, key=scores.get)
    readout = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())["readout"]
    assert readout["ridge"] == best and readout["ridge_chosen_on"] == "valid"
    assert readout["valid_windows"] == len(keep)
    np.testing.assert_allclose(readout["valid_mse_by_ridge"][f"{best:g}"], scores[best], rtol=1e-9)
    assert summary["valid"]["mse"] == pytest.approx(scores[best], rel=1e-6)


def test_saved_reservoir_has_the_spectral_radius_and_sparsity_asked_for(esn_run):
    _, summary = esn_run
    W = load_file(str(Path(summary["run_dir"]) / "model.safetensors"))["model/W"]
    assert W.shape == (20, 20) and W.dtype == np.float64
    assert abs(np.abs(np.linalg.eigvals(W)).max() - 0.7) < 1e-9
    assert abs((W == 0).mean() - 0.8) < 0.1
    config = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert config["model"]["model"] == "esn" and config["model"]["spectral_radius"] == 0.7
    assert config["train"]["epochs"] == 1


def test_save_and_load_give_identical_forecasts(esn_run):
    path, summary = esn_run
    recipe = get_recipe("forecast")
    dcfg, mcfg, tcfg = recipe.configs(dict(ESN, data=str(path), ridge=0.01), "test")
    job = recipe.prepare(dcfg, tcfg)
    torch.manual_seed(tcfg.seed)                       # as rnnlab.train draws the reservoir
    fitted = recipe.build_model(job.assets, mcfg)
    torch.manual_seed(12345)                           # loading draws nothing that stays
    loaded = load_run(summary["run_dir"]).model
    for name in ("W", "W_in", "W_out", "ridge"):
        assert torch.equal(getattr(fitted, name), getattr(loaded, name)), name
    past, _ = job.windows(job.splits["test"])
    assert torch.equal(fitted(past), loaded(past))
    result = rnnlab.evaluate(summary["run_dir"])
    for k in ("mse", "mae_h2", "mse_h4"):
        assert result[k] == pytest.approx(summary["test"][k], rel=1e-12)
    assert {"persistence_mse_h4", "linear_ar_mse_h2"} <= set(result)


def test_predict_gives_the_forecast_in_the_data_units(esn_run, tmp_path):
    path, summary = esn_run
    rows = path.read_text().splitlines()
    table = rnnlab.predict(summary["run_dir"], rows[:31])                  # header, rows 0..29
    assert table[0] == "step,load" and len(table) == 5
    # by hand: the numpy features of the window at origin 30, the saved readout, back to units
    s = read_series(path, ["load"], ["temp"])
    scaler = Standardiser.fit(s.values[:140], s.columns)
    phi, _, last, origins = numpy_features(summary["run_dir"], scaler.transform(s.values[:34]))
    W_out = load_file(str(Path(summary["run_dir"]) / "model.safetensors"))["model/W_out"]
    i = origins.index(30)
    want = (phi[i] @ W_out.T + last[i]) * scaler.std[0] + scaler.mean[0]
    got = [float(r.split(",")[1]) for r in table[1:]]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    two = rnnlab.predict(summary["run_dir"], rows[:31], steps=2)
    assert two == table[:3]
    with pytest.raises(ConfigError, match="at most 4, got 5"):
        rnnlab.predict(summary["run_dir"], rows[:31], steps=5)
    from rnnlab.cli import main
    (tmp_path / "recent.csv").write_text("\n".join(rows[:31]) + "\n")
    assert main(["predict", summary["run_dir"], "--input", str(tmp_path / "recent.csv")]) == 0


@pytest.mark.parametrize("flags, message", [
    (["--leak", "1.5"], "leak must lie in (0, 1], got 1.5"),
    (["--sparsity", "1"], "sparsity must lie in [0, 1) (the fraction of zero reservoir weights), got 1.0"),
    (["--spectral-radius", "0"], "spectral_radius must lie in (0, inf), got 0.0"),
    (["--reservoir-size", "0"], "reservoir_size must be a positive whole number, got 0"),
    (["--ridge", "-1"], "ridge must lie in [0, inf) (0: chosen on the validation windows), got -1.0"),
    (["--reservoir-size", "2", "--sparsity", "0.99"], "at sparsity 0.99 has spectral radius 0 and "
                                                      "cannot be scaled to 0.9; lower sparsity"),
    (["--lr", "0.01"], "'lr' is not a setting of model esn"),
    (["--hidden-size", "8"], "'hidden_size' is not a setting of model esn"),
    (["--model", "esm"], "model takes one of 'rnn', 'esn'; got 'esm' (did you mean 'esn'?)"),
])
def test_bad_options_are_one_line(tmp_path, capsys, flags, message):
    from rnnlab.cli import main
    path = sine_csv(tmp_path, n=100)
    args = ["train", "--task", "forecast", "--data", str(path), "--lookback", "8", "--horizons", "4",
            "--model", "esn", "--out", str(tmp_path / "run")]
    code = main(args + flags)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_esn_settings_are_refused_for_the_recurrent_model_and_ridge_needs_validation(tmp_path):
    path = sine_csv(tmp_path, n=100)
    with pytest.raises(ConfigError, match="'ridge' is a setting of model esn; this run's model is 'rnn'"):
        rnnlab.train(task="forecast", data=str(path), lookback=8, horizons=[4], ridge=1.0,
                     epochs=1, progress=False, out=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="chooses its ridge on the validation windows, and this "
                                          "split has none: give --ridge"):
        rnnlab.train(task="forecast", data=str(path), lookback=8, horizons=[4], model="esn",
                     reservoir_size=10, valid_fraction=0.0, progress=False, out=str(tmp_path / "b"))
