"""The results table: one row per run, appended as one line of a CSV file pandas reads.

Old rows are never rewritten: an append writes one line at the end of the file, under an
exclusive lock (``fcntl.flock`` on the table itself), so concurrent runs
neither lose nor reorder rows, and strings such as ``'007'``, 20-digit ids or a seed ``0`` stay
byte for byte what they were. Only when a row brings a column the header lacks is the header
line replaced; the old rows are then copied verbatim into a temporary file that is renamed over
the table (with the table's file mode). Temporary files a killed writer left behind are removed
on the next append.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revprof.bounds import check_output_file, check_output_folder, check_seed, replace_file
from revprof.errors import RevprofError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_RESULTS = Path("results") / "runs.csv"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the table file (created empty when missing) for the body.

    A writer that extends the header renames a new file over the table; a process that waited
    on the old file then finds another inode at ``path`` and locks again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                yield
                return
        finally:
            os.close(fd)  # closing releases the lock


def _header(data: bytes, path: Path) -> list[str]:
    first = data.split(b"\n", 1)[0]
    try:
        return next(csv.reader([first.decode("utf-8").rstrip("\r")]), [])
    except UnicodeDecodeError:
        raise RevprofError(f"results table {path} is not a readable CSV file (not UTF-8 text); "
                           f"move it away to start a new one") from None


def check_table(path: Path = DEFAULT_RESULTS, option: str = "--results") -> Path:
    """Check, before any work, that a row can be appended to the table at ``path``.

    The path must be a writable file (or creatable), and an existing table must be a CSV file
    with a header whose every row has at most as many fields as the header.

    Raises:
        RevprofError: naming the path and, for a bad row, its line number.
    """
    path = check_output_file(path, option)
    if not path.exists() or path.stat().st_size == 0:
        return path
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RevprofError(f"results table {path} is not a readable CSV file (not UTF-8 text); "
                           f"move it away to start a new one") from None
    except OSError as error:
        raise RevprofError(f"cannot read the results table {path}: {error.strerror}") from None
    try:
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, [])
        if not header or not any(h.strip() for h in header):
            raise RevprofError(f"results table {path} has no header line; move it away to start "
                               f"a new one")
        for row in rows:
            if len(row) > len(header):
                raise RevprofError(f"results table {path}: line {rows.line_num} has {len(row)} "
                                   f"fields, the header {len(header)}; fix or remove that line")
    except csv.Error as error:
        raise RevprofError(f"results table {path} is not a readable CSV file (line "
                           f"{rows.line_num}: {error}); fix it or move it away") from None
    return path


def check_training_outputs(results: Path, save_model: Path | None = None,
                           save_predictions: Path | None = None, seed: int | None = None) -> None:
    """Check everything a training run writes, and its seed, before it starts (a run is never
    lost to a bad output path found after training).

    Raises:
        RevprofError: naming the option and the problem.
    """
    check_seed(seed)
    check_table(results)
    if save_model is not None:
        check_output_file(save_model, "--save-model", example="models/run.pt")
    if save_predictions is not None:
        check_output_folder(save_predictions, "--save-predictions")


def _line(values: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return "" if value is None else value


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of a writer killed mid-rename (called under the lock)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def append_row(row: dict[str, Any], path: Path = DEFAULT_RESULTS) -> Path:
    """Append ``row`` as one line of the CSV at ``path`` (created with its header when missing).

    Nested values (dicts, lists) are stored as JSON strings, ``None`` as an empty field. The
    existing lines are left untouched (see the module docstring); a row with columns the header
    lacks extends the header, and older rows read those columns as empty.

    Raises:
        RevprofError: the path is not writable or the existing table is not a CSV table.
    """
    path = Path(path)
    check_output_file(path, "results table")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_table(path)  # before the lock: a bad table is left as it is, nothing created
        with _locked(path):
            _remove_stale_temporaries(path)
            check_table(path)
            _append_locked(row, path)
    except OSError as error:
        raise RevprofError(f"cannot write the results table {path}: {error.strerror}") from None
    return path


def _append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` whole or not at all: a write that fails part-way (a full disk)
    cuts the file back to its old length, so no half row is left."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND)
    size = os.fstat(handle).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
        os.fsync(handle)
    except BaseException:
        os.ftruncate(handle, size)
        raise
    finally:
        os.close(handle)


def _append_locked(row: dict[str, Any], path: Path) -> None:
    data = path.read_bytes() if path.exists() else b""
    if not data.strip():
        header = list(row)
        replace_file(path, _line(header) + _line([_cell(row[k]) for k in header]))
        return
    header = _header(data, path)
    new_columns = [k for k in row if k not in header]
    columns = header + new_columns
    line = _line([_cell(row.get(k)) for k in columns])
    joiner = b"" if data.endswith(b"\n") else b"\n"  # a hand-edited last line without newline
    if not new_columns:
        _append_whole(path, joiner + line)
        return
    # A new column: replace the header line, copy every old row verbatim, add the new row.
    body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    replace_file(path, _line(columns) + body + (joiner if body else b"") + line)


def read_results(path: Path = DEFAULT_RESULTS) -> pd.DataFrame:
    """The results table (``RevprofError`` when missing)."""
    import pandas as pd

    if not path.exists():
        raise RevprofError(f"no results table at {path}; run `revprof measure --steps N` first")
    return pd.read_csv(path)
