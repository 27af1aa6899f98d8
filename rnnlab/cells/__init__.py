from .cell import RecurrentCell
from .deep_transition_cell import DeepTransitionCell
from .gru_cell import GRUCell
from .leaky_rnn_cell import LeakyRNNCell
from .lstm_cell import LSTMCell
from .output_feedback_cell import OutputFeedbackCell
from .residual_rnn_cell import ResidualRNNCell
from .rnn_cell import RNNCell

__all__ = ["RecurrentCell", "DeepTransitionCell", "GRUCell", "LeakyRNNCell", "LSTMCell",
           "OutputFeedbackCell", "ResidualRNNCell", "RNNCell"]
