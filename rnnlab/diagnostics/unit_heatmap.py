r"""What a hidden unit tracks: its value after every character of a text, as colour.

A character language model reads a text; after each character t the last layer's states (h_t,
and C_t for the LSTM) are kept, one value per unit. Against simple properties of the text at each
character,

    quote:        1 inside a quoted string ("..." or '...', closed at the end of the line), else 0
    column:       the position within the line (0 at its first character)
    indentation:  the leading spaces of the current line
    brackets:     how many (, [, { are open

each unit's Pearson correlation over the text picks, for every property, the unit that follows it
most closely; the heatmap shows those units over the text, character by character (blue -1, red +1
for h; C scaled by its largest magnitude).

Shapes: activity (N, H) per state for a text of N characters.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import ConfigError

FEATURES = ("quote", "column", "indentation", "brackets")


def text_features(text: str) -> Dict[str, np.ndarray]:
    """The properties of the module docstring at every character of ``text``, each (N,)."""
    out = {name: np.zeros(len(text)) for name in FEATURES}
    quote, column, indent, leading, depth = None, 0, 0, True, 0
    for k, ch in enumerate(text):
        if ch == "\n":
            quote, column, indent, leading = None, 0, 0, True
        else:
            if leading and ch == " ":
                indent += 1
            else:
                leading = False
            if quote is None and ch in "\"'":
                quote = ch
            elif quote == ch:
                quote = None
                out["quote"][k] = 1.0            # the closing quote still belongs to the string
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(depth - 1, 0)
        out["quote"][k] = max(out["quote"][k], 1.0 if quote is not None else 0.0)
        out["column"][k], out["indentation"][k], out["brackets"][k] = column, indent, depth
        column = 0 if ch == "\n" else column + 1
    return out


@torch.no_grad()
def unit_activity(model, vocab, text: str) -> Dict[str, torch.Tensor]:
    """The last layer's states after every character of ``text``, by state name, each (N, H)."""
    if vocab.level != "char":
        raise ConfigError(f"the unit heatmap reads a character-level language model; this one is "
                          f"{vocab.level}-level")
    ids = vocab.encode(text).view(-1, 1)                                     # (N, 1)
    if model.embedding is not None:
        x = model.embedding(ids)                                             # (N, 1, M)
    else:
        x = F.one_hot(ids, model.config.vocab_size).to(model.decoder.weight.dtype)
    _, _, states = model.rnn(model.input_mlp(x), return_states=True)         # each (N, 1, S)
    names = model.rnn.cells[0].state_names
    return {name: s[:, 0] for name, s in zip(names, states)}


def correlations(activity: torch.Tensor, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit (N, H) with ``feature`` (N,); 0 where either is constant."""
    a = activity.double().numpy()
    a = a - a.mean(0)
    f = feature - feature.mean()
    denom = np.sqrt((a ** 2).sum(0) * (f ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * f[:, None]).sum(0) / denom
    return np.nan_to_num(r)


def tracking_units(activity: Dict[str, torch.Tensor], text: str) -> List[dict]:
    """For each text property that varies over ``text``, the unit (of any state) most correlated
    with it."""
    features = text_features(text)
    found = []
    for feature in FEATURES:
        if np.ptp(features[feature]) == 0:
            continue
        best = None
        for state, a in activity.items():
            r = correlations(a, features[feature])
            k = int(np.abs(r).argmax())
            if best is None or abs(r[k]) > abs(best["correlation"]):
                best = {"feature": feature, "state": state, "unit": k, "correlation": float(r[k])}
        found.append(best)
    return found


def chosen_units(activity: Dict[str, torch.Tensor], text: str, specs: Sequence[str]) -> List[dict]:
    """The units named by ``specs`` ("STATE:UNIT", e.g. "h:12", "c:40"), each with the text
    property it follows most closely; a ConfigError for a state or unit the layer does not have."""
    features = {f: v for f, v in text_features(text).items() if np.ptp(v) > 0}
    found = []
    for spec in specs:
        state, _, unit = str(spec).partition(":")
        if state not in activity or not unit.isdigit():
            raise ConfigError(f"units are given as STATE:UNIT with STATE one of "
                              f"{', '.join(activity)} (e.g. {next(iter(activity))}:0), got {spec!r}")
        k, H = int(unit), activity[state].shape[1]
        if k >= H:
            raise ConfigError(f"unit {spec!r}: the layer's {state} has units 0..{H - 1}")
        r = {f: float(correlations(activity[state][:, k:k + 1], v)[0]) for f, v in features.items()}
        best = max(r, key=lambda f: abs(r[f])) if r else None
        found.append({"feature": best, "state": state, "unit": k,
                      "correlation": r[best] if best else 0.0, "chosen": True})
    return found


def plot_heatmap(text: str, panels: Sequence[dict], activity: Dict[str, torch.Tensor], path,
                 max_width: int = 120) -> None:
    """PNG at ``path``: ``text`` once per panel ({"state", "unit", "title"}), each character's
    background coloured by the unit's value there; lines longer than ``max_width`` wrapped."""
    width = max(1, min(max_width, max(len(line) + 1 for line in text.split("\n"))))
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib import colormaps
    rows = []                                  # (character index, row, column) of every character
    r = c = 0
    for k, ch in enumerate(text):
        if c >= width:
            r, c = r + 1, 0
        rows.append((k, r, c))
        if ch == "\n":
            r, c = r + 1, 0
        else:
            c += 1
    n_rows = r + 1
    cmap = colormaps["coolwarm"]
    fig = Figure(figsize=(width * 0.11 + 0.5, len(panels) * (n_rows * 0.2 + 0.5)))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        values = activity[panel["state"]][:, panel["unit"]].double().numpy()
        scale = max(float(np.abs(values).max()), 1e-12) if panel["state"] != "h" else 1.0
        for k, row, col in rows:
            v = float(np.clip(values[k] / scale, -1, 1))
            ax.add_patch(Rectangle((col, -row - 1), 1, 1, facecolor=cmap((v + 1) / 2), linewidth=0))
            ch = text[k]
            if ch not in " \n":
                ax.text(col + 0.5, -row - 0.5, ch, ha="center", va="center", fontsize=7,
                        family="monospace")
        ax.set_xlim(0, width)
        ax.set_ylim(-n_rows, 0)
        ax.set_axis_off()
        ax.set_title(panel["title"], fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
