"""Call completion: Twilio's `stop` -> the call stored as `completed`, over N real-time calls.

    uv run python benchmarks/call_completion.py [--calls 20] [--speed 1]

Each call is a short spoken sentence streamed over the real Twilio websocket, then `stop` right
after the last words (a hang-up). Times are the call's own: `ended_at` is when `stop` reached
the server, `completed_at` when all of the call was stored. Prints each delay, the maximum, and
how each call's end waited for the STT ("event": it consumed the last received frame).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from loguru import logger  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from core.settings import Settings  # noqa: E402
from server.app import create_app  # noqa: E402
from server.audio import to_twilio_ulaw  # noqa: E402
from server.local_server import serve_in_process  # noqa: E402
from server.runtime import Runtime  # noqa: E402
from server.simulate import request_twiml, wait_completed  # noqa: E402
from server.simulator import TwilioStreamClient, new_sid, stream_url_from_twiml  # noqa: E402
from tests.speech import write_meeting  # noqa: E402

TURNS = ["Please write the release notes today.", "We shipped the new billing page."]


class _Drains(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.by_call: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if "drained" in str(record.msg) and isinstance(record.args, tuple):
            self.by_call[str(record.args[0])] = str(record.args[2])


async def run(calls: int, speed: float) -> int:
    logger.remove()
    drains = _Drains()
    logging.getLogger("bot.call").addHandler(drains)
    logging.getLogger("bot.call").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        audio = [
            to_twilio_ulaw(write_meeting(home / f"{i}.wav", [t], pause_secs=0.2, lead_secs=0.5))
            for i, t in enumerate(TURNS)
        ]
        auth_token = secrets.token_hex(16)
        settings = Settings.of(
            convene_home=home, twilio_auth_token=SecretStr(auth_token), public_host=None
        )
        runtime = await Runtime.start(settings)
        delays: list[float] = []
        try:
            async with serve_in_process(create_app(runtime=runtime)) as base_url:
                for i in range(calls):
                    # Answered as Twilio would be: TwiML with the call's stream token.
                    call_sid = new_sid("CA")
                    async with httpx.AsyncClient(timeout=30) as http:
                        twiml = await request_twiml(
                            http,
                            base_url,
                            series="completion-bench",
                            meeting_date=None,
                            auth_token=auth_token,
                            call_sid=call_sid,
                        )
                    ws_url, params = stream_url_from_twiml(twiml)
                    async with TwilioStreamClient(
                        ws_url, custom_parameters=params, call_sid=call_sid
                    ) as client:
                        await client.send_connected()
                        await client.send_start()
                        await client.stream_audio(audio[i % 2], speed=speed)
                        await client.send_stop()
                        await client.wait_closed(timeout=60)
                    call_id = await runtime.store.find_call(call_sid=client.result.call_sid)
                    assert call_id is not None
                    async with httpx.AsyncClient(timeout=30) as http:
                        await wait_completed(http, base_url, call_id, 60)
                    call = await runtime.store.get_call(call_id)
                    assert call is not None and call["completed_at"] is not None
                    delay = (call["completed_at"] - call["ended_at"]).total_seconds()
                    delays.append(delay)
                    print(
                        f"call {i + 1:2d}: completed {delay * 1000:5.0f} ms after stop"
                        f" (drain: {drains.by_call.get(call_id, '?')})"
                    )
        finally:
            await runtime.close()
    late = sum(d > 1.0 for d in delays)
    print(
        f"max {max(delays) * 1000:.0f} ms; {late} of {calls} calls over 1 s;"
        f" drains: {sorted(set(drains.by_call.values()))}"
    )
    return 1 if late else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = unpaced")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.calls, args.speed)))


if __name__ == "__main__":
    main()
