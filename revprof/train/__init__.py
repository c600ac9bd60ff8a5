"""Short BraTS training runs: train a spec for N steps, measure memory and speed, score Dice."""

from revprof.train.results import DEFAULT_RESULTS, append_row, read_results
from revprof.train.run import run_training
from revprof.train.settings import CaseDice, TrainResult, TrainSettings

__all__ = ["DEFAULT_RESULTS", "CaseDice", "TrainResult", "TrainSettings", "append_row", "read_results",
           "run_training"]
