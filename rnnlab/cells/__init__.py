from .cell import RecurrentCell
from .lstm_cell import LSTMCell
from .rnn_cell import RNNCell

__all__ = ["RecurrentCell", "LSTMCell", "RNNCell"]
