"""Throwaway Redis servers for tests.

Why: the Redis online state is only worth testing against a real server (Lua scripts, score bounds,
pipelines, expiry). A server of our own -- fresh temporary directory, free port on 127.0.0.1, no
persistence (``--save "" --appendonly no``) -- needs no system service and starts in milliseconds.
Unlike PostgreSQL, redis-server runs fine as root.

This module imports nothing that needs Redis installed: a missing server only fails at
:meth:`RedisServer.start`.

Usage::

    with RedisServer() as server:
        client = server.client()        # redis.Redis on redis://127.0.0.1:PORT/0
        ...
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    import redis

__all__ = ["RedisServer", "find_redis_server"]

_HOST = "127.0.0.1"


def find_redis_server() -> Path | None:
    """The ``redis-server`` program on PATH (or in /usr/bin, /usr/sbin, /usr/local/bin), or None."""
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/local/bin:/usr/bin:/usr/sbin:/usr/local/sbin"
    )
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class RedisServer:
    """A redis-server in a fresh temporary directory, for the length of a ``with`` block.

    ``with RedisServer() as server:`` starts it on a free port on 127.0.0.1 and waits until PING
    answers; leaving the block shuts it down (SIGTERM, then SIGKILL) and deletes the directory.
    """

    def __init__(self, program: Path | None = None, startup_timeout: float = 20.0) -> None:
        self.program = program
        self.startup_timeout = startup_timeout
        self.host = _HOST
        self.port = 0
        self.tempdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tempdir is None:
            raise RuntimeError("RedisServer is not started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def logfile(self) -> Path:
        if self.tempdir is None:
            raise RuntimeError("RedisServer is not started")
        return self.tempdir / "redis.log"

    def client(self, **kwargs: object) -> redis.Redis:
        """A new redis-py client for database 0 of this server (the caller closes it)."""
        import redis

        return redis.Redis.from_url(self.url, **kwargs)

    def start(self) -> None:
        """Start the server and wait for PING; on any failure, clean up and raise."""
        if self.tempdir is not None:
            raise RuntimeError("RedisServer already started")
        if self.program is None:
            self.program = find_redis_server()
        if self.program is None:
            raise RuntimeError("redis-server not found on PATH; install it (Debian: apt-get install redis-server)")
        self.tempdir = Path(tempfile.mkdtemp(prefix="fengkong-redis-"))
        try:
            for attempt in range(3):  # the free port is only free when we looked
                self.port = _free_port()
                if self._launch():
                    return
                if attempt == 2:
                    raise RuntimeError(f"redis-server could not bind a free port after 3 tries:\n{_tail(self.logfile)}")
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> bool:
        """Start redis-server on ``self.port``; False if the port was taken meanwhile."""
        assert self.tempdir is not None and self.program is not None
        argv = [
            str(self.program),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.tempdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--unixsocket", "",
            "--logfile", str(self.logfile),
            "--databases", "4",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            argv,
            cwd=self.tempdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                log = _tail(self.logfile)
                if "Address already in use" in log:
                    return False
                raise RuntimeError(f"redis-server exited with code {code} during startup; log tail:\n{log}")
            if self._ping():
                return True
            time.sleep(0.02)
        raise RuntimeError(f"redis-server not answering PING after {self.startup_timeout:.0f}s:\n{_tail(self.logfile)}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and delete its directory. Idempotent."""
        try:
            if self._proc is not None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
        finally:
            self._proc = None
            if self.tempdir is not None:
                shutil.rmtree(self.tempdir, ignore_errors=True)
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
