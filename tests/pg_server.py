"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, listen on a free port
of 127.0.0.1 only, stop and delete at the end.

``initdb`` refuses to run as root, so as root the server runs as an unprivileged system user
(``postgres`` when it exists) through ``runuser``. Outside CI a missing prerequisite skips the
test with the reason; under ``CI=true`` it fails it.

Usage as a fixture (see tests/test_sweep_postgres.py)::

    with PostgresServer.start() as server:
        url = server.url          # postgresql://postgres@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class PrerequisiteMissing(Exception):
    """PostgreSQL (or its driver) is not usable here."""


def missing(reason: str) -> None:
    """Skip outside CI, fail in CI."""
    if IN_CI:
        pytest.fail(f"CI=true and a PostgreSQL test prerequisite is missing: {reason}")
    pytest.skip(reason)


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise PrerequisiteMissing("PostgreSQL server binaries (initdb, pg_ctl) not found under "
                              "/usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One running throwaway server."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.run_as = user  # None: the current (non-root) user
        self.db_user = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self.db_user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as is not None:
            runuser = shutil.which("runuser")
            if runuser:
                command = [runuser, "-u", self.run_as, "--", *command]
            else:
                command = ["su", self.run_as, "-s", "/bin/sh", "-c",
                           " ".join(f"'{c}'" for c in command)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                cwd=str(self.root))
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    @classmethod
    def start(cls) -> PostgresServer:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise PrerequisiteMissing("psycopg2 is not installed (pip install psycopg2-binary)") from None
        bin_dir = find_bin_dir()
        user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    continue
                user = name
                break
            if user is None:
                raise PrerequisiteMissing("running as root and no unprivileged user (postgres) "
                                          "to run initdb as")
            if not shutil.which("runuser") and not shutil.which("su"):
                raise PrerequisiteMissing("running as root without runuser or su")
        root = Path(tempfile.mkdtemp(prefix="revprof-pg-"))
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, _free_port(), user)
        try:
            server._run("initdb", "-D", str(root / "data"), "-U", server.db_user, "--auth=trust",
                        "--encoding=UTF8", "--no-sync")
            server._run("pg_ctl", "-D", str(root / "data"), "-l", str(root / "server.log"), "-w",
                        "-t", "60", "-o",
                        f"-p {server.port} -c listen_addresses=127.0.0.1 -k {root} "
                        f"-c fsync=off -c max_connections=100", "start")
        except BaseException:
            log = root / "server.log"
            detail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            server.stop()
            if detail:
                print(detail)
            raise
        return server

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop",
                      check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def postgres_server():
    """A running server for the module's tests (skipped, or failed under CI=true, when missing)."""
    try:
        server = PostgresServer.start()
    except PrerequisiteMissing as error:
        missing(str(error))
        return
    try:
        yield server
    finally:
        server.stop()
