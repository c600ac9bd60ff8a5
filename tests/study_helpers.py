"""Study-file text the sweep tests share."""

TINY_TRAINING = """
[data]
synthetic_cases = 3
synthetic_shape = 32

[fixed]
patch = 16
steps = 3
val_cases = 1
device = "cpu"
"""
"""The ``[data]`` and ``[fixed]`` tables of a study that trains tiny networks on three synthetic
32³ cases for three CPU steps: what every training-sweep test needs and no more."""
