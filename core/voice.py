"""What counts as voiced audio: where a question ends and a reply begins, as a caller hears it.

A 20 ms frame is voiced when a sample in it reaches `VOICED_PEAK` of full scale (-34 dBFS):
speech on a phone line peaks 15-25 dB above that, a quiet line stays well below. The server
(the socket's clock, processors/socket_clock.py), the test client and the latency benchmark
all judge frames by this one rule, so their times can be compared.
"""

from __future__ import annotations

import audioop

VOICED_PEAK = 0.02  # of full scale
_PEAK_PCM16 = int(VOICED_PEAK * 32768)


def voiced_pcm16(pcm: bytes) -> bool:
    """Whether 16-bit little-endian PCM holds a sample at or above `VOICED_PEAK`."""
    whole = len(pcm) - len(pcm) % 2
    return whole > 0 and audioop.max(pcm[:whole], 2) >= _PEAK_PCM16


def voiced_ulaw(ulaw: bytes) -> bool:
    """The same rule for G.711 mu-law (what Twilio carries)."""
    return bool(ulaw) and voiced_pcm16(audioop.ulaw2lin(ulaw, 2))
