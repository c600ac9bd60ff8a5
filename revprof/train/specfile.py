"""Spec files: one network with the patch and the recipe it was measured and trained with, and
the training settings of the sweep it came from, so ``--spec FILE`` reproduces that trial.

Written by ``revprof export`` (one file per trial), read by ``measure``, ``model`` and ``plan
--spec FILE``. The format (version 2) is JSON::

    {
      "revprof_spec_file": 2,
      "header": {"study": "quick", "trial": 7, "status": "ok", "peak_bytes": ...,
                 "predicted_peak_bytes": ..., "dice": ..., "params": ..., ...},
      "spec": {... ArchSpec.to_dict() ...},
      "train": {... TrainSettings.to_dict(): "patch", "recipe" (the whole recipe: optimizer,
                loss, precision, batch, steps, lr schedule, foreground, ...), "data",
                "val_cases", "seed", "device", "convention", "crop", "synthetic_cases",
                "synthetic_shape", "spacing" ...}
    }

``header`` is information only (what the sweep recorded); ``spec`` is exactly what
:meth:`revprof.spec.ArchSpec.to_dict` writes and ``train`` what
:meth:`revprof.train.TrainSettings.to_dict` writes, whole: a new setting needs no change here.
Version 1 files (``patch``, ``batch``, ``precision`` and a ``train`` table without a recipe) still
load, as the paper's recipe at their batch, precision and steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revprof.bounds import read_json_file, replace_file
from revprof.errors import RevprofError
from revprof.recipe import PAPER
from revprof.spec import ArchSpec
from revprof.train.settings import TrainSettings

FORMAT_VERSION = 2
_KEYS = ("revprof_spec_file", "header", "spec", "train")
_V1_KEYS = ("revprof_spec_file", "header", "spec", "patch", "batch", "precision", "train")
_V1_TRAIN_KEYS = ("steps", "val_cases", "seed", "device", "data", "convention", "crop",
                  "synthetic_cases", "synthetic_shape")


@dataclass(frozen=True)
class SpecFile:
    """One network as a sweep trial ran it.

    Attributes:
        spec: the architecture.
        settings: how it was trained: the patch, the recipe and the data settings.
        header: what the sweep recorded about the trial (study, trial number, figures).
    """

    spec: ArchSpec
    settings: TrainSettings = field(default_factory=TrainSettings)
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def patch(self) -> tuple[int, int, int]:
        return self.settings.patch

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able file content (header first)."""
        return {"revprof_spec_file": FORMAT_VERSION, "header": dict(self.header),
                "spec": self.spec.to_dict(), "train": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "spec file") -> SpecFile:
        """Inverse of :meth:`to_dict` (and the reader of version 1 files).

        Raises:
            RevprofError: a missing or unknown key, or an invalid value, naming ``source``.
        """
        if not isinstance(data, Mapping):
            raise RevprofError(f"{source}: expected a JSON object; got {type(data).__name__}")
        version = data.get("revprof_spec_file")
        if version not in (1, FORMAT_VERSION):
            raise RevprofError(f"{source}: not a revprof spec file (revprof_spec_file = {version!r}; "
                               f"this revprof reads versions 1 and {FORMAT_VERSION})")
        keys = _KEYS if version == FORMAT_VERSION else _V1_KEYS
        unknown = sorted(set(data) - set(keys))
        if unknown:
            raise RevprofError(f"{source}: unknown key {unknown[0]!r}; a version {version} spec file "
                               f"has {', '.join(keys)}")
        for key in ("spec", "train") if version == FORMAT_VERSION else ("spec", "patch"):
            if key not in data:
                raise RevprofError(f"{source}: missing {key!r}")
        header = data.get("header") or {}
        if not isinstance(header, Mapping):
            raise RevprofError(f"{source}: 'header' must be a JSON object")
        try:
            spec = ArchSpec.from_dict(data["spec"])
        except RevprofError as error:
            raise RevprofError(f"{source}: {error}") from None
        train = data["train"] if version == FORMAT_VERSION else _v1_settings(data, source)
        settings = TrainSettings.from_dict(train, source=f"{source}: train")
        return cls(spec, settings, dict(header))


def _v1_settings(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A version 1 file's settings in the version 2 form: the paper's recipe at the file's batch,
    precision and steps."""
    train = data.get("train") or {}
    if not isinstance(train, Mapping):
        raise RevprofError(f"{source}: 'train' must be a JSON object")
    bad = sorted(set(train) - set(_V1_TRAIN_KEYS))
    if bad:
        raise RevprofError(f"{source}: unknown training setting {bad[0]!r}; valid: "
                           f"{', '.join(_V1_TRAIN_KEYS)}")
    overrides = {"batch": data.get("batch", 1), "precision": data.get("precision", "fp32")}
    if "steps" in train:
        overrides["steps"] = train["steps"]
    recipe = PAPER.with_overrides(overrides, source=f"{source}: recipe")
    settings = {k: v for k, v in train.items() if k != "steps"}
    return {**settings, "patch": data["patch"], "recipe": recipe.to_dict()}


def write_spec_file(path: Path, spec_file: SpecFile) -> Path:
    """Write ``spec_file`` to ``path`` as JSON, atomically (a temporary file renamed into place).

    Raises:
        RevprofError: the folder cannot be created or written.
    """
    text = json.dumps(spec_file.to_dict(), indent=2) + "\n"
    return replace_file(path, text, name=str(path), make_folder=True)


def read_spec_file(path: Path) -> SpecFile:
    """Read a spec file written by :func:`write_spec_file` (``revprof export``).

    Raises:
        RevprofError: a missing file, invalid JSON or an invalid spec, in one line.
    """
    path = Path(path)
    data = read_json_file(path, "--spec", "no such file (write one with revprof export)")
    return SpecFile.from_dict(data, source=f"--spec {path}")
