"""Spec files: one network with the patch, batch and precision it was measured at, and the
training settings of the sweep it came from, so ``--spec FILE`` reproduces that trial.

Written by ``revprof export`` (one file per trial), read by ``measure``, ``model`` and ``plan
--spec FILE``. The format is JSON::

    {
      "revprof_spec_file": 1,
      "header": {"study": "quick", "trial": 7, "status": "ok", "peak_bytes": ...,
                 "predicted_peak_bytes": ..., "dice": ..., "params": ..., ...},
      "spec": {... ArchSpec.to_dict() ...},
      "patch": [32, 32, 32], "batch": 1, "precision": "fp32",
      "train": {"steps": 40, "val_cases": 2, "seed": 0, "device": "auto", "data": null,
                "convention": null, "crop": null, "synthetic_cases": 6,
                "synthetic_shape": [48, 48, 48]}
    }

``header`` is information only (what the sweep recorded); ``spec`` is exactly what
:meth:`revprof.spec.ArchSpec.to_dict` writes and :meth:`~revprof.spec.ArchSpec.from_dict` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revprof.bounds import replace_file
from revprof.errors import RevprofError
from revprof.spec import PRECISIONS, ArchSpec, Precision, parse_patch

FORMAT_VERSION = 1
_KEYS = ("revprof_spec_file", "header", "spec", "patch", "batch", "precision", "train")
_TRAIN_KEYS = ("steps", "val_cases", "seed", "device", "data", "convention", "crop",
               "synthetic_cases", "synthetic_shape")


@dataclass(frozen=True)
class SpecFile:
    """One network as a sweep trial ran it.

    Attributes:
        spec: the architecture.
        patch: training patch ``(D, H, W)``.
        batch: batch size.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        train: the sweep's training settings (keys of :data:`_TRAIN_KEYS`; may be empty).
        header: what the sweep recorded about the trial (study, trial number, figures).
    """

    spec: ArchSpec
    patch: tuple[int, int, int]
    batch: int = 1
    precision: Precision = "fp32"
    train: dict[str, Any] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able file content (header first)."""
        return {"revprof_spec_file": FORMAT_VERSION, "header": dict(self.header),
                "spec": self.spec.to_dict(), "patch": list(self.patch), "batch": self.batch,
                "precision": self.precision, "train": dict(self.train)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "spec file") -> SpecFile:
        """Inverse of :meth:`to_dict`.

        Raises:
            RevprofError: a missing or unknown key, or an invalid value, naming ``source``.
        """
        if not isinstance(data, Mapping):
            raise RevprofError(f"{source}: expected a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise RevprofError(f"{source}: unknown key {unknown[0]!r}; a spec file has "
                               f"{', '.join(_KEYS)}")
        version = data.get("revprof_spec_file")
        if version != FORMAT_VERSION:
            raise RevprofError(f"{source}: not a revprof spec file (revprof_spec_file = {version!r}; "
                               f"this revprof reads version {FORMAT_VERSION})")
        for key in ("spec", "patch"):
            if key not in data:
                raise RevprofError(f"{source}: missing {key!r}")
        try:
            spec = ArchSpec.from_dict(data["spec"])
            patch = parse_patch(data["patch"])
        except RevprofError as error:
            raise RevprofError(f"{source}: {error}") from None
        batch = data.get("batch", 1)
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise RevprofError(f"{source}: batch must be a positive integer; got {batch!r}")
        precision = data.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise RevprofError(f"{source}: precision must be one of {', '.join(PRECISIONS)}; "
                               f"got {precision!r}")
        train = data.get("train") or {}
        header = data.get("header") or {}
        if not isinstance(train, Mapping) or not isinstance(header, Mapping):
            raise RevprofError(f"{source}: 'train' and 'header' must be JSON objects")
        bad = sorted(set(train) - set(_TRAIN_KEYS))
        if bad:
            raise RevprofError(f"{source}: unknown training setting {bad[0]!r}; valid: "
                               f"{', '.join(_TRAIN_KEYS)}")
        return cls(spec, patch, batch, str(precision), dict(train), dict(header))


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RevprofError(f"--spec {path}: no such file (write one with revprof export)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RevprofError(f"--spec {path}: cannot read it ({error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RevprofError(f"--spec {path}: not valid JSON ({error})") from None
    return SpecFile.from_dict(data, source=f"--spec {path}")
