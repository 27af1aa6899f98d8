from .deep_transition import DeepTransitionRNN
from .extra import LeakyRNN, ResidualRNN
from .output_feedback import OutputFeedbackRNN
from .recurrent_layer import RecurrentLayer
from .standard import GRU, LSTM, RNN

__all__ = ["RecurrentLayer", "DeepTransitionRNN", "GRU", "LeakyRNN", "LSTM", "OutputFeedbackRNN",
           "ResidualRNN", "RNN"]
