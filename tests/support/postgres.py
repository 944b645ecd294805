"""Throwaway PostgreSQL servers for tests.

Why: SQLite (the default store) does not behave like PostgreSQL (locking, types,
DDL in transactions, ``ON CONFLICT``, JSONB...), and the store supports PostgreSQL
through psycopg, so tests that care need a real server.  A server of our own -- fresh
data directory, free port on 127.0.0.1, no durability, trust auth -- needs no running
system service, no password and no cleanup between runs, and starts in one or two
seconds.

initdb, pg_ctl and postgres refuse to run as root.  We run as root locally and in CI,
so when the effective uid is 0 the server commands run as the ``postgres`` OS user
(created by Debian's ``postgresql`` package) through ``runuser`` (or ``su``).

This module imports nothing that needs PostgreSQL installed: a missing server only
fails at :meth:`PostgresServer.start`.

Usage::

    with PostgresServer() as pg:
        url = pg.create_database()   # postgresql+psycopg://postgres@127.0.0.1:PORT/test_...
        ...
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

__all__ = ["PostgresServer", "find_pg_bin"]

_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
_OS_USER = "postgres"
_DB_USER = "postgres"
_HOST = "127.0.0.1"
_DBNAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _has_server_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _SERVER_PROGRAMS)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin, version like "15" or "9.6".
    try:
        return tuple(int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_pg_bin() -> Path | None:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Looks on PATH first (following symlinks, since e.g. /usr/local/bin may hold
    links into the real bin directory), then in Debian's /usr/lib/postgresql/*/bin,
    highest version first.
    """
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found is None:
            continue
        for candidate in (Path(found).parent, Path(found).resolve().parent):
            if _has_server_programs(candidate):
                return candidate
    debian = sorted(
        (p for p in Path("/").glob(_DEBIAN_GLOB.lstrip("/")) if _has_server_programs(p)),
        key=_version_key,
        reverse=True,
    )
    return debian[0] if debian else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40, offset: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class PostgresServer:
    """A PostgreSQL server in a fresh temporary directory, for the length of a ``with`` block.

    ``with PostgresServer() as pg:`` starts it (``initdb`` + ``postgres`` on a free
    port on 127.0.0.1, unix socket inside the temp dir, fsync/synchronous_commit/
    full_page_writes off, trust auth, superuser ``postgres``); leaving the block stops
    it with ``pg_ctl stop -m immediate`` and deletes the temp dir.
    """

    def __init__(self, bin_dir: Path | None = None, startup_timeout: float = 30.0) -> None:
        self.bin_dir: Path | None = bin_dir
        self.startup_timeout = startup_timeout
        self.host = _HOST
        self.user = _DB_USER
        self.port: int = 0
        self.tempdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None
        self._log_offset = 0

    # -- paths ---------------------------------------------------------------

    def _require_tempdir(self) -> Path:
        if self.tempdir is None:
            raise RuntimeError("PostgresServer is not started")
        return self.tempdir

    @property
    def datadir(self) -> Path:
        return self._require_tempdir() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_tempdir()

    @property
    def logfile(self) -> Path:
        return self._require_tempdir() / "postgres.log"

    # -- running commands ----------------------------------------------------

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        """Prefix a server command so it runs as the ``postgres`` user when we are root."""
        if self._run_as is None:
            return list(argv)
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", self._run_as.pw_name, "--", *argv]
        su = shutil.which("su") or "su"
        return [su, self._run_as.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _run(self, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._wrap(argv),
            cwd=self._require_tempdir(),  # the postgres user may not be able to enter our cwd
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Create the cluster and start the server; on any failure, clean up and raise."""
        if self.tempdir is not None:
            raise RuntimeError("PostgresServer already started")
        if self.bin_dir is None:
            self.bin_dir = find_pg_bin()
        if self.bin_dir is None:
            raise RuntimeError(
                "PostgreSQL server programs (initdb, pg_ctl, postgres) not found on PATH or in "
                f"{_DEBIAN_GLOB}; install them (Debian: apt-get install postgresql)"
            )
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam(_OS_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, and initdb/postgres refuse to run as root, but there is no "
                    f"{_OS_USER!r} OS user to run them as (Debian's postgresql package creates it; "
                    f"or: useradd --system {_OS_USER})"
                ) from None

        self.tempdir = Path(tempfile.mkdtemp(prefix="fengkong-pg-"))
        try:
            if self._run_as is not None:
                os.chown(self.tempdir, self._run_as.pw_uid, self._run_as.pw_gid)
            self._initdb()
            self._launch_with_retries()
        except BaseException:
            self.stop()
            raise

    def _initdb(self) -> None:
        result = self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "-A",
                "trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120.0,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _launch_with_retries(self, attempts: int = 3) -> None:
        # The free port is only free when we looked; if someone grabs it before the
        # server binds it, try another one.
        for attempt in range(attempts):
            self.port = _free_port()
            try:
                self._launch()
                return
            except _PortInUse:
                if attempt == attempts - 1:
                    raise RuntimeError(
                        f"could not bind a free port after {attempts} tries:\n{_tail(self.logfile)}"
                    ) from None

    def _launch(self) -> None:
        argv = [
            self._bin("postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        with self.logfile.open("ab") as log:
            self._log_offset = log.tell()
            # postgres in the foreground as our (grand)child, so we notice at once if it
            # dies during startup; pg_ctl stop works on it all the same via postmaster.pid.
            self._proc = subprocess.Popen(
                self._wrap(argv),
                cwd=self._require_tempdir(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg

        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                log = _tail(self.logfile, offset=self._log_offset)
                if "could not bind" in log or "Address already in use" in log:
                    raise _PortInUse
                raise RuntimeError(f"postgres exited with code {code} during startup; log tail:\n{log}")
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=2) as conn:
                    conn.execute("select 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.05)
        raise RuntimeError(
            f"postgres not ready after {self.startup_timeout:.0f}s (last error: {last_error}); "
            f"log tail:\n{_tail(self.logfile)}"
        )

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m immediate``) and delete the temp dir. Idempotent."""
        tempdir = self.tempdir
        if tempdir is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists() and self.bin_dir is not None:
                self._run(
                    [self._bin("pg_ctl"), "stop", "-D", str(self.datadir), "-m", "immediate", "-w"],
                    timeout=30.0,
                )
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
        finally:
            self._proc = None
            shutil.rmtree(tempdir, ignore_errors=True)
            self.tempdir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connecting ----------------------------------------------------------

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string (for psycopg) of database ``dbname`` on this server."""
        from psycopg.conninfo import make_conninfo

        self._require_tempdir()
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname)

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on this server."""
        self._require_tempdir()
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", autocommit: bool = False) -> psycopg.Connection[TupleRow]:
        """A plain psycopg connection to ``dbname`` (caller closes it)."""
        import psycopg

        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (random name if None) and return its SQLAlchemy URL."""
        from psycopg import sql

        if name is None:
            name = f"test_{secrets.token_hex(6)}"
        _check_dbname(name)
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions (PostgreSQL 13+)."""
        from psycopg import sql

        _check_dbname(name)
        with self.connect(autocommit=True) as conn:
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))


class _PortInUse(Exception):
    pass


def _check_dbname(name: str) -> None:
    if not _DBNAME_RE.match(name):
        raise ValueError(f"unsafe database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")
