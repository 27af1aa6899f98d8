"""What a run records: ``metrics.jsonl`` (one JSON object per line) and the loss-curve PNG."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

from ..data.lines import split_lines


def check_tensorboard() -> None:
    """A ConfigError if the tensorboard package is not installed."""
    import importlib
    try:
        importlib.import_module("torch.utils.tensorboard")
    except ImportError:
        from ..errors import ConfigError
        raise ConfigError("--tensorboard needs the tensorboard package; install it with "
                          "pip install 'rnnlab[tensorboard]'") from None


def tensorboard_writer(folder, purge_step=None):
    """torch's TensorBoard writer; on resume, events from ``purge_step`` on are dropped."""
    check_tensorboard()
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def resident_mib() -> Optional[float]:
    """This process's resident memory now, in MiB (None where /proc is not available)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return None


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim), so that memory a
    validation pass or a checkpoint used and freed does not stay resident; nothing elsewhere."""
    global _TRIM
    if _TRIM is None:
        import ctypes
        import ctypes.util
        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def load_plotting() -> None:
    """Import matplotlib with its file-only backend. A run with a directory calls this before its
    first update: a broken matplotlib fails the run at once rather than at its first validation,
    and the library's memory (about 35 MiB) is there from the start instead of appearing mid-run."""
    import importlib
    import matplotlib
    matplotlib.use("Agg")
    importlib.import_module("matplotlib.pyplot")


def token_metrics(loss_sum: float, count: int, level: str = "") -> Dict[str, float]:
    """Mean cross-entropy per token in nats, its perplexity e^loss, and for character models its
    bits per character loss / ln 2."""
    loss = loss_sum / max(count, 1)
    out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}
    if level == "char":
        out["bits_per_char"] = loss / math.log(2)
    return out


class MetricsLog:
    """Appends records to ``metrics.jsonl``; on resume, drops records past the checkpoint.
    With ``tensorboard``, every number of a record is also a TensorBoard scalar
    ``<split>/<name>`` at its step, in the run's ``tensorboard/`` folder."""

    def __init__(self, path, tensorboard: bool = False):
        self.path = Path(path)
        self.tensorboard, self.writer, self.purge_step = tensorboard, None, None
        if tensorboard:
            check_tensorboard()  # fail now, not at the first record

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard and "split" in record:
            if self.writer is None:
                self.writer = tensorboard_writer(self.path.parent / "tensorboard", self.purge_step)
            for name, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "step":
                    self.writer.add_scalar(f"{record['split']}/{name}", value, record.get("step", 0))
            self.writer.flush()

    def records(self) -> List[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in split_lines(self.path.read_text(encoding="utf-8")):
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a kill mid-write
                continue
        return out

    def truncate_after(self, step: int) -> None:
        """Keep only the records of updates up to ``step`` (the checkpoint a resume starts from)."""
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        self.purge_step = step + 1
        from .atomic import write_text
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def plot(self, png) -> None:
        """Training and validation loss against the update step."""
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        recs = self.records()
        fig, ax = plt.subplots(figsize=(7, 4))
        for split, style in (("train", "-"), ("valid", "o-")):
            pts = [(r["step"], r["loss"]) for r in recs if r.get("split") == split and "loss" in r]
            if pts:
                ax.plot(*zip(*pts), style, label=split, markersize=3)
        ax.set_xlabel("update step")
        ax.set_ylabel("loss (nats per token)")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
        fig.tight_layout()
        from .atomic import write_atomic
        write_atomic(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)
