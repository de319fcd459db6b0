"""Every Redis key and stream name Convene uses, built in one place.

Redis carries two append-only streams for consumers outside this process (a live transcript
view, an integration): each segment and commitment, published after its Postgres commit, best
effort. Convene itself never reads Redis back: Postgres is the memory (see README, "Memory").
"""

from __future__ import annotations

SEGMENTS_STREAM = "convene:segments"
COMMITMENTS_STREAM = "convene:commitments"
STREAM_MAXLEN = 10_000
