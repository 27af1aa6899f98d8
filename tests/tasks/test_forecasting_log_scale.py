"""The forecaster's ``scale="log"``: targets read as the logarithm of their values in the data's
units, u = log(x + k) with k = mean / std, and forecasts brought back by exp(.) - k."""
import math

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.data.series import window_origins, windows
from rnnlab.errors import ConfigError, DataError
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from test_forecasting import model as linear_scale_model

K = 3.0          # mean / std of the series below: standardised values above -3 are positive


def model(**settings) -> Forecaster:
    """test_forecasting's small float64 forecaster, on the log scale of a series of level K."""
    return linear_scale_model(**dict(dict(scale="log", level=[K]), **settings))


def positive_windows(L=6, B=3, C=1):
    torch.manual_seed(0)
    return torch.rand(L, B, C, dtype=torch.float64) * 4 - 2.5          # x + K in [0.5, 4.5]


@pytest.mark.parametrize("norm", ["last", "mean_std", "none"])
def test_normalising_then_restoring_gives_the_values_back(norm):
    m = model(window_norm=norm)
    past = positive_windows()
    stats = m.window_stats(past)
    z = m._normed(past, stats)
    u = torch.log(past + K)
    if norm == "last":
        torch.testing.assert_close(z, u - u[-1], rtol=1e-12, atol=1e-12)
    elif norm == "none":
        torch.testing.assert_close(z, u, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m._restored(z, stats), past, rtol=1e-12, atol=1e-12)


def test_many_to_one_forecast_is_the_exponential_of_head_plus_highway():
    m = model(window_norm="last")
    past = positive_windows()
    z = torch.log(past + K) - torch.log(past[-1] + K)                    # (L, B, 1)
    out, _ = m.rnn(z)
    head = m.head(out[-1])                                                # (B, H)
    highway = z[-3:, :, 0].T @ m.highway.weight.T + m.highway.bias        # (B, H)
    expected = (past[-1] + K) * torch.exp(head + highway).T.unsqueeze(-1) - K    # (H, B, 1)
    torch.testing.assert_close(m(past), expected, rtol=1e-10, atol=1e-10)
    assert bool((m(past) + K > 0).all())                                 # forecasts are positive


def test_least_squares_start_without_window_norm_is_the_linear_ar_of_the_logarithms():
    rng = np.random.default_rng(4)
    t = np.arange(200)
    x = np.exp(0.01 * t + 0.2 * np.sin(2 * np.pi * t / 12) + 0.02 * rng.normal(size=200))[:, None]
    z = (x - x.mean()) / x.std()
    k = float(x.mean() / x.std())
    past, future = windows(z, window_origins(0, 200, 8, 3), 8, 3)         # (N, 8, 1), (N, 3, 1)
    m = model(horizon=3, highway_steps=8, window_norm="none", highway_init="least_squares",
              level=[k])
    m.fit_highway(torch.tensor(past).transpose(0, 1), torch.tensor(future).transpose(0, 1))
    design = np.concatenate([np.log(past[:, :, 0] + k), np.ones((len(past), 1))], axis=1)
    weight = np.linalg.lstsq(design, np.log(future[:, :, 0] + k), rcond=None)[0]
    expected = np.exp(design[:20] @ weight) - k                           # (20, 3)
    forecast = m(torch.tensor(past[:20]).transpose(0, 1))[:, :, 0].T.detach().numpy()
    np.testing.assert_allclose(forecast, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("mode, extra", [("many_to_many", {}),
                                         ("many_to_one", {"multi_step": "recursive"})])
def test_open_loop_feeds_back_values_on_the_data_scale(mode, extra):
    m = model(mode=mode, window_norm="mean_std", **extra)
    past = positive_windows()
    forecast = m(past, 5)                                                  # (5, B, 1)
    assert forecast.shape == (5, 3, 1) and bool((forecast + K > 0).all())
    if mode == "many_to_many":                                            # step by step, teacher-forced
        stats, seq = m.window_stats(past), past
        for _ in range(5):
            seq = torch.cat([seq, m.teacher_forced(seq, stats)[-1:]])
        torch.testing.assert_close(forecast, seq[6:], rtol=1e-10, atol=1e-10)
    else:                                                                 # each step from its window
        window = past
        for k in range(5):
            step = m.one_step(window)
            torch.testing.assert_close(forecast[k], step, rtol=1e-10, atol=1e-10)
            window = torch.cat([window[1:], step.unsqueeze(0)])


def test_values_at_or_below_zero_are_refused_in_one_line():
    m = model()
    past = positive_windows()
    past[2, 1, 0] = -K - 0.5                                             # the value -0.5 std
    with pytest.raises(DataError, match=r"^scale log reads the logarithm of each target: expected "
                                        r"values above 0 in the data's units, found value / std = -0.5$"):
        m(past)
    with pytest.raises(ConfigError, match="scale log needs the level .* of each of the 1 target"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, highway_steps=2, scale="log").check()
    with pytest.raises(ConfigError, match="did you mean 'log'"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, highway_steps=2, scale="logg").check()


def growth_csv(path, n=240, floor=1.0):
    rows = [f"{t},{floor + 10 * math.exp(0.01 * t) * (1.5 + math.sin(2 * math.pi * t / 12)):.5f}"
            for t in range(n)]
    path.write_text("t,passengers\n" + "\n".join(rows) + "\n")
    return path


def test_a_log_scale_run_trains_saves_and_forecasts_positive_values(tmp_path):
    path = growth_csv(tmp_path / "growth.csv")
    summary = rnnlab.train(task="forecast", data=str(path), date_column="", lookback=24,
                           horizons=[6], hidden_size=8, epochs=2, batch_size=16, window_norm="last",
                           highway_steps=13, scale="log", threads=1, progress=False,
                           out=str(tmp_path / "run"), say=lambda m: None)
    run = summary["run_dir"]
    result = rnnlab.evaluate(run)
    assert result["mse"] < 0.1 * result["persistence_mse"]
    values = path.read_text().splitlines()[1:]
    history = ",".join(v.split(",")[1] for v in values[-30:])
    forecast = [float(v) for v in rnnlab.predict(run, [history])[0].split(",")]
    assert len(forecast) == 6 and min(forecast) > 0
    with pytest.raises(DataError, match="scale log reads the logarithm of each target"):
        rnnlab.predict(run, [",".join(["-5"] * 24)])


def test_a_log_scale_run_on_values_at_or_below_zero_stops_before_training(tmp_path):
    path = growth_csv(tmp_path / "shifted.csv", floor=-40.0)
    with pytest.raises(DataError, match="scale log reads the logarithm of each target"):
        rnnlab.train(task="forecast", data=str(path), date_column="", lookback=24, horizons=[6],
                     hidden_size=8, epochs=1, scale="log", threads=1, progress=False,
                     out=str(tmp_path / "run"), say=lambda m: None)
    assert not (tmp_path / "run" / "summary.json").exists()
