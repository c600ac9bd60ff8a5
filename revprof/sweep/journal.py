"""Journal stores that survive a damaged line: read what is valid, check, repair.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` stops at the first line that is
not JSON: one garbage line in the middle makes every later command fail with "not an Optuna
journal file", and every trial after it is out of reach. :class:`TolerantJournalBackend` reads
the same file but skips each line that is not a journal record (naming its line number), so the
store stays usable; :func:`check_journal` reports such lines, a torn last line and trials left
RUNNING, and :func:`repair_journal` rewrites the file without the bad lines after a backup.

It subclasses the public backend and takes the writers' own lock through the public
:class:`~optuna.storages.journal.JournalFileSymlinkLock` (the backend's default lock), as
``storage._repair_torn_tail`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend

from revprof.bounds import replace_file
from revprof.errors import RevprofError, RevprofWarning

_KNOWN_OPS = range(0, 16)  # Optuna's JournalOperation codes (0..10 today), with room to grow


def parse_record(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The journal record on ``line`` (``None`` and why when it is not one)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"not JSON ({error.msg if hasattr(error, 'msg') else error})"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not a journal record"
    op = record.get("op_code")
    if isinstance(op, bool) or not isinstance(op, int) or op not in _KNOWN_OPS:
        return None, f"no valid op_code (got {op!r})"
    if "worker_id" not in record:
        return None, "no worker_id"
    return record, ""


class TolerantJournalBackend(JournalFileBackend):
    """A journal file backend that skips lines that are not journal records.

    Attributes:
        bad_lines: ``(line number, reason)`` of each skipped line (1-based), in file order.
    """

    def __init__(self, file_path: str, lock_obj: Any = None) -> None:
        super().__init__(file_path, lock_obj=lock_obj)
        self._path = file_path
        self._resume: dict[int, tuple[int, int]] = {0: (0, 1)}  # log number -> (offset, line)
        self.bad_lines: list[tuple[int, str]] = []
        self._warned: set[int] = set()

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        number, (offset, line_number) = (log_number_from, self._resume[log_number_from]) \
            if log_number_from in self._resume else (0, (0, 1))
        with open(self._path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(offset)
            for line in handle:
                if offset + len(line) > size or not line.endswith(b"\n"):
                    break  # being written, or a torn last line (cut off when the store opens)
                offset += len(line)
                record, reason = parse_record(line)
                if record is None:
                    if line_number not in {n for n, _ in self.bad_lines}:
                        self.bad_lines.append((line_number, reason))
                    self._warn(line_number, reason)
                    line_number += 1
                    continue
                line_number += 1
                number += 1
                self._resume[number] = (offset, line_number)
                if number - 1 >= log_number_from:
                    yield record

    def _warn(self, line_number: int, reason: str) -> None:
        if line_number in self._warned:
            return
        self._warned.add(line_number)
        warnings.warn(RevprofWarning(
            f"study store {self._path}: line {line_number} is {reason}; it is skipped (see "
            f"`revprof store check {self._path}`, and `revprof store repair` to remove it)"),
            stacklevel=2)


@dataclass
class JournalCheck:
    """What :func:`check_journal` found."""

    path: Path
    lines: int
    records: int
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    torn_tail: bool = False
    running: list[tuple[str, int]] = field(default_factory=list)  # (study, trial number)

    @property
    def ok(self) -> bool:
        """No bad line and no torn last line (RUNNING trials may be live workers)."""
        return not self.bad_lines and not self.torn_tail

    def lines_of_text(self) -> list[str]:
        """The findings, one line each."""
        out = [f"{self.path}: {self.lines} lines, {self.records} journal records"]
        out += [f"line {n}: {reason}" for n, reason in self.bad_lines]
        if self.torn_tail:
            out.append(f"line {self.lines + 1}: a torn last line without its newline (a writer "
                       f"killed mid-append)")
        out += [f"study {study!r} trial {number} is RUNNING with no final state: a worker runs "
                f"it now, or a line that finished it was lost (a later sweep marks it failed "
                f"once its heartbeat is stale)" for study, number in self.running]
        out.append("the journal is sound" if self.ok else
                   f"run `revprof store repair {self.path}` to keep only the valid records "
                   f"(a backup is written first)")
        return out


def _require_file(path: Path) -> None:
    if not path.exists():
        raise RevprofError(f"no study store at {path}")
    if not path.is_file():
        raise RevprofError(f"study store {path} is not a file")


def check_journal(path: str | Path) -> JournalCheck:
    """Read a journal file line by line and report what is not valid.

    Raises:
        RevprofError: the file does not exist or cannot be read.
    """
    import optuna
    from optuna.trial import TrialState

    path = Path(path)
    _require_file(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RevprofError(f"cannot read the study store {path}: {error.strerror}") from None
    lines = data.split(b"\n")
    tail, complete = lines[-1], lines[:-1]
    result = JournalCheck(path=path, lines=len(complete), records=0, torn_tail=bool(tail))
    for number, line in enumerate(complete, start=1):
        record, reason = parse_record(line + b"\n")
        if record is None:
            result.bad_lines.append((number, reason))
        else:
            result.records += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RevprofWarning)
        backend = TolerantJournalBackend(str(path))
        storage = optuna.storages.JournalStorage(backend)
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            result.running += [(summary.study_name, t.number)
                               for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    return result


def repair_journal(path: str | Path) -> tuple[Path, list[tuple[int, str]]]:
    """Rewrite a journal file without its bad lines and torn tail, after a backup copy.

    Works under the journal's lock; run it while no sweep uses the store (a running process
    remembers byte offsets into the old file).

    Returns:
        the backup path and the removed lines ``(line number, reason)``.

    Raises:
        RevprofError: the file does not exist or cannot be written.
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    path = Path(path)
    _require_file(path)
    lock = JournalFileSymlinkLock(str(path))  # the lock every journal writer of this file takes
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    try:
        lock.acquire()
        try:
            shutil.copy2(path, backup)
            data = path.read_bytes()
            lines = data.split(b"\n")
            keep, removed = [], []
            for number, line in enumerate(lines[:-1], start=1):
                record, reason = parse_record(line + b"\n")
                (keep.append(line) if record is not None else removed.append((number, reason)))
            if lines[-1]:
                removed.append((len(lines), "a torn last line"))
            replace_file(path, b"".join(line + b"\n" for line in keep))
        finally:
            lock.release()
    except OSError as error:
        raise RevprofError(f"cannot repair the study store {path}: {error.strerror}") from None
    return backup, removed
