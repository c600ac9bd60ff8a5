"""revprof: memory profiling and architecture search for partially reversible 3D U-Nets.

The public API; implementation lives in the submodules.
"""

from revprof.errors import RevprofError
from revprof.nn import build_model
from revprof.spec import ArchSpec, parse_patch, spec_from_options, validate_patch

__version__ = "0.1.0"

__all__ = [
    "ArchSpec",
    "RevprofError",
    "build_model",
    "parse_patch",
    "spec_from_options",
    "validate_patch",
]
