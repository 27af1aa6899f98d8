from .recurrent_layer import RecurrentLayer
from .standard import GRU, LSTM, RNN

__all__ = ["RecurrentLayer", "GRU", "LSTM", "RNN"]
