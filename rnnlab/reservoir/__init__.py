"""Reservoir computing: the echo state network, a fixed random recurrent reservoir whose linear
readout alone is trained, in closed form by ridge regression."""
from .esn import EchoStateNetwork, random_reservoir, reservoir_states, ridge_readout, spectral_radius

__all__ = ["EchoStateNetwork", "random_reservoir", "reservoir_states", "ridge_readout", "spectral_radius"]
