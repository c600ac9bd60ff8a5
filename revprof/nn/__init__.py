"""Networks: coupling blocks, reversible sequences and the two U-Nets, and any network by factory."""

from revprof.nn.coupling import CouplingBlock, ResidualFunction
from revprof.nn.networks import build_network, network_from_dict, network_parts
from revprof.nn.reversible import ReversibleSequence
from revprof.nn.unet import UNet3D, build_model

__all__ = ["CouplingBlock", "ResidualFunction", "ReversibleSequence", "UNet3D", "build_model",
           "build_network", "network_from_dict", "network_parts"]
