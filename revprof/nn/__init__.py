"""Networks: coupling blocks, reversible sequences and the two U-Nets."""

from revprof.nn.coupling import CouplingBlock, ResidualFunction
from revprof.nn.reversible import ReversibleSequence
from revprof.nn.unet import UNet3D, build_model

__all__ = ["CouplingBlock", "ResidualFunction", "ReversibleSequence", "UNet3D", "build_model"]
