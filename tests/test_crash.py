"""A crash leaves no lies and no orphans: `convene serve` killed with SIGKILL mid-call.

The restart on the same CONVENE_HOME closes the call the dead process left open (status
`interrupted`, ended_by `crash`, its segments and commitments kept), adopts the embedded
Postgres and Redis the dead process left running (never a second of either), and its clean
SIGTERM stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from server.audio import to_twilio_ulaw
from server.simulate import request_twiml
from server.simulator import simulate_stream, stream_url_from_twiml
from tests.conftest import API_HEADERS, MEETING_TURNS, TEST_API_TOKEN, rules_prompts
from tests.speech import wer

AUTH_TOKEN = "crash-test-token"
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """`convene serve` in its own process, on CONVENE_HOME `home`."""

    def __init__(self, home: Path, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CONVENE_HOME": str(home),
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "CONVENE_BOOTSTRAP_TOKEN": TEST_API_TOKEN,
            "CONVENE_PROMPTS_DIR": str(rules_prompts()),
        }
        for name in ("PUBLIC_HOST", "DATABASE_URL", "REDIS_URL"):
            env.pop(name, None)
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop/kill)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "-v"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            cwd=REPO,
        )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    async def ready(self, http: httpx.AsyncClient, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{self.url}/ready", timeout=2)).status_code == 200:
                    return
            assert self.proc.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, "convene serve did not become ready"
            await asyncio.sleep(0.3)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def terminate(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(60)
        self._log.close()
        return code


def _postgres_pids(home: Path) -> list[int]:
    """The embedded postmaster and its children, from postmaster.pid."""
    try:
        pid = int((home / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except (OSError, ValueError, psutil.Error):
        return []


def _redis_pid(home: Path) -> int | None:
    try:
        pid = int((home / "redis" / "redis.pid").read_text().strip())
        return pid if psutil.Process(pid).is_running() else None
    except (OSError, ValueError, psutil.Error):
        return None


def _postmasters_for(data_dir: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc.pid)
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
    return alive


@contextlib.contextmanager
def _reaper(pids: list[int]) -> Iterator[None]:
    """Whatever the outcome, kill the servers this test saw (by pid), never leave them."""
    try:
        yield
    finally:
        for pid in _alive(pids):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


async def _get(http: httpx.AsyncClient, url: str) -> Any:
    response = await http.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


async def test_sigkill_mid_call_then_restart_closes_the_call_and_adopts_servers(
    tmp_path: Path, meeting_wav: Path
) -> None:
    home = (tmp_path / "home").resolve()
    seen: list[int] = []
    with _reaper(seen):
        first = Serve(home, tmp_path / "serve1.log")
        async with httpx.AsyncClient(headers=API_HEADERS) as http:
            try:
                await first.ready(http)
            except BaseException:
                first.kill()
                raise
            twiml = await request_twiml(
                http,
                first.url,
                series="crash-series",
                meeting_date=None,
                auth_token=AUTH_TOKEN,
                call_sid=(call_sid := "CA" + secrets.token_hex(16)),
            )
            stream_url, params = stream_url_from_twiml(twiml)
            call_id = params["call_id"]
            # The meeting in real time, then a long silence: the call is still streaming when
            # the server is killed.
            streaming = asyncio.create_task(
                simulate_stream(
                    stream_url,
                    to_twilio_ulaw(meeting_wav),
                    custom_parameters=params,
                    call_sid=call_sid,
                    speed=1.0,
                    trailing_silence_ms=300_000,
                )
            )
            # Wait (on the real API) until the commitment in the second turn is stored.
            deadline = time.monotonic() + 120
            while True:
                commitments = (await _get(http, f"{first.url}/calls/{call_id}/commitments"))[
                    "commitments"
                ]
                if commitments:
                    break
                assert not streaming.done(), streaming
                assert time.monotonic() < deadline, "no commitment stored"
                await asyncio.sleep(0.2)
            before = await _get(http, f"{first.url}/calls/{call_id}")
            assert before["status"] == "in-progress" and before["active"] is True
            pg_pids, redis_pid = _postgres_pids(home), _redis_pid(home)
            assert pg_pids and redis_pid is not None
            seen += [*pg_pids, redis_pid]

            first.kill()
            with contextlib.suppress(Exception):
                await streaming  # the socket dies with the server
            # The orphans the issue saw: both servers outlive the killed process.
            assert _alive(pg_pids[:1]) == pg_pids[:1]
            assert _alive([redis_pid]) == [redis_pid]

            second = Serve(home, tmp_path / "serve2.log")
            try:
                await second.ready(http)
                # Adopted, not doubled: the same postmaster and Redis, and only them.
                assert _postmasters_for(home / "postgres") == pg_pids[:1], second.log_tail()
                assert _redis_pid(home) == redis_pid
                deadline = time.monotonic() + 60
                while True:
                    after = await _get(http, f"{second.url}/calls/{call_id}")
                    if after["status"] != "in-progress":
                        break
                    assert time.monotonic() < deadline, "the crashed call is still in-progress"
                    await asyncio.sleep(0.2)
                assert after["status"] == "interrupted"
                assert after["ended_by"] == "crash"
                assert after["active"] is False
                assert after["completed_at"] is not None
                kept = [s["text"] for s in after["transcript"]]
                assert kept[: len(before["transcript"])] == [
                    s["text"] for s in before["transcript"]
                ]
                assert wer(" ".join(MEETING_TURNS[:2]), " ".join(kept[:2])) <= 0.2
                again = await _get(http, f"{second.url}/calls/{call_id}/commitments")
                assert again["commitments"] == commitments
                tasks = (await _get(http, f"{second.url}/series/crash-series/tasks"))["tasks"]
                assert {c["task_id"] for c in commitments if c["task_id"]} <= {
                    t["id"] for t in tasks
                }
                assert "left open by process" in second.log_tail()
                assert "adopted it" in second.log_tail()
            finally:
                code = second.terminate()
        # uvicorn re-raises the SIGTERM it handled, after a complete shutdown.
        assert code in (0, -signal.SIGTERM), second.log_tail()
        assert "Application shutdown complete" in second.log_tail()
        # A clean stop leaves nothing running: not the adopted Postgres (all its processes)
        # and not the adopted Redis.
        assert _alive(pg_pids) == []
        assert _alive([redis_pid]) == []
        assert _postmasters_for(home / "postgres") == []
