r"""Time series from CSV files: the reader, the splits, standardisation and sliding windows.

A series file is CSV with a header line of column names, then one row per time step: an optional
date column (any text; the first column when its first cell is not a number) and numeric columns.
The columns a task reads are chosen by name: the *targets* (what is forecast) and the *features*
(extra inputs). Values are read as float64, one row per step: ``values`` is (N, F), targets first.

Splits are ranges of rows holding the forecast *targets* of each part; a window's lookback may
reach back into the rows before its part (as in the ETT papers' protocol):

- ``ett``: the ETT data sets' standard 12/4/4 months of 30 days: hourly files (ETTh1, ETTh2)
  train [0, 8640), valid [8640, 11520), test [11520, 14400); 15-minute files (ETTm1, ETTm2) four
  times those rows; the rows after the test part are unused;
- ``fractions``: the last rows are the test part, the rows before them the valid part, the rest
  the training part, sized by row counts or by fractions of the file.

Standardisation uses the mean and standard deviation of the training rows only, per column:

    z_{t,f} = (x_{t,f} - mu_f) / sigma_f,   mu_f = mean_{t in train} x_{t,f},
    sigma_f = sqrt(mean_{t in train} (x_{t,f} - mu_f)^2)

A window at origin t with lookback L and horizon H is the lookback rows [t - L, t) and the target
rows [t, t + H): the forecast of the H steps after t from the L steps before it.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, DataError, closest
from .corpus import read_text
from .lines import split_lines

#: the ETT papers' split in rows of an hourly file: 12, 4 and 4 months of 30 days
ETT_HOURLY_BORDERS = (0, 12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)
SPLITS = ("auto", "ett", "fractions")
PARTS = ("train", "valid", "test")


@dataclass
class Series:
    """Columns of a series file: ``values`` (N, F) float64, targets first, then features."""
    source: str
    columns: List[str]
    targets: int                 # the first ``targets`` columns are forecast
    values: np.ndarray           # (N, F)
    dates: List[str]             # one per row ("" without a date column)

    def __len__(self) -> int:
        return len(self.values)


def _show(cell: str) -> str:
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _number(cell: str) -> Optional[float]:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_series(lines: Iterable[str], source: str, targets: Sequence[str] = (),
                 features: Sequence[str] = (), date_column: str = "auto") -> Series:
    """The series in CSV ``lines`` (named ``source`` in errors).

    ``targets``: column names to forecast (default: the last column); ``features``: extra input
    columns; ``date_column``: its name, ``"auto"`` (the first column if its first cell is not a
    number) or ``""`` (none). Blank lines are skipped; any other row must have as many cells as the
    header and a finite number in every column read.
    """
    reader = csv.reader(lines)
    try:
        rows = [(n, row) for n, row in enumerate(reader, 1) if any(c.strip() for c in row)]
    except csv.Error as e:  # e.g. a carriage return inside an unquoted cell
        raise DataError(f"{source}:{reader.line_num}: expected comma-separated values, found a line "
                        f"Python's csv module cannot read ({e})") from None
    if not rows:
        raise DataError(f"{source}: expected a header line of column names, found no lines")
    header_line, header = rows[0]
    header = [c.strip() for c in header]
    if len(rows) < 2:
        raise DataError(f"{source}:{header_line}: expected rows of values after the header, found none")
    if len(set(header)) != len(header):
        twice = next(c for c in header if header.count(c) > 1)
        raise DataError(f"{source}:{header_line}: expected distinct column names, found {twice!r} twice")
    if date_column == "auto":
        date_index = 0 if _number(rows[1][1][0].strip() if rows[1][1] else "") is None else None
    elif date_column:
        date_index = _column_index(header, date_column, source, header_line, "date column")
    else:
        date_index = None
    numeric = [c for i, c in enumerate(header) if i != date_index]
    if not numeric:
        raise DataError(f"{source}:{header_line}: expected numeric columns beside the date column, "
                        f"found only {header[date_index]!r}")
    targets = list(targets) or [numeric[-1]]
    features = [f for f in features if f not in targets]
    names = targets + features
    index = [_column_index(header, name, source, header_line, "column") for name in names]
    if date_index is not None and date_index in index:
        raise DataError(f"{source}:{header_line}: column {header[date_index]!r} holds dates, "
                        f"not values; choose numeric columns")
    values = np.empty((len(rows) - 1, len(names)), dtype=np.float64)
    dates = []
    for r, (n, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(f"{source}:{n}: expected {len(header)} comma-separated cells as in the "
                            f"header, found {len(row)}")
        for j, i in enumerate(index):
            value = _number(row[i].strip())
            if value is None:
                found = "an empty cell" if not row[i].strip() else _show(row[i].strip())
                raise DataError(f"{source}:{n}: expected a finite number in column {header[i]!r}, "
                                f"found {found}")
            values[r, j] = value
        dates.append(row[date_index].strip() if date_index is not None else "")
    return Series(source, names, len(targets), values, dates)


def _column_index(header: List[str], name: str, source: str, line: int, what: str) -> int:
    if name not in header:
        raise DataError(f"{source}:{line}: expected a {what} named {name!r} in the header, found "
                        f"{', '.join(header)}{closest(name, header)}")
    return header.index(name)


def read_series(path, targets: Sequence[str] = (), features: Sequence[str] = (),
                date_column: str = "auto", encoding: str = "utf-8") -> Series:
    """The series in the CSV file ``path`` (see :func:`parse_series`)."""
    text = read_text(path, encoding)
    return parse_series(split_lines(text), str(path), targets, features, date_column)


# ------------------------------------------------------------------------------------- splits
def ett_borders(source: str) -> Optional[Tuple[int, int, int, int]]:
    """The ETT split's row borders for a file named like ETTh1 / ETTm2, else None."""
    name = Path(source).name.lower()
    if name.startswith("etth"):
        return ETT_HOURLY_BORDERS
    if name.startswith("ettm"):
        return tuple(4 * b for b in ETT_HOURLY_BORDERS)
    return None


def split_borders(n: int, source: str, split: str = "auto", valid_fraction: float = 0.1,
                  test_fraction: float = 0.2, valid_rows: int = 0,
                  test_rows: int = 0) -> Tuple[int, int, int, int]:
    """Row borders (0, b1, b2, b3) of the train [0, b1), valid [b1, b2) and test [b2, b3) parts.

    ``split="auto"``: the ETT split for ETT files, else fractions. Row counts, where above 0,
    take the place of the fractions.
    """
    if split not in SPLITS:
        raise ConfigError(f"split takes one of {', '.join(map(repr, SPLITS))}; got {split!r}"
                          f"{closest(split, SPLITS)}")
    ett = ett_borders(source)
    if split == "ett" or (split == "auto" and ett is not None):
        borders = ett or ETT_HOURLY_BORDERS
        if n < borders[3]:
            raise DataError(f"{source}: the ETT split needs at least {borders[3]} rows, found {n}")
        return borders
    n_test = test_rows or int(round(n * test_fraction))
    n_valid = valid_rows or int(round(n * valid_fraction))
    if n_test + n_valid >= n:
        raise DataError(f"{source}: {n} rows cannot hold {n_valid} valid and {n_test} test rows "
                        f"and leave rows to train on")
    return (0, n - n_test - n_valid, n - n_test, n)


def window_origins(start: int, end: int, lookback: int, horizon: int, stride: int = 1) -> List[int]:
    """Origins t of the windows whose targets [t, t + H) lie in rows [start, end) and whose
    lookback [t - L, t) starts at row 0 or later, every ``stride``-th one."""
    return list(range(max(start, lookback), end - horizon + 1, stride))


def windows(values: np.ndarray, origins: Sequence[int], lookback: int,
            horizon: int) -> Tuple[np.ndarray, np.ndarray]:
    """(lookbacks (N, L, F), targets (N, H, F)) of the windows at ``origins`` of ``values`` (T, F)."""
    t = np.asarray(origins, dtype=np.int64)[:, None]
    past = values[t + np.arange(-lookback, 0)]          # (N, L, F)
    future = values[t + np.arange(horizon)]             # (N, H, F)
    return past, future


# ----------------------------------------------------------------------------- standardising
@dataclass
class Standardiser:
    """z = (x - mean) / std per column, with the statistics of the training rows."""
    columns: List[str]
    mean: np.ndarray        # (F,)
    std: np.ndarray         # (F,)

    @classmethod
    def fit(cls, values: np.ndarray, columns: List[str], source: str = "") -> "Standardiser":
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        for name, s in zip(columns, std):
            if not s > 0:
                raise DataError(f"{source}: column {name!r} is constant over the training rows; "
                                f"it cannot be standardised (drop it from the columns read)")
        return cls(list(columns), mean, std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, z: np.ndarray, columns: Optional[int] = None) -> np.ndarray:
        """x from z for the first ``columns`` columns (all by default): z's last axis."""
        k = len(self.columns) if columns is None else columns
        return z * self.std[:k] + self.mean[:k]

    def to_dict(self) -> Dict[str, list]:
        return {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d, source: str) -> "Standardiser":
        def numbers(values):
            return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in values)

        ok = isinstance(d, dict) and all(isinstance(d.get(k), list) for k in ("columns", "mean", "std")) \
            and len(d["columns"]) == len(d["mean"]) == len(d["std"]) > 0 \
            and all(isinstance(c, str) for c in d["columns"]) and numbers(d["mean"]) and numbers(d["std"]) \
            and all(v > 0 for v in d["std"])
        if not ok:
            raise DataError(f"{source}: expected {{'columns': [names], 'mean': [numbers], 'std': "
                            f"[numbers > 0]}} of equal lengths")
        return cls(list(d["columns"]), np.asarray(d["mean"], dtype=np.float64),
                   np.asarray(d["std"], dtype=np.float64))

    def save(self, path) -> None:
        from ..training.atomic import write_text
        write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> "Standardiser":
        from ..training.atomic import read_json
        return cls.from_dict(read_json(path, "normalisation statistics"), str(path))
