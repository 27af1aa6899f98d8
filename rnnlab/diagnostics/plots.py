"""The diagnostics' pictures, as PNG files (matplotlib figures, no window)."""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import torch


def _figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


def plot_curves(curves: Mapping[str, torch.Tensor], path, title: str, xlabel: str, ylabel: str,
                styles: Optional[Dict[str, str]] = None) -> None:
    """One line per label on a logarithmic y axis against 0, 1, 2, ... (or 1, 2, ... when the
    curve starts at lag 1; ``xlabel`` says which); non-finite and non-positive points skipped."""
    many = len(curves) > 4                      # the legend goes beside the axes, not over them
    fig = _figure(9.0 if many else 6.4)
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        y = [float(v) for v in curve]
        xs = [k + (1 if xlabel.endswith("(from 1)") else 0) for k in range(len(y))]
        pts = [(x, v) for x, v in zip(xs, y) if math.isfinite(v) and v > 0]
        if pts:
            ax.plot(*zip(*pts), (styles or {}).get(label, "-"), label=label, linewidth=1.3)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel.replace(" (from 1)", ""))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_spectrum(spectra: Mapping[str, torch.Tensor], path, title: str) -> None:
    """Eigenvalues of each block of W_hh in the complex plane, with the unit circle."""
    fig = _figure(5.2, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    t = torch.linspace(0, 2 * math.pi, 361)
    ax.plot(t.cos(), t.sin(), "k-", linewidth=0.8, label="unit circle")
    for name, eig in spectra.items():
        rho = float(eig.abs().max())
        ax.plot(eig.real, eig.imag, ".", markersize=4, label=f"W_h{name if name != 'h' else 'h'}"
                f"  (radius {rho:.3f})")
    lim = max([1.1] + [float(e.abs().max()) * 1.05 for e in spectra.values()])
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.8", linewidth=0.5)
    ax.axvline(0, color="0.8", linewidth=0.5)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_gates(stats: Mapping[str, dict], path, title: str) -> None:
    """Left: each gate's share of values below 0.1 and above 0.9; right: its mean at each step."""
    fig = _figure(9.6, 3.8)
    ax = fig.add_subplot(1, 2, 1)
    names = list(stats)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [stats[n]["below"] for n in names], 0.4, label="below 0.1")
    ax.bar([x + 0.2 for x in xs], [stats[n]["above"] for n in names], 0.4, label="above 0.9")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of gate values")
    ax.legend(fontsize=8)
    ax.set_title("saturation", fontsize=10)
    ax = fig.add_subplot(1, 2, 2)
    for n in names:
        ax.plot(range(1, len(stats[n]["mean_over_time"]) + 1), stats[n]["mean_over_time"], label=n)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step t")
    ax.set_ylabel("mean gate value")
    ax.set_title("gates over time", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
