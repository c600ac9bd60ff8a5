"""Where a sweep keeps its trials: an embedded journal file, SQLite or PostgreSQL.

- Default: Optuna's journal storage in ``.revprof/studies.journal`` under the working directory.
  Every change is one appended, fsynced line written under a lock file, so several local
  processes share it safely, and a process killed mid-write cannot leave a half-written
  record behind (a torn last line is cut off on the next open).
- ``sqlite:///path.db``: Optuna's RDB storage on SQLite (fine for one process at a time).
- ``postgresql://user:pass@host:port/db``: Optuna's RDB storage on PostgreSQL; any number of
  workers on any number of machines can join one study.

A store is named by one string everywhere (the CLI, worker processes, the report): a URL with a
scheme, or else a journal file path. :func:`open_storage` opens it; :func:`load_study` opens
one study in it.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from revprof.errors import RevprofError, closest, first_line
from revprof.redaction import redact_url

DEFAULT_JOURNAL = Path(".revprof") / "studies.journal"
_CREATE_ATTEMPTS = 5


def default_storage() -> str:
    """The embedded store of the working directory (an absolute journal file path)."""
    return str(Path.cwd() / DEFAULT_JOURNAL)


def storage_kind(storage: str) -> str:
    """``journal``, ``sqlite`` or ``postgresql`` for a store string.

    Raises:
        RevprofError: a URL with an unsupported scheme or no database.
    """
    if "://" not in storage:
        if not storage.strip():
            raise RevprofError("--storage is empty; give a journal file path, sqlite:///FILE.db "
                               "or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return "journal"
    scheme = storage.split("://", 1)[0].lower()
    if scheme == "sqlite":
        if not storage.startswith("sqlite:///") or len(storage) <= len("sqlite:///"):
            raise RevprofError(f"SQLite storage URL must look like sqlite:///FILE.db; got "
                               f"{redact_url(storage)!r}")
        return "sqlite"
    if scheme in ("postgresql", "postgresql+psycopg2", "postgres"):
        try:
            parts = urlsplit(storage)
            parts.hostname  # noqa: B018 - validates an IPv6 host in brackets
        except ValueError as error:
            raise RevprofError(f"PostgreSQL storage URL is not a valid URL ({error}): "
                               f"{redact_url(storage)!r}; it must look like postgresql://USER:"
                               f"PASSWORD@HOST:PORT/DATABASE") from None
        if not parts.hostname or not parts.path.strip("/"):
            raise RevprofError(f"PostgreSQL storage URL must look like postgresql://USER:PASSWORD@"
                               f"HOST:PORT/DATABASE; got {redact_url(storage)!r}")
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise RevprofError(f"PostgreSQL storage URL has an invalid port: {redact_url(storage)!r}") from None
        return "postgresql"
    raise RevprofError(f"storage URL scheme {scheme!r} is not supported; use a journal file path, "
                       f"sqlite:///FILE.db or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")


def describe(storage: str) -> str:
    """A short human description, e.g. ``journal .revprof/studies.journal``."""
    kind = storage_kind(storage)
    if kind == "journal":
        try:
            shown = os.path.relpath(storage)
        except ValueError:
            shown = storage
        return f"journal {shown if not shown.startswith('..') else storage}"
    return redact_url(storage)


def open_storage(storage: str, create: bool = True) -> Any:
    """An Optuna storage object for a store string.

    Args:
        storage: a journal file path or a ``sqlite:///`` / ``postgresql://`` URL.
        create: create a missing journal file (and its folder); otherwise a missing journal or
            SQLite file is an error and nothing is created (a report or an export never makes
            an empty store).

    Raises:
        RevprofError: an unsupported URL, a missing driver, an unreachable server or a missing
            journal file, in one line.
    """
    kind = storage_kind(storage)
    import optuna

    if kind == "journal":
        from optuna.storages.journal import JournalFileSymlinkLock

        from revprof.sweep.journal import TolerantJournalBackend

        path = Path(storage)
        if not path.exists():
            if not create:
                raise RevprofError(f"no study store at {storage}: no such journal file (run a sweep "
                                   f"first, or pass --storage with sqlite:///FILE, postgresql://... "
                                   f"or the path of a .journal file)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise RevprofError(f"cannot create the study store folder {path.parent}: "
                                   f"{error.strerror}") from None
        elif path.is_dir():
            raise RevprofError(f"study store {storage} is a directory; give a file path")
        elif not path.is_file():
            raise RevprofError(f"study store {storage} is not a regular file (a device or a pipe); "
                               f"give a journal file path such as .revprof/studies.journal")
        try:
            # The backend's default lock, made here so the repair below can take the same one.
            lock = JournalFileSymlinkLock(str(path))
            backend = TolerantJournalBackend(str(path), lock_obj=lock)
            _repair_torn_tail(path, lock)
            return optuna.storages.JournalStorage(backend)
        except OSError as error:
            raise RevprofError(f"cannot open the study store {storage}: {error.strerror}") from None
        except ValueError as error:
            raise RevprofError(f"study store {storage} is not an Optuna journal file: {error}") from None
    if kind == "sqlite" and not create and not Path(storage[len("sqlite:///"):]).exists():
        raise RevprofError(f"no study store at {redact_url(storage)}: no such database file "
                           f"{redact_url(storage)[len('sqlite:///'):]}")
    url = storage
    engine_kwargs: dict[str, Any]
    if kind == "postgresql":
        url = _postgres_driver_url(url)
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    else:
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception as error:  # sqlalchemy's errors carry the driver's message
            # Workers that meet an empty database at the same moment all create Optuna's tables;
            # the losers see a duplicate-key or already-exists error and simply try again.
            if type(error).__name__ in ("IntegrityError", "ProgrammingError") and \
                    attempt + 1 < _CREATE_ATTEMPTS:
                time.sleep(0.5 + random.random())
                continue
            message = str(getattr(error, "orig", None) or error).strip().splitlines()
            first = next((line.strip() for line in message if line.strip()), type(error).__name__)
            raise RevprofError(f"cannot open the study store {redact_url(storage)}: {first}") from None
    raise AssertionError("unreachable")


def _postgres_driver_url(url: str) -> str:
    """Name the installed driver in the URL: SQLAlchemy 2.1 takes a bare ``postgresql://`` for
    psycopg 3, while revprof's extra installs psycopg2."""
    import importlib.util

    scheme, rest = url.split("://", 1)
    rest = _quote_user_part(rest)
    if scheme.lower() == "postgres":
        scheme = "postgresql"
    have_psycopg2 = importlib.util.find_spec("psycopg2") is not None
    have_psycopg3 = importlib.util.find_spec("psycopg") is not None
    if scheme.lower() == "postgresql+psycopg2" and not have_psycopg2:
        have_psycopg3 = False
    if not (have_psycopg2 or have_psycopg3):
        raise RevprofError("PostgreSQL storage needs the psycopg2 driver: "
                           "pip install psycopg2-binary (or revprof[postgres])")
    if scheme.lower() == "postgresql":
        import sqlalchemy

        bare_is_psycopg2 = int(sqlalchemy.__version__.split(".")[0]) < 2 or \
            sqlalchemy.__version__.startswith("2.0")
        if have_psycopg2 and not (have_psycopg3 and not bare_is_psycopg2):
            scheme = "postgresql+psycopg2"
    return f"{scheme}://{rest}"


def _quote_user_part(rest: str) -> str:
    """Percent-encode the user and password of ``USER:PASSWORD@HOST...``, so a password with an
    unencoded ``@``, ``/`` or ``:`` reaches the server whole (SQLAlchemy would split it at its
    first ``@`` and show the rest as the host name in its error)."""
    from urllib.parse import quote, unquote

    query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, query_at)
    if at < 0:
        return rest
    user, sep, password = rest[:at].partition(":")
    encoded = quote(unquote(user), safe="") + (sep + quote(unquote(password), safe="") if sep else "")
    return f"{encoded}{rest[at:]}"


def _repair_torn_tail(path: Path, lock: Any) -> None:
    """Cut off a last line without its newline (a writer killed mid-append), under the lock."""
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
    except OSError:
        return
    lock.acquire()  # the journal writers' own lock (public JournalFileSymlinkLock)
    try:
        data = path.read_bytes()
        if data.endswith(b"\n") or not data:
            return
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        lock.release()


def load_study(name: str, storage: str, sampler: Any = None) -> Any:
    """The existing Optuna study ``name`` in ``storage`` (neither is ever created).

    Args:
        name: the study name.
        storage: a store string (:func:`open_storage`).
        sampler: the sampler the study runs with (default: Optuna's).

    Raises:
        RevprofError: a missing or unreadable store, a store without studies, or no study of
            that name (the message lists the studies there and the closest name).
    """
    import optuna

    backend = open_storage(storage, create=False)
    where = redact_url(storage)
    try:
        names = sorted(s.study_name for s in backend.get_all_studies())
    except Exception as error:  # a broken database or journal, in the driver's words
        raise RevprofError(f"cannot read studies from {where}: {first_line(error)}") from None
    if not names:
        raise RevprofError(f"the store {where} holds no studies; run `revprof sweep` first")
    if name not in names:
        raise RevprofError(f"no study named {name!r} in {where}{closest(name, names)}; "
                           f"studies there: {', '.join(names)}")
    return optuna.load_study(study_name=name, storage=backend, sampler=sampler)
