"""Diagnostics of long-term dependencies: gradient flow by lag, Jacobian products, the spectrum of
W_hh, gate statistics, and what single units track (``rnnlab diagnose``)."""
from .diagnose import diagnose
from .gates import gate_statistics
from .gradient_flow import decay_rate, norms_by_lag, state_gradients
from .jacobians import jacobian_product_norms, jacobian_products
from .spectrum import recurrent_spectra, spectral_radius

__all__ = ["decay_rate", "diagnose", "gate_statistics", "jacobian_product_norms", "jacobian_products",
           "norms_by_lag", "recurrent_spectra", "spectral_radius", "state_gradients"]
