"""Journal stores that survive a damaged line: read what is valid, check, repair.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` stops at the first line that is
not JSON, and its replay fails on a record whose fields are missing or of the wrong type (a
``KeyError`` on every later command): one damaged line locks the whole store.
:class:`TolerantJournalBackend` reads the same file but hands Optuna only records it can replay
(:func:`parse_record`: JSON, an object, an operation Optuna knows, every field that operation
reads, of the type it reads, nested at most :data:`MAX_RECORD_DEPTH` levels, at most
:data:`MAX_RECORD_BYTES` long); it skips every other line, naming its number, so the store stays
usable. :func:`check_journal` reports such lines, a torn last line and trials left RUNNING, and
:func:`repair_journal` rewrites the file without the bad lines after a backup.

It subclasses the public backend and takes the writers' own lock through the public
:class:`~optuna.storages.journal.JournalFileSymlinkLock` (the backend's default lock), as
``storage._repair_torn_tail`` does. The operation codes and the fields each one reads are
Optuna's journal format (``optuna.storages.journal._storage``): this module is, with
:mod:`revprof.sweep.optuna_adapter`, the only place that knows them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from optuna.storages.journal import JournalFileBackend

from revprof.bounds import check_output_file, nested_deeper_than, replace_file
from revprof.errors import RevprofError, RevprofWarning, first_line

MAX_RECORD_BYTES = 64 * 2**20
"""The longest line read as a record (revprof's own records are a few kilobytes); a longer one is
skipped without being read into memory whole."""
MAX_RECORD_DEPTH = 100
"""The deepest nesting of lists and objects in a record (revprof's are 6 deep); Optuna copies
records recursively, so a deeper one would end in a ``RecursionError``."""
_WARNED_LINES = 3  # damaged lines warned about one by one; one more warning covers the rest


def parse_record(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The journal record on ``line`` (``None`` and why when it is not one Optuna can replay)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"not JSON ({error.msg if hasattr(error, 'msg') else error})"
    except RecursionError:
        return None, f"not a journal record (JSON nested more than {MAX_RECORD_DEPTH} levels deep)"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not a journal record"
    op = record.get("op_code")
    if not _is_int(op) or op not in _FIELDS:
        return None, (f"a record with no valid op_code (got {_short(op)}; Optuna's are 0 to "
                      f"{max(_FIELDS)})")
    if not isinstance(record.get("worker_id"), str):
        return None, "a record with " + ("no worker_id" if "worker_id" not in record else
                                         "a worker_id that is not text")
    if nested_deeper_than(record, MAX_RECORD_DEPTH):
        return None, f"not a journal record (JSON nested more than {MAX_RECORD_DEPTH} levels deep)"
    problem = _field_problem(op, record)
    if problem:
        return None, f"a {_OP_NAMES[op]} record with {problem}"
    return record, ""


def _line_record(line: bytes | None, length: int) -> tuple[dict[str, Any] | None, str]:
    if line is None:
        return None, (f"a line of {length:,} bytes, longer than a journal record can be "
                      f"({MAX_RECORD_BYTES:,} bytes)")
    return parse_record(line)


def _lines(handle: IO[bytes], size: int) -> Iterator[tuple[int, bytes | None]]:
    """The complete lines from ``handle``'s position up to byte ``size``: ``(length, line)``,
    the line ``None`` when it is longer than :data:`MAX_RECORD_BYTES` (skipped in chunks, never
    held whole). A last line without its newline (being written, or torn) is not yielded."""
    position = handle.tell()
    while position < size:
        chunk = handle.readline(MAX_RECORD_BYTES + 1)
        length, line = len(chunk), chunk if chunk.endswith(b"\n") else None
        while not chunk.endswith(b"\n"):
            chunk = handle.readline(2**20)
            if not chunk:
                return  # no newline before the end: being written, or torn
            length += len(chunk)
        if position + length > size:
            return  # written after we looked
        position += length
        yield length, line


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
            for length, line in _lines(handle, size):
                offset += length
                record, reason = _line_record(line, length)
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
        if line_number in self._warned or len(self._warned) > _WARNED_LINES:
            return
        self._warned.add(line_number)
        if len(self._warned) > _WARNED_LINES:
            message = (f"study store {self._path}: line {line_number} and later damaged lines are "
                       f"skipped without a warning each (see `revprof store check {self._path}`)")
        else:
            message = (f"study store {self._path}: line {line_number} is {reason}; it is skipped "
                       f"(see `revprof store check {self._path}`, and `revprof store repair` to "
                       f"remove it)")
        warnings.warn(RevprofWarning(message), stacklevel=2)


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

    def summary(self) -> str:
        """One line naming what is damaged (for a store that is not :attr:`ok`)."""
        parts = []
        if self.bad_lines:
            numbers = ", ".join(str(n) for n, _ in self.bad_lines[:5])
            more = f" and {len(self.bad_lines) - 5} more" if len(self.bad_lines) > 5 else ""
            parts.append(f"{len(self.bad_lines)} damaged line(s) (line {numbers}{more})")
        if self.torn_tail:
            parts.append("a torn last line")
        return (f"study store {self.path} has {' and '.join(parts) or 'no damage'}; every valid "
                f"record is still read, and `revprof store repair {self.path}` removes the rest")


def _require_file(path: Path) -> None:
    try:
        if not path.exists():
            raise RevprofError(f"no study store at {path}")
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file (a device or a pipe)"
            raise RevprofError(f"study store {path} is {kind}; give a journal file")
    except (OSError, ValueError) as error:  # a name the system refuses (NUL, too long)
        raise RevprofError(f"study store {path!r} cannot be opened: "
                           f"{getattr(error, 'strerror', None) or error}") from None


def _scan(path: Path, keep: Callable[[bytes], object] | None = None) -> JournalCheck:
    """Every line of ``path``, checked; ``keep`` is given each valid line."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        result = JournalCheck(path=path, lines=0, records=0)
        end = 0
        for length, line in _lines(handle, size):
            end += length
            result.lines += 1
            record, reason = _line_record(line, length)
            if record is None:
                result.bad_lines.append((result.lines, reason))
                continue
            result.records += 1
            if keep is not None and line is not None:
                keep(line)
    result.torn_tail = end < size
    return result


def check_journal(path: str | Path) -> JournalCheck:
    """Read a journal file line by line and report what is not valid.

    Raises:
        RevprofError: the file does not exist or cannot be read, or Optuna cannot replay its
            valid records.
    """
    import optuna
    from optuna.trial import TrialState

    path = Path(path)
    _require_file(path)
    try:
        result = _scan(path)
    except OSError as error:
        raise RevprofError(f"cannot read the study store {path}: {error.strerror}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RevprofWarning)
            storage = optuna.storages.JournalStorage(TolerantJournalBackend(str(path)))
            for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
                study = optuna.load_study(study_name=summary.study_name, storage=storage)
                result.running += [(summary.study_name, t.number) for t in
                                   study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    except OSError as error:
        raise RevprofError(f"cannot read the study store {path}: {error.strerror}") from None
    except Exception as error:  # a record Optuna cannot replay although it looks valid
        raise RevprofError(f"study store {path}: Optuna cannot replay its records "
                           f"({first_line(error, with_type=True)})") from None
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
    check_output_file(path, "study store")  # a read-only or full file system: refused before
    lock = JournalFileSymlinkLock(str(path))  # the lock every journal writer of this file takes
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    removed: list[tuple[int, str]] = []

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as out:
            found = _scan(path, keep=out.write)
        removed.extend(found.bad_lines)
        if found.torn_tail:
            removed.append((found.lines + 1, "a torn last line"))

    try:
        lock.acquire()
    except OSError as error:
        raise RevprofError(f"cannot repair the study store {path}: cannot take its lock "
                           f"({error.strerror or error}); the store is unchanged") from None
    try:
        # the backup is whole or absent: a full disk leaves no truncated .bak behind
        replace_file(backup, lambda temporary: shutil.copyfile(path, temporary),
                     name=f"the backup {backup.name} ({path} is unchanged)")
        try:
            replace_file(path, write)
        except OSError as error:
            backup.unlink(missing_ok=True)
            raise RevprofError(f"cannot repair the study store {path}: {error.strerror or error}; "
                               f"the store is unchanged") from None
    finally:
        lock.release()
    return backup, removed


# ---- Optuna's journal format: the fields each operation's replay reads -----------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _time(value: Any) -> bool:
    """An ISO time Optuna's replay reads (``datetime.fromisoformat(...).astimezone()``)."""
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value).astimezone()
    except (ValueError, OverflowError, OSError):
        return False
    return True


def _distribution(value: Any) -> Any:
    """The Optuna distribution of a JSON text, or ``None``."""
    from optuna.distributions import json_to_distribution

    if not isinstance(value, str):
        return None
    try:
        return json_to_distribution(value)
    except Exception:  # any text: json_to_distribution raises what the constructors raise
        return None


def _external(distribution: Any, internal: Any) -> bool:
    """Whether ``internal`` is a value of ``distribution`` (as the replay converts it)."""
    if not _is_number(internal) or (isinstance(internal, float) and not math.isfinite(internal)):
        return False
    try:
        distribution.to_external_repr(internal)
    except (IndexError, ValueError, TypeError, OverflowError):
        return False
    return True


def _one_attr(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1


def _numbers(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(_is_number(v) for v in value))


def _state(value: Any) -> bool:
    from optuna.trial import TrialState

    return _is_int(value) and value in {s.value for s in TrialState}


def _directions(value: Any) -> bool:
    from optuna.study import StudyDirection

    return isinstance(value, list) and bool(value) and all(
        _is_int(d) and d in {s.value for s in StudyDirection} for d in value)


def _create_trial(record: dict[str, Any]) -> str:
    distributions = record.get("distributions", {})
    if not isinstance(distributions, dict):
        return "'distributions' that is not an object"
    parsed = {name: _distribution(text) for name, text in distributions.items()}
    bad = next((name for name, d in parsed.items() if d is None), None)
    if bad is not None:
        return f"distribution {_short(bad)} that is not an Optuna distribution"
    params = record.get("params", {})
    if not isinstance(params, dict):
        return "'params' that is not an object"
    for name, internal in params.items():
        if name not in parsed or not _external(parsed[name], internal):
            return f"parameter {_short(name)} that is not a value of its distribution"
    if record.get("value") is not None and record.get("values") is not None:
        return "both 'value' and 'values'"
    for key, check, what in (("state", _state, "a trial state"), ("value", lambda v: v is None or
                             _is_number(v), "a number"), ("values", _numbers, "a list of numbers"),
                             ("user_attrs", lambda v: isinstance(v, dict), "an object"),
                             ("system_attrs", lambda v: isinstance(v, dict), "an object"),
                             ("datetime_complete", _time, "an ISO time")):
        if key in record and not check(record[key]):
            return f"{key!r} that is not {what}"
    steps = record.get("intermediate_values", {})
    if not isinstance(steps, dict) or not all(k.lstrip("-").isdigit() and _is_number(v)
                                              for k, v in steps.items()):
        return "'intermediate_values' that are not numbers by step"
    return ""


def _trial_param(record: dict[str, Any]) -> str:
    distribution = _distribution(record["distribution"])
    if distribution is None:
        return "a 'distribution' that is not an Optuna distribution"
    if not _external(distribution, record["param_value_internal"]):
        return "a 'param_value_internal' that is not a value of its distribution"
    return ""


def _trial_state(record: dict[str, Any]) -> str:
    from optuna.trial import TrialState

    state = TrialState(record["state"])
    needed = "datetime_start" if state == TrialState.RUNNING else \
        "datetime_complete" if state.is_finished() else None
    if needed is not None and not _time(record.get(needed)):
        return f"no {needed!r} ISO time for state {state.name}"
    return ""


_ID = (_is_int, "a whole number")
_TEXT = (lambda v: isinstance(v, str), "text")
_ATTR = (_one_attr, "an object of one attribute")
_REQUIRED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "study_id": _ID, "trial_id": _ID, "study_name": _TEXT, "param_name": _TEXT,
    "directions": (_directions, "a list of study directions"),
    "user_attr": _ATTR, "system_attr": _ATTR,
    "datetime_start": (lambda v: v is None or _time(v), "an ISO time"),
    "param_value_internal": (_is_number, "a number"), "distribution": _TEXT,
    "state": (_state, "a trial state"), "values": (_numbers, "a list of numbers"),
    "step": (_is_int, "a whole number"),
    "intermediate_value": (lambda v: v is None or _is_number(v), "a number"),
}
# Optuna's JournalOperation codes (0..10 in Optuna 4), the fields its replay of each reads
# without a default, and a check of the fields that depend on each other.
_FIELDS: dict[int, tuple[tuple[str, ...], Callable[[dict[str, Any]], str] | None]] = {
    0: (("study_name", "directions"), None),                                   # CREATE_STUDY
    1: (("study_id",), None),                                                  # DELETE_STUDY
    2: (("study_id", "user_attr"), None),                                      # SET_STUDY_USER_ATTR
    3: (("study_id", "system_attr"), None),                                    # SET_STUDY_SYSTEM_ATTR
    4: (("study_id", "datetime_start"), _create_trial),                        # CREATE_TRIAL
    5: (("trial_id", "param_name", "param_value_internal", "distribution"), _trial_param),
    6: (("trial_id", "state", "values"), _trial_state),                        # SET_TRIAL_STATE_VALUES
    7: (("trial_id", "step", "intermediate_value"), None),                     # INTERMEDIATE_VALUE
    8: (("trial_id", "user_attr"), None),                                      # SET_TRIAL_USER_ATTR
    9: (("trial_id", "system_attr"), None),                                    # SET_TRIAL_SYSTEM_ATTR
    10: ((), None),                                                            # DISCARD_TRIALS
}
_OP_NAMES = {0: "CREATE_STUDY", 1: "DELETE_STUDY", 2: "SET_STUDY_USER_ATTR",
             3: "SET_STUDY_SYSTEM_ATTR", 4: "CREATE_TRIAL", 5: "SET_TRIAL_PARAM",
             6: "SET_TRIAL_STATE_VALUES", 7: "SET_TRIAL_INTERMEDIATE_VALUE",
             8: "SET_TRIAL_USER_ATTR", 9: "SET_TRIAL_SYSTEM_ATTR", 10: "DISCARD_TRIALS"}


def _field_problem(op: int, record: dict[str, Any]) -> str:
    """What is missing or wrong in a record of operation ``op`` ("" when nothing)."""
    required, related = _FIELDS[op]
    for key in required:
        if key not in record:
            return f"no {key!r}"
        check, what = _REQUIRED[key]
        if not check(record[key]):
            return f"{key!r} that is not {what} (got {_short(record[key])})"
    return related(record) if related is not None else ""


def check_operation_codes() -> None:
    """Check that this Optuna's journal operation codes are the ones this module reads (run by
    the tests, so an Optuna release that changes them fails loudly).

    Raises:
        RevprofError: a code of :data:`_OP_NAMES` names another operation in this Optuna.
    """
    from optuna.storages.journal._storage import JournalOperation  # private: the format's codes

    found = {int(op): op.name for op in JournalOperation}
    changed = {code: name for code, name in _OP_NAMES.items() if found.get(code) != name}
    if changed:
        raise RevprofError(f"Optuna's journal operations changed: revprof reads {changed}, this "
                           f"Optuna has {found}")
