"""The identity of a study's training data, stored with the study so a resume on other data is
refused instead of mixing incomparable trials on one Pareto front.

The identity names what decides a trial's Dice: the labelled case ids, the train/validation split,
the preprocessing (crop, label convention) and a content hash of the case files' relative paths
and sizes. The folder path is kept for the message only: the same data moved elsewhere is the
same data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from revprof.errors import RevprofError

IDENTITY_KEY = "data_identity"
"""Study user attribute holding :func:`data_identity` (docs/store-schema.md)."""

COMPARED = ("cases", "validation", "preprocessing", "content_hash")
"""The identity's fields that must match for a resume."""


def check_data_exists(data: str | None) -> None:
    """Refuse a ``--data`` folder that does not exist (before any trial or store is touched).

    Raises:
        RevprofError: naming the folder.
    """
    if data is not None and not Path(data).is_dir():
        what = "is not a folder" if Path(data).exists() else "does not exist"
        raise RevprofError(f"--data {data} {what}; give a BraTS data folder (revprof data check "
                           f"DIR shows what it holds)")


def data_identity(settings: Any) -> dict[str, Any]:
    """The identity of the cases a run with ``settings`` (a :class:`revprof.train.TrainSettings`)
    trains and validates on; synthetic demo cases are generated first when missing.

    Raises:
        RevprofError: the folder does not exist or holds too few labelled cases.
    """
    from revprof.data import PreprocessConfig
    from revprof.train.run import select_cases

    chosen = select_cases(settings)
    root = chosen.root.resolve()
    cases = sorted(chosen.train + chosen.validation, key=lambda c: c.case_id)
    digest = hashlib.sha256()
    files = total = 0
    for case in cases:
        for path in sorted({*case.images, *([case.seg] if case.seg else [])}):
            size = Path(path).stat().st_size
            digest.update(json.dumps([_relative(Path(path), root), size]).encode())
            files += 1
            total += size
    return {
        "root": str(root),
        "synthetic": settings.data is None,
        "cases": [c.case_id for c in cases],
        "validation": [c.case_id for c in chosen.validation],
        "preprocessing": {**PreprocessConfig(size=chosen.crop, spacing=settings.spacing).as_dict(),
                          "convention": sorted({c.convention for c in cases})},
        "content_hash": digest.hexdigest()[:16],
        "files": files,
        "bytes": total,
    }


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two identities, in words (empty when they match)."""
    found = []
    old_cases, new_cases = stored.get("cases") or [], current.get("cases") or []
    if old_cases != new_cases:
        missing = [c for c in old_cases if c not in new_cases]
        added = [c for c in new_cases if c not in old_cases]
        parts = [f"{len(old_cases)} stored, {len(new_cases)} now"]
        if missing:
            parts.append(f"missing {_few(missing)}")
        if added:
            parts.append(f"new {_few(added)}")
        found.append(f"cases ({'; '.join(parts)})")
    if stored.get("validation") != current.get("validation"):
        found.append(f"held-out cases ({_few(stored.get('validation') or [])} stored, "
                     f"{_few(current.get('validation') or [])} now)")
    if stored.get("preprocessing") != current.get("preprocessing"):
        found.append(f"preprocessing ({stored.get('preprocessing')} stored, "
                     f"{current.get('preprocessing')} now)")
    if stored.get("content_hash") != current.get("content_hash") and not found:
        found.append(f"file contents (sizes or names; hash {stored.get('content_hash')} stored, "
                     f"{current.get('content_hash')} now)")
    return found


def check_same_data(stored: dict[str, Any] | None, current: dict[str, Any], name: str,
                    where: str) -> None:
    """Refuse to resume study ``name`` when its stored data identity differs from ``current``.

    Raises:
        RevprofError: naming what differs and both folders.
    """
    if not isinstance(stored, dict):
        return
    found = differences(stored, current)
    if found:
        raise RevprofError(
            f"study {name!r} in {where} was trained on other data ({stored.get('root')}); "
            f"{current.get('root')} differs in {', '.join(found)}. Resuming would mix "
            f"incomparable trials: give the study's data with --data, or use --study-name NEW")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return path.name


def _few(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "") or "none"
