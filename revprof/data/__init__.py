"""BraTS data: label conventions, loaders for the public release layouts, preprocessing, synthetic cases."""

from revprof.data.conventions import CONVENTIONS, REGIONS, LabelConvention, get_convention

__all__ = ["CONVENTIONS", "REGIONS", "LabelConvention", "get_convention"]
