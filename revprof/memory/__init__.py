"""The memory engine: peak training memory measured on CUDA or predicted exactly on any CPU."""

from revprof.memory.measure import BACKENDS, MemoryReport, Timeline, measure_memory, resolve_backend
from revprof.memory.tracker import CATEGORIES, StorageTracker

__all__ = ["BACKENDS", "CATEGORIES", "MemoryReport", "StorageTracker", "Timeline", "measure_memory",
           "resolve_backend"]
