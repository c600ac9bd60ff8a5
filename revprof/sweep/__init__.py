"""``revprof sweep``: Optuna multi-objective search of the accuracy–memory Pareto front.

Modules:

- :mod:`~revprof.sweep.studyfile`: study files (``studies/*.toml``) → :class:`StudyFile`
  (``schema``, ``parse``, and ``dims``: the search space's dimensions and their
  ``optuna.distributions``).
- :mod:`~revprof.sweep.space`: an Optuna trial → network and patch; the study file's enqueued
  trials.
- :mod:`~revprof.sweep.objective`: one trial: predict, skip or train, record (docs/store-schema.md).
- :mod:`~revprof.sweep.storage`: the journal file / SQLite / PostgreSQL store.
- :mod:`~revprof.sweep.heartbeat`: no trial stays RUNNING after its worker died.
- :mod:`~revprof.sweep.study`: create or resume the study, samplers.
- :mod:`~revprof.sweep.workers`: the worker loop and local worker processes.
- :mod:`~revprof.sweep.worker`: one local worker process (``python -m revprof.sweep.worker``).
- :mod:`~revprof.sweep.run`: a whole sweep (:func:`~revprof.sweep.run.run_sweep`), in this process
  or in local workers, with Ctrl-C handling; ``revprof sweep`` prints what it reports.
- :mod:`~revprof.sweep.pareto`: the Pareto front and tables, from the store alone.
"""

from revprof.sweep.pareto import count_trials, pareto_front
from revprof.sweep.storage import default_storage, load_study, open_storage
from revprof.sweep.studyfile import StudyFile, parse_study, read_study_file

__all__ = ["StudyFile", "count_trials", "default_storage", "load_study", "open_storage",
           "pareto_front", "parse_study", "read_study_file"]
