"""The diarization error rate of a speaker labelling, against the truth `voice_meeting`
(server/voices.py) returns with the meeting it speaks."""

from __future__ import annotations

import itertools

from server.voices import Turn


def der(
    truth: list[Turn],
    hypothesis: list[tuple[int, int, str | None]],
    *,
    collar_ms: int = 250,
    step_ms: int = 10,
) -> float:
    """Diarization error rate: (missed speech + false alarm + speaker confusion) / speech,
    on a `step_ms` grid, the `collar_ms` either side of each true turn's edges not scored
    (pyannote.metrics' convention), labels mapped to voices one-to-one so as to agree most.
    A segment without a label counts as missed speech."""
    end = max([t.end_ms for t in truth] + [h[1] for h in hypothesis]) + collar_ms
    n = end // step_ms + 1
    ref: list[str | None] = [None] * n
    scored = [True] * n
    for t in truth:
        for i in range(t.start_ms // step_ms, t.end_ms // step_ms):
            ref[i] = t.voice
        for edge in (t.start_ms, t.end_ms):
            for i in range(max(0, (edge - collar_ms) // step_ms), (edge + collar_ms) // step_ms):
                scored[i] = False
    hyp: list[str | None] = [None] * n
    for start, stop, label in hypothesis:
        for i in range(start // step_ms, stop // step_ms):
            hyp[i] = label
    frames = [(r, h) for r, h, s in zip(ref, hyp, scored, strict=True) if s]
    speech = sum(1 for r, _ in frames if r is not None)
    missed = sum(1 for r, h in frames if r is not None and h is None)
    false_alarm = sum(1 for r, h in frames if r is None and h is not None)
    voices = sorted({r for r, _ in frames if r is not None})
    labels = sorted({h for _, h in frames if h is not None})
    best = 0
    # One-to-one label -> voice mapping with the most agreeing frames (labels are few).
    for chosen in itertools.permutations(labels, min(len(labels), len(voices))):
        mapping = dict(zip(chosen, voices, strict=False))
        agree = sum(1 for r, h in frames if r is not None and h is not None and mapping.get(h) == r)
        best = max(best, agree)
    both = sum(1 for r, h in frames if r is not None and h is not None)
    confusion = both - best
    return (missed + false_alarm + confusion) / max(speech, 1)
