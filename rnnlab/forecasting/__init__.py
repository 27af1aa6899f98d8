"""Forecasting without a network: the baselines a recurrent forecaster must beat, and the errors
every forecaster is scored by."""
from .baselines import LinearAR, forecast_errors, persistence

__all__ = ["LinearAR", "forecast_errors", "persistence"]
