"""--task forecast: the series reader, splits, standardisation, baselines, the forecaster's two
modes, and a tiny train / evaluate / predict on a synthetic sine."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.data.series import (ETT_HOURLY_BORDERS, Standardiser, read_series, split_borders,
                                window_origins, windows)
from rnnlab.errors import ConfigError, DataError
from rnnlab.forecasting.baselines import LinearAR, forecast_errors, persistence
from rnnlab.models.forecaster import Forecaster, ForecasterConfig

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def write(tmp_path, text, name="series.csv", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- reader
def test_reader_values_columns_and_dates(tmp_path):
    path = write(tmp_path, '"Month","a","b","c"\n"2000-01",1,2.5,-3\n"2000-02",4,5,6e1\n\n"2000-03",7,8,9\n')
    s = read_series(path, targets=["c"], features=["a"])
    assert s.columns == ["c", "a"] and s.targets == 1
    np.testing.assert_array_equal(s.values, [[-3, 1], [60, 4], [9, 7]])
    assert s.dates == ["2000-01", "2000-02", "2000-03"]
    default = read_series(path)                        # the last column, no features
    assert default.columns == ["c"]
    np.testing.assert_array_equal(default.values[:, 0], [-3, 60, 9])


def test_reader_without_a_date_column(tmp_path):
    path = write(tmp_path, "x,y\n1,10\n2,20\n")
    s = read_series(path, targets=["x", "y"])
    np.testing.assert_array_equal(s.values, [[1, 10], [2, 20]])
    assert s.dates == ["", ""]


@pytest.mark.parametrize("text, targets, message", [
    ("date,v\nd1,1\nd2,abc\n", (), "series.csv:3: expected a finite number in column 'v', found 'abc'"),
    ("date,v\nd1,1\nd2,\n", (), "series.csv:3: expected a finite number in column 'v', found an empty cell"),
    ("date,v\nd1,1\nd2,nan\n", (), "series.csv:3: expected a finite number in column 'v', found 'nan'"),
    ("date,v,w\nd1,1,2\nd2,3\n", (), "series.csv:3: expected 3 comma-separated cells as in the header, found 2"),
    ("date,OT,x\nd1,1,2\n", ("OTT",), "series.csv:1: expected a column named 'OTT' in the header, "
                                       "found date, OT, x (did you mean 'OT'?)"),
    ("date,v\n", (), "series.csv:1: expected rows of values after the header, found none"),
    ("date,v,v\nd,1,2\n", (), "series.csv:1: expected distinct column names, found 'v' twice"),
])
def test_reader_errors_name_file_line_expected_and_found(tmp_path, text, targets, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        read_series(path, targets=targets)
    assert str(e.value) == f"{tmp_path}/{message}"


def test_reader_encoding_error_names_the_line(tmp_path):
    path = write(tmp_path, b"date,v\nd1,1\nd2,\xff\n", mode="wb")
    with pytest.raises(DataError, match=r"series.csv:3: bytes that are not valid utf-8"):
        read_series(path)
    with pytest.raises(DataError, match="expected a text file at .*nothing is there"):
        read_series(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------------- splits
def test_ett_split_rows():
    assert split_borders(17420, "data/ETTh1.csv") == (0, 8640, 11520, 14400)
    assert split_borders(69680, "ETTm2.csv") == (0, 34560, 46080, 57600)
    assert ETT_HOURLY_BORDERS == (0, 12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)
    with pytest.raises(DataError, match="the ETT split needs at least 14400 rows, found 1000"):
        split_borders(1000, "ETTh1.csv")


def test_fraction_and_row_count_splits():
    assert split_borders(144, "airline.csv", test_rows=24, valid_rows=12) == (0, 108, 120, 144)
    assert split_borders(100, "x.csv", valid_fraction=0.1, test_fraction=0.2) == (0, 70, 80, 100)
    assert split_borders(100, "ETTh1.csv", split="fractions") == (0, 70, 80, 100)
    with pytest.raises(DataError, match="10 rows cannot hold 5 valid and 5 test rows"):
        split_borders(10, "x.csv", valid_rows=5, test_rows=5)
    with pytest.raises(ConfigError, match="did you mean 'ett'"):
        split_borders(100, "x.csv", split="et")


def test_window_origins_and_windows():
    # targets [t, t + 2) inside rows [0, 10), lookback [t - 3, t) from row 0 on
    assert window_origins(0, 10, 3, 2) == [3, 4, 5, 6, 7, 8]
    assert window_origins(10, 15, 3, 2) == [10, 11, 12, 13]
    assert window_origins(0, 10, 3, 2, stride=2) == [3, 5, 7]
    values = np.arange(20.0).reshape(10, 2)                           # row r = (2r, 2r + 1)
    past, future = windows(values, [3, 8], 3, 2)
    np.testing.assert_array_equal(past[0, :, 0], [0, 2, 4])
    np.testing.assert_array_equal(future[1, :, 1], [17, 19])


def test_the_task_splits_etth1_at_its_standard_rows(tmp_path):
    from rnnlab.tasks.forecasting import SeriesDataConfig, split_origins
    n = 14500
    rows = "\n".join(f"t{i},{math.sin(i / 7):.6f}" for i in range(n))
    path = write(tmp_path, "date,OT\n" + rows + "\n", name="ETTh1.csv")
    series = read_series(path)
    origins = split_origins(series, SeriesDataConfig(data=str(path)).check(), 96, 24)
    assert origins["train"][0] == 96 and origins["train"][-1] == 8640 - 24
    assert origins["valid"][0] == 8640 and origins["valid"][-1] == 11520 - 24
    assert origins["test"][0] == 11520 and origins["test"][-1] == 14400 - 24
    assert len(origins["test"]) == 2880 - 24 + 1


# --------------------------------------------------------------------------- standardisation
def test_standardiser_uses_training_statistics_and_round_trips():
    rng = np.random.default_rng(0)
    values = rng.normal([3.0, -1.0], [2.0, 0.5], size=(50, 2))
    scaler = Standardiser.fit(values[:30], ["a", "b"])
    np.testing.assert_allclose(scaler.mean, values[:30].mean(0))
    np.testing.assert_allclose(scaler.std, np.sqrt(((values[:30] - values[:30].mean(0)) ** 2).mean(0)))
    z = scaler.transform(values)
    np.testing.assert_allclose(z[:30].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:30].std(0), 1, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(z), values, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(z[:, :1], 1), values[:, :1], atol=1e-12)
    again = Standardiser.from_dict(json.loads(json.dumps(scaler.to_dict())), "x")
    np.testing.assert_array_equal(again.transform(values), z)
    with pytest.raises(DataError, match="column 'k' is constant over the training rows"):
        Standardiser.fit(np.ones((5, 1)), ["k"], "f.csv")


# -------------------------------------------------------------------------------- baselines
def test_persistence_repeats_the_last_value_of_each_target():
    past = np.array([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])           # (1, L=3, F=2)
    np.testing.assert_array_equal(persistence(past, 2, 1), [[[3.0], [3.0]]])
    np.testing.assert_array_equal(persistence(past, 1, 2), [[[3.0, 30.0]]])


def test_linear_ar_equals_numpy_lstsq():
    rng = np.random.default_rng(1)
    past, future = rng.normal(size=(40, 5, 2)), rng.normal(size=(40, 3, 2))
    ar = LinearAR.fit(past, future, targets=1)
    design = np.hstack([past.reshape(40, 10), np.ones((40, 1))])
    expected = np.linalg.lstsq(design, future[:, :, 0], rcond=None)[0]
    np.testing.assert_allclose(ar.weight, expected, atol=1e-12)
    new = rng.normal(size=(7, 5, 2))
    np.testing.assert_allclose(ar.predict(new)[:, :, 0],
                               np.hstack([new.reshape(7, 10), np.ones((7, 1))]) @ expected, atol=1e-12)
    again = LinearAR.from_dict(json.loads(json.dumps(ar.to_dict())), "x")
    np.testing.assert_array_equal(again.predict(new), ar.predict(new))


def test_linear_ar_recovers_an_exact_autoregression():
    # x_t = 0.5 x_{t-1} - 0.3 x_{t-2} + 0.1 + noise-free: a direct 1-step fit gets the coefficients
    x = [1.0, -2.0]
    for _ in range(60):
        x.append(0.5 * x[-1] - 0.3 * x[-2] + 0.1 + 1e-3 * math.sin(len(x) ** 2))
    past, future = windows(np.array(x)[:, None], window_origins(0, len(x), 2, 1), 2, 1)
    ar = LinearAR.fit(past, future, 1)
    np.testing.assert_allclose(ar.weight[:, 0], [-0.3, 0.5, 0.1], atol=2e-3)


def test_forecast_errors_by_hand():
    f = np.array([[[1.0], [2.0], [3.0]], [[0.0], [0.0], [0.0]]])       # (N=2, H=3, C=1)
    y = np.array([[[1.0], [0.0], [0.0]], [[1.0], [1.0], [-2.0]]])
    e = forecast_errors(f, y, [1, 2])
    assert e["mse"] == pytest.approx((0 + 4 + 9 + 1 + 1 + 4) / 6)
    assert e["mae"] == pytest.approx((0 + 2 + 3 + 1 + 1 + 2) / 6)
    assert e["mse_h1"] == pytest.approx((0 + 1) / 2)
    assert e["mae_h2"] == pytest.approx((0 + 2 + 1 + 1) / 4)


# ---------------------------------------------------------------------------- the forecaster
def model(**settings) -> Forecaster:
    cfg = dict(input_size=1, output_size=1, horizon=4, hidden_size=5, highway_steps=3,
               highway_init="random", engine="loop")
    cfg.update(settings)
    m = Forecaster(ForecasterConfig(**cfg)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))       # a non-zero head as well
    return m.eval()


@pytest.mark.parametrize("cell, norm, highway", [("lstm", "last", True), ("gru", "mean_std", True),
                                                 ("rnn", "none", False)])
def test_open_loop_equals_a_hand_written_loop_feeding_predictions_back(cell, norm, highway):
    m = model(mode="many_to_many", cell=cell, window_norm=norm, highway=highway, horizon=5,
              input_size=2, output_size=2)
    past = torch.randn(6, 3, 2, dtype=torch.float64)                      # (L, B, C)
    stats = m.window_stats(past)
    seq = past
    for _ in range(5):
        nxt = m.teacher_forced(seq, stats)[-1]                            # (B, C)
        seq = torch.cat([seq, nxt.unsqueeze(0)])
    expected = seq[6:]
    torch.testing.assert_close(m(past), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m.open_loop(past, 8)[:5], expected, rtol=1e-10, atol=1e-10)


def test_many_to_one_is_head_plus_highway_relative_to_the_last_value():
    m = model(mode="many_to_one", horizon=4, highway_steps=3, window_norm="last")
    past = torch.randn(6, 2, 1, dtype=torch.float64)
    z = past - past[-1]                                                   # (L, B, 1)
    out, _ = m.rnn(z)
    head = m.head(out[-1])                                                # (B, H)
    highway = z[-3:, :, 0].T @ m.highway.weight.T + m.highway.bias        # (B, H)
    expected = (head + highway).T.unsqueeze(-1) + past[-1]                # (H, B, 1)
    torch.testing.assert_close(m(past), expected, rtol=1e-10, atol=1e-10)


def test_least_squares_highway_without_window_norm_is_the_linear_ar_baseline():
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.normal(size=300))[:, None]
    past, future = windows(x, window_origins(0, 300, 8, 3), 8, 3)         # (N, 8, 1), (N, 3, 1)
    ar = LinearAR.fit(past, future, 1)
    m = model(mode="many_to_one", horizon=3, highway_steps=8, window_norm="none",
              highway_init="least_squares")
    m.fit_highway(torch.tensor(past).transpose(0, 1), torch.tensor(future).transpose(0, 1))
    assert float(m.head.weight.detach().abs().sum()) == 0.0
    forecast = m(torch.tensor(past[:20]).transpose(0, 1)).transpose(0, 1).detach().numpy()
    np.testing.assert_allclose(forecast, ar.predict(past[:20]), atol=1e-8)


def test_least_squares_highway_of_many_to_many_fits_next_values():
    # x_{t+1} - m = 0.9 (x_t - m) exactly: the one-step fit is a = (0, .., 0, 0.9), b = 0
    x = 0.9 ** np.arange(40.0)
    origins = window_origins(0, 40, 6, 2)
    past, future = windows(x[:, None], origins, 6, 2)
    m = model(mode="many_to_many", horizon=2, highway_steps=2, window_norm="none",
              highway_init="least_squares")
    m.fit_highway(torch.tensor(past).transpose(0, 1), torch.tensor(future).transpose(0, 1))
    torch.testing.assert_close(m.highway.weight, torch.tensor([[0.0, 0.9]], dtype=torch.float64),
                               atol=1e-8, rtol=0)
    forecast = m(torch.tensor(past).transpose(0, 1)).transpose(0, 1).detach().numpy()
    np.testing.assert_allclose(forecast, future, atol=1e-8)


def test_forecaster_settings_are_checked():
    with pytest.raises(ConfigError, match="every input must be a target"):
        ForecasterConfig(input_size=3, output_size=1, horizon=2, highway_steps=2,
                         mode="many_to_many").check()
    with pytest.raises(ConfigError, match="did you mean 'many_to_one'"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, mode="many_to_on").check()
    with pytest.raises(ConfigError, match="did you mean 'mean_std'"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, window_norm="mean-std").check()
    with pytest.raises(ConfigError, match="highway_steps must be a whole number of steps >= 1"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, highway_steps=0).check()


# ------------------------------------------------------------------------------ end to end
def sine_csv(tmp_path, n=400):
    rows = [f"2020-01-01 {t:05d},{20 + 5 * math.sin(2 * math.pi * t / 16):.5f},"
            f"{math.cos(t):.5f}" for t in range(n)]
    return write(tmp_path, "date,load,temp\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forecast")
    path = sine_csv(tmp)
    summary = rnnlab.train(task="forecast", data=str(path), targets=["load"], lookback=16,
                           horizons=[4, 8], hidden_size=12, highway=False, epochs=6, batch_size=16,
                           lr=1e-2, threads=1, progress=False, out=str(tmp / "run"), say=lambda m: None)
    return path, summary


def test_network_beats_persistence_on_a_sine(sine_run):
    path, summary = sine_run
    result = rnnlab.evaluate(summary["run_dir"])
    assert result["windows"] == 80 - 8 + 1                                 # test rows: 20% of 400
    for h in (4, 8):
        assert result[f"mse_h{h}"] < 0.5 * result[f"persistence_mse_h{h}"]
    assert result["mse"] == result["mse_h8"]
    # the baseline's figures come from exactly these windows: recompute them with numpy
    values = np.array([[20 + 5 * math.sin(2 * math.pi * t / 16)] for t in range(400)])
    values = np.round(values, 5)
    z = (values - values[:280].mean()) / values[:280].std()
    past, future = windows(z, window_origins(320, 400, 16, 8), 16, 8)
    assert result["persistence_mse"] == pytest.approx(((past[:, -1:] - future) ** 2).mean(), rel=1e-9)
    saved = json.loads((Path(summary["run_dir"]) / "normalisation.json").read_text())
    assert saved["columns"] == ["load"] and saved["mean"][0] == pytest.approx(values[:280].mean())


def test_predict_lines_and_csv_in_the_file_units(sine_run):
    path, summary = sine_run
    truth = [20 + 5 * math.sin(2 * math.pi * t / 16) for t in range(40)]
    lines = [",".join(f"{v:.5f}" for v in truth[:24]), "", "1,2"]
    with pytest.raises(DataError, match="input:3: expected at least 16 finite past values"):
        rnnlab.predict(summary["run_dir"], lines)
    out = rnnlab.predict(summary["run_dir"], lines[:2])
    assert out[1] == ""
    forecast = [float(v) for v in out[0].split(",")]
    assert len(forecast) == 8
    np.testing.assert_allclose(forecast, truth[24:32], atol=1.0)           # amplitude 5
    first3 = rnnlab.predict(summary["run_dir"], lines[:1], steps=3)[0]
    assert [float(v) for v in first3.split(",")] == forecast[:3]
    with pytest.raises(DataError, match=r"input:1: expected comma-separated numbers \(past values\) "
                                        r"or a CSV header naming the run's columns \(load\), found '1,2,x'"):
        rnnlab.predict(summary["run_dir"], ["1,2,x"])
    with pytest.raises(ConfigError, match="steps must be 0 .* and at most 8, got 9"):
        rnnlab.predict(summary["run_dir"], lines[:1], steps=9)
    csv_lines = path.read_text().splitlines()[:25]                         # header and rows 0..23
    table = rnnlab.predict(summary["run_dir"], csv_lines)
    assert table[0] == "step,load" and len(table) == 9
    assert [float(r.split(",")[1]) for r in table[1:]] == pytest.approx(forecast, abs=1e-4)


@pytest.mark.slow
def test_evaluate_json_from_the_command_line_and_on_another_file(sine_run, tmp_path):
    path, summary = sine_run
    other = sine_csv(tmp_path, n=200)
    result = rnnlab.evaluate(summary["run_dir"], str(other), part="all")
    assert result["windows"] == 200 - 16 - 8 + 1
    assert result["mse"] < result["persistence_mse"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "rnnlab", "evaluate", summary["run_dir"], "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert {"mse", "mae", "mse_h4", "mae_h8", "persistence_mse", "linear_ar_mse_h4"} <= set(figures)
    assert figures["mse"] == pytest.approx(rnnlab.evaluate(summary["run_dir"])["mse"])


def test_many_to_many_trains_teacher_forced_and_forecasts_in_open_loop(tmp_path):
    path = sine_csv(tmp_path, n=200)
    summary = rnnlab.train(task="forecast", data=str(path), targets=["load"], lookback=16,
                           horizons=[6], mode="many_to_many", hidden_size=8, highway_steps=4,
                           epochs=2, batch_size=16, threads=1, progress=False,
                           out=str(tmp_path / "run"), say=lambda m: None)
    result = rnnlab.evaluate(summary["run_dir"])
    assert result["mse_h6"] < result["persistence_mse_h6"]
    assert result["mse_h6"] == pytest.approx(summary["test"]["mse_h6"], rel=1e-6)


def test_task_settings_are_checked(tmp_path):
    path = sine_csv(tmp_path, n=100)
    with pytest.raises(ConfigError, match="every input must be a target"):
        rnnlab.train(task="forecast", data=str(path), targets=["load"], features=["temp"],
                     mode="many_to_many", lookback=8, horizons=[4], epochs=1, progress=False,
                     out=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="highway_steps 20 exceeds the lookback 8"):
        rnnlab.train(task="forecast", data=str(path), lookback=8, horizons=[4], highway_steps=20,
                     epochs=1, progress=False, out=str(tmp_path / "b"))
    with pytest.raises(DataError, match=r"the training rows \[0, 70\) hold 70 rows; a window needs "
                                        r"lookback 64 \+ horizon 24 = 88"):
        rnnlab.train(task="forecast", data=str(path), lookback=64, epochs=1, progress=False,
                     out=str(tmp_path / "c"))


@pytest.mark.skipif(not (DATA / "airline_passengers").exists(),
                    reason=f"airline data not found at {DATA / 'airline_passengers'}")
def test_airline_file_reads_as_144_months():
    s = read_series(DATA / "airline_passengers" / "airline-passengers.csv")
    assert s.columns == ["Passengers"] and len(s) == 144
    assert s.dates[0] == "1949-01" and s.values[0, 0] == 112 and s.values[-1, 0] == 432


# ------------------------------------------------------------------ many_to_one, recursive
@pytest.mark.parametrize("cell, norm, highway, stats", [
    ("lstm", "last", True, "window"), ("gru", "mean_std", True, "window"),
    ("rnn", "none", False, "window"), ("lstm", "mean_std", True, "lookback")])
def test_recursive_many_to_one_equals_a_loop_of_one_step_forecasts(cell, norm, highway, stats):
    m = model(mode="many_to_one", multi_step="recursive", cell=cell, window_norm=norm,
              highway=highway, horizon=5, input_size=2, output_size=2, recursive_stats=stats)
    assert m.head.out_features == 2 and (m.highway is None or m.highway.out_features == 1)
    past = torch.randn(6, 3, 2, dtype=torch.float64)                      # (L, B, C)
    window, expected = past, []
    for _ in range(5):
        # one step by hand: the window's own (m, s) or the lookback's, the cells over the window,
        # head + highway
        m_, s_ = m.window_stats(window if stats == "window" else past)
        z = (window - m_) / s_
        out, _ = m.rnn(z)
        step = m.head(out[-1])                                            # (B, C)
        if highway:
            step = step + z[-3:].permute(1, 2, 0) @ m.highway.weight[0] + m.highway.bias
        y = m_ + s_ * step
        if stats == "window":
            torch.testing.assert_close(m.one_step(window), y, rtol=1e-12, atol=1e-12)
        expected.append(y)
        window = torch.cat([window[1:], y.unsqueeze(0)])
    expected = torch.stack(expected)                                      # (5, B, C)
    torch.testing.assert_close(m(past), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m(past, 8)[:5], expected, rtol=1e-10, atol=1e-10)
    assert m(past, 8).shape == (8, 3, 2)


def test_recursive_linear_ar_is_the_one_step_fit_fed_back():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=200))[:, None]
    past, future = windows(x, window_origins(0, 200, 6, 4), 6, 4)         # (N, 6, 1), (N, 4, 1)
    ar = LinearAR.fit(past, future, 1)
    one = np.linalg.lstsq(np.c_[past[:, :, 0], np.ones(len(past))], future[:, 0], rcond=None)[0]
    window, expected = past[:9, :, 0], []
    for _ in range(4):
        y = window @ one[:6] + one[6]                                     # (9, 1)
        expected.append(y)
        window = np.concatenate([window[:, 1:], y], axis=1)
    np.testing.assert_allclose(ar.recursive(past[:9]), np.stack(expected, axis=1), atol=1e-9)
    np.testing.assert_allclose(ar.recursive(past[:9])[:, 0], ar.predict(past[:9])[:, 0], atol=1e-9)
    assert ar.recursive(past[:9], 7).shape == (9, 7, 1)
    with pytest.raises(DataError, match="recursive linear AR feeds its forecasts back"):
        LinearAR.fit(np.ones((5, 6, 2)) + rng.normal(size=(5, 6, 2)), future[:5], 1).recursive(
            np.ones((5, 6, 2)))


def test_least_squares_recursive_highway_without_window_norm_is_the_recursive_linear_ar():
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.normal(size=300))[:, None]
    past, future = windows(x, window_origins(0, 300, 8, 3), 8, 3)         # (N, 8, 1), (N, 3, 1)
    ar = LinearAR.fit(past, future, 1)
    m = model(mode="many_to_one", multi_step="recursive", horizon=3, highway_steps=8,
              window_norm="none", highway_init="least_squares")
    m.fit_highway(torch.tensor(past).transpose(0, 1), torch.tensor(future).transpose(0, 1))
    forecast = m(torch.tensor(past[:20]).transpose(0, 1)).transpose(0, 1).detach().numpy()
    np.testing.assert_allclose(forecast, ar.recursive(past[:20]), atol=1e-8)


def test_recursive_settings_are_checked():
    with pytest.raises(ConfigError, match=r"multi_step takes one of 'direct', 'recursive'; "
                                          r"got 'recursiv' \(did you mean 'recursive'\?\)"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, multi_step="recursiv").check()
    with pytest.raises(ConfigError, match="recursive_training .*did you mean 'open_loop'"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, multi_step="recursive",
                         recursive_training="open-loop").check()
    with pytest.raises(ConfigError, match=r"recursive_stats takes one of 'window', 'lookback'; "
                                          r"got 'lookbak' \(did you mean 'lookback'\?\)"):
        ForecasterConfig(input_size=1, output_size=1, horizon=2, multi_step="recursive",
                         recursive_stats="lookbak").check()
    with pytest.raises(ConfigError, match="multi_step recursive feeds its forecasts back as inputs, "
                                          "so every input must be a target; got 1 feature column"):
        ForecasterConfig(input_size=2, output_size=1, horizon=2, highway_steps=2,
                         multi_step="recursive").check()


def test_recursive_bad_option_on_the_command_line_is_one_line(tmp_path, capsys):
    from rnnlab.cli import main
    path = sine_csv(tmp_path, n=100)
    code = main(["train", "--task", "forecast", "--data", str(path), "--targets", "load",
                 "--lookback", "8", "--horizons", "4", "--multi-step", "iterated", "--epochs", "1",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "multi_step takes one of 'direct', 'recursive'; got 'iterated'" in err
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.fixture(scope="module")
def recursive_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recursive")
    path = sine_csv(tmp, n=240)
    summary = rnnlab.train(task="forecast", data=str(path), targets=["load"], lookback=16,
                           horizons=[2, 6], multi_step="recursive", hidden_size=8, highway_steps=8,
                           epochs=3, batch_size=16, lr=3e-3, threads=1, progress=False,
                           out=str(tmp / "run"), say=lambda m: None)
    return path, summary


def test_recursive_run_trains_on_the_next_value(recursive_run):
    from rnnlab.tasks import get_recipe
    path, summary = recursive_run
    recipe = get_recipe("forecast")
    dcfg, mcfg, tcfg = recipe.configs(dict(data=str(path), targets=["load"], lookback=16,
                                           horizons=[2, 6], multi_step="recursive",
                                           hidden_size=8, highway_steps=8), "test")
    job = recipe.prepare(dcfg, tcfg)
    m = recipe.build_model(job.assets, mcfg)
    origins = job.splits["train"][:5]
    past, future = job.windows(origins)                                   # (16, 5, 1), (6, 5, 1)
    loss = job.batch_loss(m, origins, train=True)
    expected = ((m.one_step(past) - future[0]) ** 2).mean()
    torch.testing.assert_close(loss.objective, expected)
    assert loss.count == 5                                                # one target per window


def test_recursive_run_round_trips_through_evaluate_and_predict(recursive_run, tmp_path):
    path, summary = recursive_run
    config = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert config["model"]["multi_step"] == "recursive"
    assert config["model"]["recursive_training"] == "one_step"
    result = rnnlab.evaluate(summary["run_dir"])
    assert result["mse_h6"] == pytest.approx(summary["test"]["mse_h6"], rel=1e-6)
    assert result["mse_h6"] < result["persistence_mse_h6"]
    assert {"recursive_ar_mse_h2", "recursive_ar_mae_h6", "linear_ar_mse_h6"} <= set(result)
    # predict: the saved run's recursive forecast, any number of steps, in the file's units
    truth = [20 + 5 * math.sin(2 * math.pi * t / 16) for t in range(40)]
    line = ",".join(f"{v:.5f}" for v in truth[:20])
    six = [float(v) for v in rnnlab.predict(summary["run_dir"], [line])[0].split(",")]
    ten = [float(v) for v in rnnlab.predict(summary["run_dir"], [line], steps=10)[0].split(",")]
    assert len(six) == 6 and len(ten) == 10 and ten[:6] == six
    np.testing.assert_allclose(ten, truth[20:30], atol=1.5)               # amplitude 5
    from rnnlab.cli import main
    (tmp_path / "in.txt").write_text(line + "\n")
    assert main(["predict", summary["run_dir"], "--input", str(tmp_path / "in.txt"),
                 "--steps", "10"]) == 0


def test_a_carriage_return_inside_a_cell_is_one_clear_error(tmp_path):
    """Lines split at \\n only: a lone \\r stays inside its line, where the CSV reader refuses it;
    that is one DataError naming the file and line, not the csv module's own exception."""
    path = tmp_path / "s.csv"
    path.write_bytes(b"date,y\n2020-01-01,1\n2020-01-02\r,2\n")
    with pytest.raises(DataError, match=r"s\.csv:3: expected comma-separated values") as e:
        read_series(path)
    assert "\n" not in str(e.value)
