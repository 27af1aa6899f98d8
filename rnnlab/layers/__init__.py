from .extra import LeakyRNN, ResidualRNN
from .recurrent_layer import RecurrentLayer
from .standard import GRU, LSTM, RNN

__all__ = ["RecurrentLayer", "GRU", "LeakyRNN", "LSTM", "ResidualRNN", "RNN"]
