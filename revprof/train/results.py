"""The results table: one row per run, appended atomically to a CSV file pandas reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from revprof.errors import RevprofError

DEFAULT_RESULTS = Path("results") / "runs.csv"


def append_row(row: dict[str, Any], path: Path = DEFAULT_RESULTS) -> Path:
    """Append ``row`` to the CSV at ``path`` (created with its header when missing).

    The whole table is rewritten to a temporary file and renamed over the old one, so a crash at
    any moment leaves either the old or the new table, never a corrupt one. Nested values
    (dicts, lists) are stored as JSON strings.

    Raises:
        RevprofError: the existing file is not a readable CSV table.
    """
    flat = {k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v for k, v in row.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise RevprofError(f"results table {path} is not a readable CSV file ({error}); "
                               f"move it away to start a new one") from None
        table = pd.concat([table, pd.DataFrame([flat])], ignore_index=True)
    else:
        table = pd.DataFrame([flat])
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            table.to_csv(stream, index=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_results(path: Path = DEFAULT_RESULTS) -> pd.DataFrame:
    """The results table (``RevprofError`` when missing)."""
    if not path.exists():
        raise RevprofError(f"no results table at {path}; run `revprof measure --steps N` first")
    return pd.read_csv(path)
