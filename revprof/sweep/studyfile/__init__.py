"""Study files (``studies/*.toml``): parse, validate and describe one architecture search.

A study file has these tables (only ``[study]`` and ``[space]`` are required)::

    [study]                      # name, trials, objectives, optional budget and description
    name = "quick"
    trials = 8
    objectives = ["dice", "peak_bytes"]      # optionally "seconds_per_step"
    budget = "11GiB"                          # optional memory budget

    [data]                       # where the cases come from (no path: synthetic demo cases)
    path = "data/BraTS2021"      # optional; relative to the working directory
    synthetic_cases = 8
    synthetic_shape = 48

    [fixed]                      # settings every trial shares
    patch = 32                   # or "160,192,160"
    steps = 20
    batch = 1
    precision = "fp32"
    val_cases = 2

    [space]                      # what the sampler searches: a value is fixed, a list is a
    levels = 3                   # choice, {low, high, step} an integer range
    width = [8, 16]
    depth = {low = 1, high = 2}
    reversible = ["all", "none", "encoder"]

    [sampler]
    name = "tpe"                 # tpe, nsga2, random or grid

    [[enqueue]]                  # trials to run first, by parameter values or a fixed spec
    label = "baseline"
    width = 16

Every problem is reported as one :class:`RevprofError` naming the file, the key and the rule.

Modules:

- :mod:`~revprof.sweep.studyfile.schema`: what a validated file says (:class:`StudyFile` and its
  tables) and the constants of the format; :func:`~revprof.sweep.studyfile.schema.spec_for`.
- :mod:`~revprof.sweep.studyfile.parse`: TOML → :class:`StudyFile`, every rule and message.
- :mod:`~revprof.sweep.studyfile.dims`: the search space's dimensions, a tagged union
  (``IntRange``, ``Choice``, ``Fixed``) mapped onto :mod:`optuna.distributions`.
"""

from revprof.sweep.studyfile.parse import parse_study, read_study_file
from revprof.sweep.studyfile.schema import StudyFile

__all__ = ["StudyFile", "parse_study", "read_study_file"]
