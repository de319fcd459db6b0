"""As a user runs it: `convene serve` in its own process, `convene simulate --url` against it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import MEETING_TURNS, TEST_API_TOKEN, rules_prompts
from tests.speech import wer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_and_simulate_url_in_separate_processes(tmp_path: Path, meeting_wav: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CONVENE_HOME": str(tmp_path / "home"),
        "TWILIO_AUTH_TOKEN": "serve-test-token",
        # The server takes this token; `simulate --url` reads the call back with it.
        "CONVENE_BOOTSTRAP_TOKEN": TEST_API_TOKEN,
        "CONVENE_API_TOKEN": TEST_API_TOKEN,
        "CONVENE_PROMPTS_DIR": str(rules_prompts()),
    }
    env.pop("PUBLIC_HOST", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "convene serve did not become ready"
            time.sleep(0.3)
        # Unpaced: every frame and `stop` arrive in a burst, as from a fast sender.
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "simulate",
                str(meeting_wav),
                "--url",
                f"http://127.0.0.1:{port}",
                "--series",
                "cli-series",
                "--speed",
                "0",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout)
        assert result["series"] == "cli-series"
        text = " ".join(s["text"] for s in result["transcript"])
        assert wer(" ".join(MEETING_TURNS), text) <= 0.15
        # Unsigned webhooks are refused by the real server too.
        assert (
            httpx.post(f"http://127.0.0.1:{port}/twilio/voice", data={"CallSid": "CA1"}).status_code
            == 403
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
