"""``revprof bench``: side-by-side memory and step-time benchmarks of the reversible execution
against plain autograd, activation checkpointing, RevTorch and the No New-Net baseline.

Modules: :mod:`~revprof.bench.peers` (building each peer), :mod:`~revprof.bench.memory` (peaks),
:mod:`~revprof.bench.timing` (CPU/CUDA step-time ratios), :mod:`~revprof.bench.targets` (the
issue's targets), :mod:`~revprof.bench.report` (JSON, markdown, docs) and
:mod:`~revprof.bench.run` (one whole run).
"""
