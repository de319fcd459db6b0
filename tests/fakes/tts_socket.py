"""What the loopback TTS websocket fakes (Cartesia, ElevenLabs) share.

`Scripted`: the script of behaviours a fake consumes per request (`default` when it is empty)
and the `changed` event tests wait on. `SocketLoop`: one accepted socket's plumbing, JSON sends
under a lock (False once the socket is gone), the read loop, and on exit every context stopped
and the socket closed. Each fake keeps its own protocol: what a message means, what it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

B = TypeVar("B")


@dataclass(frozen=True)
class Speak:
    """Speak the text: `delay_secs` before the first chunk, `chunk_delay_secs` between."""

    delay_secs: float = 0.0
    chunk_delay_secs: float = 0.0


class Scripted(Generic[B]):
    """A fake's script (consumed per request; `default` when empty) and its `changed` event.

    The fake (a dataclass) declares the three attributes; `changed` is set whenever it records
    something, so tests wait on it, never poll.
    """

    script: deque[B]
    default: B
    changed: asyncio.Event

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    def push(self, *behaviors: B) -> None:
        self.script.extend(behaviors)

    def next_behavior(self) -> B:
        return self.script.popleft() if self.script else self.default


class SocketLoop(ABC):
    """One accepted socket: `on_message` per text message until either side closes."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.send_lock = asyncio.Lock()
        self.closed = False

    @abstractmethod
    async def on_message(self, raw: str) -> None:
        """Handle one message from the client."""

    @abstractmethod
    def stop_contexts(self) -> list[asyncio.Task[None]]:
        """Stop every context; their tasks, to be awaited."""

    @abstractmethod
    def on_client_close(self) -> None:
        """The client closed the socket."""

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one JSON message; False (and `closed`) once the socket is gone."""
        if self.closed:
            return False
        async with self.send_lock:
            try:
                await self.ws.send_text(json.dumps(message))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
                return False
        return True

    async def run(self) -> None:
        try:
            while not self.closed:
                try:
                    raw = await self.ws.receive_text()
                except WebSocketDisconnect:
                    self.on_client_close()
                    break
                except RuntimeError:  # closed by us meanwhile
                    break
                await self.on_message(raw)
        finally:
            self.closed = True
            tasks = self.stop_contexts()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close()
