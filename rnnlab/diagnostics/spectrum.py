r"""The eigenvalues of the recurrent weights against the unit circle.

A linear recurrence h_t = W h_{t-1} keeps a component along an eigenvector of eigenvalue lambda as
lambda^t: it vanishes where |lambda| < 1 and explodes where |lambda| > 1. The spectral radius
rho(W) = max |lambda| says which; the orthogonal initialisation puts every eigenvalue on the unit
circle.

For a gated cell, ``weight_hh`` stacks one (H, H) block per gate (the LSTM's W_hi, W_hf, W_hg,
W_ho); each block's spectrum is given by the name :attr:`RecurrentCell.block_names` gives it.
"""
from __future__ import annotations

from typing import Dict

import torch

from ..cells.cell import Params, RecurrentCell


def recurrent_spectra(cell: RecurrentCell, p: Params) -> Dict[str, torch.Tensor]:
    """Block name -> its eigenvalues (H,) complex128, for every square (H, H) block of W_hh."""
    W = p["weight_hh"].detach().double()
    H = W.shape[1]
    blocks = W.split(H, dim=0)
    return {name: torch.linalg.eigvals(b) for name, b in zip(cell.block_names, blocks)
            if b.shape == (H, H)}


def spectral_radius(eigenvalues: torch.Tensor) -> float:
    return float(eigenvalues.abs().max())
