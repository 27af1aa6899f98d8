from .recurrent_layer import RecurrentLayer
from .standard import LSTM, RNN

__all__ = ["RecurrentLayer", "LSTM", "RNN"]
