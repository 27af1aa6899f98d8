"""Shared by the benchmark scripts: where the data sets are, and a one-line report."""
from __future__ import annotations

import os
import sys
from pathlib import Path

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A file or folder of the shared data sets; exits with a message if it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        sys.exit(f"benchmark data not found at {p}; set RNNLAB_DATA to the folder holding it")
    return p
