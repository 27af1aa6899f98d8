"""rnnlab: recurrent neural networks from the textbook, on PyTorch."""
from .cells import GRUCell, LeakyRNNCell, LSTMCell, RecurrentCell, ResidualRNNCell, RNNCell
from .layers import GRU, LeakyRNN, LSTM, RNN, RecurrentLayer, ResidualRNN

__version__ = "0.1.0"

__all__ = ["GRU", "GRUCell", "LeakyRNN", "LeakyRNNCell", "LSTM", "LSTMCell", "RNN", "RNNCell",
           "RecurrentCell", "RecurrentLayer", "ResidualRNN", "ResidualRNNCell", "__version__"]
