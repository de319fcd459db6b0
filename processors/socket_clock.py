"""The call's audio clock read at the socket, where the caller's latency begins and ends.

Twilio sends the caller's audio in 20 ms frames, in real time, so the audio received so far is
the call's clock (the clock of every `*_ms` a call stores). The pipeline counts the same audio
later, once its frames have crossed the VAD, the STT and the rest; a time read there lags the
socket by however long they queued. Read at the socket instead, by the serializer, which sees
both directions:

- `inbound`: each `media` frame as it is read, and whether it is voiced (core/voice.py): the
  runs of voiced audio, so a question's end is its last voiced frame (`voice_end`), not where
  the VAD decided it had stopped (its confidence falls ~100-150 ms after the speech energy).
- `audio_written`: each reply chunk as it is serialized for the socket write; `written_at`
  gives the clock at that write for the chunk the output transport passes on once sent.
- The far end's playout: Twilio plays what it is sent in real time, from when it arrives, and
  drops what is queued on `clear` (`cleared`). So `ahead_ms` is the reply audio sent and not
  yet played (what the output transport paces on, bot/twilio_stream.py) and `unplayed_ms`
  what a cut reply did not get to play (what the reply tracker takes off what was sent).

Plain data, no Pipecat: the serializer (bot/twilio_stream.py) feeds it, the reply tracker
(processors/reply_tracker.py) reads it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from core.voice import voiced_ulaw

ULAW_BYTES_PER_MS = 8  # 8 kHz mu-law
# A voiced run that ended longer than this before the VAD's end of a turn is not that turn's
# speech (the turn was spoken below the voiced level): the VAD's end stands.
MAX_VAD_HANGOVER_MS = 1000


class SocketClock:
    """One call's audio clock at the socket (ms of the caller's audio received)."""

    def __init__(
        self,
        *,
        keep_secs: float = 600.0,
        max_writes: int = 1024,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._received_ms = 0.0
        self._frame_ms = 0.0  # the last inbound frame's length
        self._read_at = 0.0  # monotonic time it was read
        self._keep_ms = keep_secs * 1000
        self._voiced: deque[list[float]] = deque()  # [start_ms, end_ms] runs of voiced frames
        self._writes: deque[tuple[bytes, float]] = deque(maxlen=max_writes)
        self._played_by = 0.0  # monotonic time the far end has played all the audio sent
        self._clear: tuple[float, float] | None = None  # the last `clear`: (clock, ms dropped)

    @property
    def received_ms(self) -> float:
        """Inbound audio read from the socket so far."""
        return self._received_ms

    def inbound(self, ulaw: bytes) -> None:
        """A `media` frame of the caller's audio was read from the socket."""
        start = self._received_ms
        self._frame_ms = len(ulaw) / ULAW_BYTES_PER_MS
        self._received_ms += self._frame_ms
        self._read_at = self._monotonic()
        if not voiced_ulaw(ulaw):
            return
        if self._voiced and self._voiced[-1][1] >= start:
            self._voiced[-1][1] = self._received_ms
        else:
            self._voiced.append([start, self._received_ms])
        while self._voiced and self._voiced[0][1] < self._received_ms - self._keep_ms:
            self._voiced.popleft()

    def now_ms(self) -> float:
        """The clock now: the audio read so far, plus the time since the last frame was read
        (at most that frame's length: Twilio's next frame is due by then)."""
        if not self._frame_ms:
            return self._received_ms
        since = max(0.0, (self._monotonic() - self._read_at) * 1000)
        return self._received_ms + min(since, self._frame_ms)

    def audio_written(self, audio: bytes, duration_ms: float = 0.0) -> None:
        """`audio` (an output chunk, as the transport holds it, `duration_ms` long) is being
        written now: the far end plays it once what it already holds has played."""
        self._writes.append((audio, self.now_ms()))
        now = self._monotonic()
        self._played_by = max(now, self._played_by) + duration_ms / 1000

    def cleared(self) -> None:
        """A `clear` is being written now: the far end drops the audio it has not played."""
        self._clear = (self.now_ms(), self.ahead_ms())
        self._played_by = self._monotonic()

    def ahead_ms(self) -> float:
        """Reply audio sent that the far end has not played yet (its buffer, in ms)."""
        return max(0.0, (self._played_by - self._monotonic()) * 1000)

    def unplayed_ms(self, since_ms: float) -> float:
        """Audio sent since `since_ms` (the clock at a write) that was not played: what a
        `clear` written since then dropped, else what the far end still holds now (a `clear`
        about to be written drops it)."""
        if self._clear is not None and self._clear[0] >= since_ms:
            return self._clear[1]
        return self.ahead_ms()

    def written_at(self, audio: bytes) -> int | None:
        """The clock when `audio` was written (None if it was not seen). Chunks go out in
        order, so the writes noted before it are forgotten with it."""
        for index, (written, _) in enumerate(self._writes):
            if written is audio or written == audio:
                for _ in range(index):
                    self._writes.popleft()
                return round(self._writes.popleft()[1])
        return None

    def voice_end(self, vad_end_ms: int) -> int:
        """Where a turn the VAD ended at `vad_end_ms` really ended: the end of its last voiced
        frame. A run still going at `vad_end_ms` (speech energy the VAD judged not speech: a
        noisy line) or no voiced run close before it leaves the VAD's end as it is."""
        for start, end in reversed(self._voiced):
            if start >= vad_end_ms:
                continue
            if end >= vad_end_ms or end < vad_end_ms - MAX_VAD_HANGOVER_MS:
                return vad_end_ms
            return round(end)
        return vad_end_ms
