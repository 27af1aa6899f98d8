"""``--task forecast``: multi-step forecasting of a time series (many-to-one or many-to-many).

The data is a CSV file (:mod:`rnnlab.data.series`): the target columns (default: the last one)
and optional feature columns, split into train / valid / test rows (the ETT split for ETT files,
else the last rows), standardised with the training rows' statistics (saved in the run as
``normalisation.json``). The examples are windows: L steps of lookback, the H = max(horizons)
steps after them to forecast. The loss is the mean squared error on standardised values (for
``many_to_many`` training: of the next value at every step, teacher-forced; for validation and
test: of the open-loop forecast; for ``multi_step recursive`` training: of the next value, or with
``recursive_training open_loop`` of the H steps forecast in open loop). Figures: MSE and MAE over
all H steps and over the first h steps for every h of ``horizons`` (``mse_h24`` ...); evaluate adds
the persistence and linear AR baselines' figures on the same windows
(:mod:`rnnlab.forecasting.baselines`; the linear AR is fitted on the training windows and saved
as ``linear_ar.json``; it forecasts direct, and, without feature columns, also recursive:
``recursive_ar_mse_h24`` ...).

``model="esn"`` (``--model esn``) forecasts the same windows with an echo state network
(:mod:`rnnlab.models.esn_forecaster`): its readout is fitted in closed form when the model is
built, on the training windows the linear AR is fitted on, its ridge chosen on the validation
windows unless given; the trainer then makes no update (``epochs`` 1 of no batches) and only
validates, keeps and tests the fitted model, so the run directory, ``evaluate`` and ``predict``
are those of any forecast run. The settings of gradient training are refused with it
(:data:`GRADIENT_SETTINGS`), as are the recurrent forecaster's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

import numpy as np
import torch

from ..data.series import (PARTS, SPLITS, Series, Standardiser, parse_series, read_series,
                           split_borders, window_origins, windows)
from ..errors import ConfigError, DataError, check_choice
from ..forecasting.baselines import LinearAR, error_sums, errors_from_sums, persistence
from ..models.esn_forecaster import EchoStateForecaster
from ..models.forecaster import (ESN_SETTINGS, MODELS, RNN_SETTINGS, Forecaster,
                                 ForecasterConfig)
from ..training.atomic import read_json, write_json, write_text
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from ..training.step_weights import step_weights, weigh
from .examples import BatchLoss, ExampleTask
from .recipe import LoadedRun, Recipe, set_data_sizes

BASELINES = ("persistence", "linear_ar", "recursive_ar")
BASELINE_LABELS = {"persistence": "persistence", "linear_ar": "linear AR (direct)",
                   "recursive_ar": "linear AR (recursive)"}
#: settings of gradient training, which ``--model esn`` (a readout fitted in closed form) refuses
GRADIENT_SETTINGS = ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "clip_norm",
                     "clip_value", "schedule", "decay_start", "decay_factor", "patience", "min_lr",
                     "epochs", "max_steps", "max_time", "validate_every", "early_stopping",
                     "target_loss", "checkpoint_every", "log_every", "max_nonfinite", "ema",
                     "step_weights", "stride")


@dataclass
class SeriesDataConfig:
    """Which file and columns, how the rows are split, and the window sizes."""
    data: Optional[str] = None
    targets: List[str] = field(default_factory=list)     # column names; default the last column
    features: List[str] = field(default_factory=list)    # extra input columns (many_to_one)
    date_column: str = "auto"          # a name, "auto" (a non-numeric first column) or "" (none)
    lookback: int = 96                 # L
    horizons: List[int] = field(default_factory=lambda: [24])   # reported; H = the largest
    split: str = "auto"                # "auto" (ETT files: "ett"), "ett", "fractions"
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    valid_rows: int = 0                # > 0: this many rows instead of valid_fraction
    test_rows: int = 0                 # > 0: this many rows instead of test_fraction
    stride: int = 1                    # steps between the origins of training windows
    encoding: str = "utf-8"

    def check(self) -> "SeriesDataConfig":
        if self.data is None:
            raise ConfigError("--task forecast needs --data: a CSV file of a time series")
        self.targets = _names("targets", self.targets)
        self.features = _names("features", self.features)
        horizons = [self.horizons] if isinstance(self.horizons, int) else self.horizons
        if not isinstance(horizons, (list, tuple)) or not horizons:
            raise ConfigError(f"horizons takes one or more whole numbers of steps, got {self.horizons!r}")
        for h in horizons:
            positive_int("horizons", h)
        self.horizons = sorted(set(horizons))
        positive_int("lookback", self.lookback)
        positive_int("stride", self.stride)
        positive_int("valid_rows", self.valid_rows, allow_zero=True)
        positive_int("test_rows", self.test_rows, allow_zero=True)
        check_choice("split", self.split, SPLITS)
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        return self

    @property
    def horizon(self) -> int:
        return max(self.horizons)


def _names(option: str, value) -> List[str]:
    names = [value] if isinstance(value, str) else list(value)
    names = [n for part in names for n in str(part).split(",") if n.strip()]
    return [n.strip() for n in names]


@dataclass
class SeriesAssets:
    """What a run keeps of its training data: the columns and their statistics, the window sizes
    and the fitted linear AR baseline."""
    scaler: Standardiser        # columns: targets first
    targets: int
    lookback: int
    horizons: List[int]
    linear_ar: LinearAR
    #: the training windows (lookbacks (L, N, F), targets (H, N, C)) while a new run is built,
    #: for the highway's least-squares start and the ESN's readout; not saved
    training: Optional[tuple] = None
    #: the validation windows, the same way, for the ESN's choice of ridge; not saved
    validation: Optional[tuple] = None
    #: set by build_model for a model fitted in closed form (model "esn"): no gradient updates
    closed_form: bool = False

    @property
    def columns(self) -> List[str]:
        return self.scaler.columns

    @property
    def horizon(self) -> int:
        return max(self.horizons)


class Forecasting(ExampleTask):
    """Trainer task: examples are window origins t into the standardised series ``z`` (N, F)."""

    def __init__(self, z: np.ndarray, splits: Dict[str, List[int]], config: TrainConfig,
                 assets: SeriesAssets):
        super().__init__(splits, config, assets)
        self.values = z                                              # (N, F) float64
        self.z = torch.tensor(z, dtype=torch.float32)                # (N, F)

    def num_batches(self, epoch: int) -> int:
        """Updates in an epoch: none for a model fitted in closed form when it was built."""
        return 0 if self.assets.closed_form else super().num_batches(epoch)

    def windows(self, origins: List[int]):
        """(lookback (L, B, F), targets (H, B, C)) of the windows at ``origins``."""
        a = self.assets
        t = torch.tensor(origins, dtype=torch.long)[:, None]                  # (B, 1)
        seq = self.z[t + torch.arange(-a.lookback, a.horizon)].transpose(0, 1)   # (L+H, B, F)
        return seq[:a.lookback], seq[a.lookback:, :, :a.targets]

    def batch_loss(self, model: Forecaster, origins: List[int], train: bool) -> BatchLoss:
        past, future = to_device(self.windows(origins), model_device(model))   # (L, B, F), (H, B, C)
        c = model.config
        if train and c.recursive and c.recursive_training == "one_step":
            predicted = model.one_step(past).unsqueeze(0)                     # (1, B, C)
            sq = (predicted - future[:1]) ** 2
            return self.weighted(sq) or BatchLoss(sq.mean(), float(sq.detach().sum()), sq.numel())
        if train and c.mode == "many_to_many":
            seq = torch.cat([past, future], dim=0)                            # (L+H, B, F)
            predicted = model.teacher_forced(seq[:-1], model.window_stats(past))     # (L+H-1, B, C)
            sq = (predicted - seq[1:, :, :self.assets.targets]) ** 2
            return self.weighted(sq) or BatchLoss(sq.mean(), float(sq.detach().sum()), sq.numel())
        forecast = model(past)                                                # (H, B, C)
        sq = (forecast - future) ** 2
        if train:
            weighted = self.weighted(sq)
            if weighted:
                return weighted
        stats = {} if train else error_sums(forecast.transpose(0, 1), future.transpose(0, 1),
                                            self.assets.horizons)
        return BatchLoss(sq.mean(), float(sq.detach().sum()), sq.numel(), stats)

    def weighted(self, sq: torch.Tensor) -> Optional[BatchLoss]:
        """The training loss of squared errors ``sq`` (T, B, C) under ``step_weights``:
        sum_t w_t sum_{b,c} sq_{t,b,c} / (T B C), t the steps of the forecast (many_to_one) or of
        the teacher-forced sequence (many_to_many); None when every w_t is 1."""
        weights = step_weights(self.config.step_weights, sq.shape[0], like=sq)      # (T, 1)
        if weights is None:
            return None
        weighted, logged = weigh(sq.sum(-1), weights)                              # of (T, B)
        return BatchLoss(weighted / sq.numel(), logged, sq.numel())

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            out.update(errors_from_sums(stats, self.assets.horizons))
        return out


def part_borders(series: Series, data: SeriesDataConfig):
    """(0, b1, b2, b3): the rows of the train, valid and test parts of ``series``."""
    return split_borders(len(series), series.source, data.split, data.valid_fraction,
                         data.test_fraction, data.valid_rows, data.test_rows)


def split_origins(series: Series, data: SeriesDataConfig, lookback: int,
                  horizon: int) -> Dict[str, List[int]]:
    """The window origins of each part of ``series`` (training ones every ``stride`` steps)."""
    borders = part_borders(series, data)
    out = {}
    for k, part in enumerate(PARTS):
        start, end = borders[k], borders[k + 1]
        if part == "train" and end - lookback - horizon + 1 < 1:
            raise DataError(f"{series.source}: the training rows [0, {end}) hold {end} rows; a window "
                            f"needs lookback {lookback} + horizon {horizon} = {lookback + horizon}")
        if 0 < end - start < horizon:
            raise DataError(f"{series.source}: the {part} rows [{start}, {end}) are fewer than the "
                            f"horizon {horizon}; no window fits (give more {part} rows or 0)")
        out[part] = window_origins(start, end, lookback, horizon, data.stride if part == "train" else 1)
    return out


class ForecastRecipe(Recipe):
    name = "forecast"
    description = "time-series forecasting, many-to-one or many-to-many (ETTh1, airline): MSE, MAE"
    data_config = SeriesDataConfig
    model_config = ForecasterConfig
    unused_settings = ("tbptt",)
    defaults = {"batch_size": 32, "optimizer": "adam", "lr": 1e-3, "clip_norm": 1.0, "epochs": 10,
                "schedule": "none", "eval_batch_size": 512, "checkpoint_every": 1000}
    options = {"part": "test", "baselines": True, "encoding": "utf-8", "steps": 0}

    def configs(self, settings, source: str):
        """The task's configs; with ``model="esn"`` the recurrent forecaster's settings and those
        of gradient training are refused and the trainer runs one epoch of no updates (validate,
        keep, test); with ``model="rnn"`` the ESN's settings are refused."""
        data, model, train = super().configs(settings, source)
        check_choice("model", model.model, MODELS)
        given = [k.replace("-", "_") for k in settings]
        if model.model == "esn":
            wrong = [k for k in given if k in RNN_SETTINGS or k in GRADIENT_SETTINGS]
            if wrong:
                raise ConfigError(f"{source}: {wrong[0]!r} is not a setting of model esn (a fixed "
                                  f"reservoir whose readout is fitted in closed form, without "
                                  f"gradient training); it takes {', '.join(ESN_SETTINGS)} and seed")
            train.epochs, train.max_steps, train.max_time = 1, 0, 0.0
        else:
            wrong = [k for k in given if k in ESN_SETTINGS]
            if wrong:
                raise ConfigError(f"{source}: {wrong[0]!r} is a setting of model esn; this run's "
                                  f"model is {model.model!r} (give model esn to use it)")
        return data, model, train

    def run_name(self, data, model) -> str:
        return f"{self.name}-esn" if model.model == "esn" else super().run_name(data, model)

    # ------------------------------------------------------------------ reading
    def read(self, data: SeriesDataConfig, path: str, encoding: str,
             assets: Optional[SeriesAssets] = None) -> Series:
        """The run's columns of the CSV file ``path``."""
        if assets is None:
            return read_series(path, data.targets, data.features, data.date_column, encoding)
        return read_series(path, assets.columns[:assets.targets], assets.columns[assets.targets:],
                           data.date_column, encoding)

    def prepare(self, data: SeriesDataConfig, train: TrainConfig,
                assets: Optional[SeriesAssets] = None) -> Forecasting:
        series = self.read(data, data.data, data.encoding, assets)
        if assets is None:
            origins = split_origins(series, data, data.lookback, data.horizon)
            end = part_borders(series, data)[1]
            scaler = Standardiser.fit(series.values[:end], series.columns, series.source)
            z = scaler.transform(series.values)
            past, future = windows(z, window_origins(0, end, data.lookback, data.horizon),
                                   data.lookback, data.horizon)          # (N, L, F), (N, H, F)
            ar = LinearAR.fit(past, future, series.targets)
            training = (torch.tensor(past).transpose(0, 1),
                        torch.tensor(future[:, :, :series.targets]).transpose(0, 1))
            past, future = windows(z, origins["valid"], data.lookback, data.horizon)
            validation = (torch.tensor(past).transpose(0, 1),
                          torch.tensor(future[:, :, :series.targets]).transpose(0, 1))
            assets = SeriesAssets(scaler, series.targets, data.lookback, list(data.horizons), ar,
                                  training, validation)
        else:
            origins = split_origins(series, data, assets.lookback, assets.horizon)
        return self.task_over(series, origins, train, assets)

    def task_over(self, series: Series, origins, train: TrainConfig,
                  assets: SeriesAssets) -> Forecasting:
        return Forecasting(assets.scaler.transform(series.values), origins, train, assets)

    def build_model(self, assets: SeriesAssets, model: ForecasterConfig):
        level = assets.scaler.mean[:assets.targets] / assets.scaler.std[:assets.targets]
        set_data_sizes(model, {"input_size": len(assets.columns), "output_size": assets.targets,
                               "horizon": assets.horizon, "level": [float(k) for k in level]})
        if model.model == "esn":
            esn = EchoStateForecaster(model)
            if assets.training is not None:          # a new run: fit the readout now
                esn.fit(*assets.training, valid=assets.validation)
            assets.closed_form = True
            return esn
        if model.highway and not model.highway_steps:
            model.highway_steps = assets.lookback
        if model.highway_steps > assets.lookback:
            raise ConfigError(f"highway_steps {model.highway_steps} exceeds the lookback "
                              f"{assets.lookback}: the highway reads the lookback's last values")
        forecaster = Forecaster(model)
        if model.highway and model.highway_init == "least_squares" and assets.training is not None:
            forecaster.fit_highway(*assets.training)
        return forecaster

    # ------------------------------------------------------------------ run files
    def save_assets(self, assets: SeriesAssets, run_dir: Path) -> None:
        meta = dict(assets.scaler.to_dict(), targets=assets.targets, lookback=assets.lookback,
                    horizons=assets.horizons)
        write_text(Path(run_dir) / "normalisation.json", json.dumps(meta))
        assets.linear_ar.save(Path(run_dir) / "linear_ar.json")

    def load_assets(self, run_dir: Path) -> SeriesAssets:
        path = Path(run_dir) / "normalisation.json"
        meta = read_json(path, "normalisation statistics")
        scaler = Standardiser.from_dict(meta, str(path))
        try:
            targets, lookback = int(meta["targets"]), int(meta["lookback"])
            horizons = [int(h) for h in meta["horizons"]]
            if not (horizons and min(horizons) >= 1 and lookback >= 1
                    and 1 <= targets <= len(scaler.columns)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: expected 'targets', 'lookback' and 'horizons' beside the "
                            f"statistics") from None
        ar = LinearAR.load(Path(run_dir) / "linear_ar.json")
        if (ar.lookback, ar.horizon, ar.targets) != (lookback, max(horizons), targets):
            raise DataError(f"{run_dir}: linear_ar.json does not fit normalisation.json")
        return SeriesAssets(scaler, targets, lookback, horizons, ar)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """MSE and MAE (all steps and per horizon) of the run's forecasts and of the baselines on
        the ``part`` windows of ``data`` (split as the run's file was; ``all``: every window) or
        of the run's own file."""
        check_choice("part", options["part"], PARTS + ("all",))
        a = run.assets
        path = run.data.data if data is None else data
        series = self.read(run.data, path, run.data.encoding if data is None else options["encoding"], a)
        if options["part"] == "all":
            origins = window_origins(0, len(series), a.lookback, a.horizon)
        else:
            origins = split_origins(series, run.data, a.lookback, a.horizon)[options["part"]]
        if not origins:
            raise DataError(f"{path}: no {options['part']} window of lookback {a.lookback} and "
                            f"horizon {a.horizon} fits in its rows")
        task = self.task_over(series, {}, run.train, a)
        result = task.evaluate_examples(run.model, origins)
        result.pop("loss")
        if options["baselines"]:
            result.update(baseline_errors(task, origins))
        result["windows"] = len(origins)
        return result

    def after_training(self, run: LoadedRun, task, summary, stream=None, sample_length=400) -> None:
        if task.splits["test"]:
            summary["test_baselines"] = baseline_errors(task, task.splits["test"])
        report = getattr(run.model, "fit_report", None)
        if report:      # the ESN's readout: its ridge and how it was chosen, kept in summary.json
            summary["readout"] = report
            path = Path(run.dir) / "summary.json"
            write_json(path, dict(read_json(path, "run summary"), readout=report))

    def report(self, summary: dict) -> List[str]:
        lines = []
        readout = summary.get("readout")
        if readout:
            chosen = (f"chosen on {readout['valid_windows']} validation windows from "
                      f"{len(readout['valid_mse_by_ridge'])} values"
                      if readout["ridge_chosen_on"] == "valid" else "given")
            lines.append(f"readout fitted in closed form on {readout['train_windows']} training "
                         f"windows in {readout['fit_seconds']:.1f} s, ridge {readout['ridge']:g} "
                         f"({chosen})")
        for split in ("valid", "test"):
            if split in summary:
                lines.append(f"{split}: " + horizon_table(summary[split]))
        if "test_baselines" in summary:
            for name in BASELINES:
                figures = {k[len(name) + 1:]: v for k, v in summary["test_baselines"].items()
                           if k.startswith(name + "_")}
                if figures:
                    lines.append(f"test, {BASELINE_LABELS[name]}: " + horizon_table(figures))
        return lines

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Forecasts in the file's units. Input: CSV text with a header naming the run's columns
        (the forecast after its last L rows: a header line ``step,TARGET..`` and H lines), or, for
        a run of one column, lines of comma-separated past values (each line: its H forecast
        values, comma-separated, from its last L values). ``steps``: how many steps to forecast
        (0: H; a many_to_many or recursive run runs its open loop any number of steps)."""
        a = run.assets
        steps = options["steps"] or a.horizon
        direct = run.model_config.mode == "many_to_one" and not run.model_config.recursive
        if steps < 0 or (steps > a.horizon and direct):
            longest = f" and at most {a.horizon}" if direct else ""
            raise ConfigError(f"steps must be 0 (the run's horizon) or more{longest}, got {steps}")
        lines = list(lines)
        first = next((ln for ln in lines if ln.strip()), None)
        if first is None:
            return
        if not _all_numbers(first):
            named = {c.strip().strip('"') for c in first.split(",")}
            if not named & set(a.columns):
                raise DataError(f"input:1: expected comma-separated numbers (past values) or a CSV "
                                f"header naming the run's columns ({', '.join(a.columns)}), found "
                                f"{first.strip()[:60]!r}")
            series = parse_series(lines, "input", a.columns[:a.targets], a.columns[a.targets:],
                                  run.data.date_column)
            forecast = self._forecast(run, series.values, "input", steps)              # (steps, C)
            yield "step," + ",".join(a.columns[:a.targets])
            for k, row in enumerate(forecast, 1):
                yield f"{k}," + ",".join(f"{v:.6g}" for v in row)
            return
        if len(a.columns) != 1:
            raise DataError(f"input: this run reads {len(a.columns)} columns ({', '.join(a.columns)}); "
                            f"give CSV text with a header naming them")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                yield ""
                continue
            cells = [c.strip() for c in line.split(",") if c.strip()]
            values = []
            for cell in cells:
                try:
                    values.append(float(cell))
                except ValueError:
                    raise DataError(f"input:{n}: expected comma-separated numbers, found {cell!r}") from None
            forecast = self._forecast(run, np.asarray(values)[:, None], f"input:{n}", steps)
            yield ",".join(f"{v:.6g}" for v in forecast[:, 0])

    def _forecast(self, run: LoadedRun, values: np.ndarray, where: str, steps: int) -> np.ndarray:
        """The forecast (steps, C) in the data's units after the last L rows of ``values`` (N, F)."""
        a = run.assets
        if len(values) < a.lookback or not np.isfinite(values).all():
            raise DataError(f"{where}: expected at least {a.lookback} finite past values (the run's "
                            f"lookback), found {len(values)}")
        z = a.scaler.transform(values[-a.lookback:])                                    # (L, F)
        past = torch.tensor(z, dtype=torch.float32).unsqueeze(1)                        # (L, 1, F)
        forecast = run.model(to_device(past, model_device(run.model)), steps)[:steps, 0]  # (steps, C)
        return a.scaler.inverse(forecast.double().cpu().numpy(), a.targets)


def baseline_errors(task: Forecasting, origins: List[int]) -> Dict[str, float]:
    """The persistence and linear AR figures on the windows at ``origins`` of ``task``'s series
    (the linear AR direct, and recursive as ``recursive_ar`` when there are no feature columns)."""
    a = task.assets
    past, future = windows(task.values, origins, a.lookback, a.horizon)
    future = future[:, :, :a.targets]
    forecasts = [("persistence", persistence(past, a.horizon, a.targets)),
                 ("linear_ar", a.linear_ar.predict(past))]
    if past.shape[2] == a.targets:
        forecasts.append(("recursive_ar", a.linear_ar.recursive(past)))
    out = {}
    for name, forecast in forecasts:
        out.update(errors_from_sums(error_sums(forecast, future, a.horizons), a.horizons, name + "_"))
    return out


def horizon_table(figures: Dict[str, float]) -> str:
    """``mse 0.05, mae 0.17 | h24: mse .., mae ..`` from flat figures."""
    parts = [f"mse {figures['mse']:.4g}, mae {figures['mae']:.4g}"] if "mse" in figures else []
    horizons = sorted({int(k[5:]) for k in figures if k.startswith("mse_h")})
    parts += [f"h{h}: mse {figures[f'mse_h{h}']:.4g}, mae {figures[f'mae_h{h}']:.4g}" for h in horizons]
    return " | ".join(parts)


def _all_numbers(line: str) -> bool:
    try:
        [float(c) for c in line.split(",") if c.strip()]
    except ValueError:
        return False
    return True


RECIPE = ForecastRecipe()
