"""Who spoke: online clustering of one call's voice vectors into speakers S1, S2, ...

Each segment's voice vector (domain/voice_encoder.py) goes to the speaker whose mean voice it
is most similar to (cosine), when that is at least `threshold`; otherwise it starts a new
speaker, unless the segment is too short to tell (`min_new_secs`: then it goes to the most
similar speaker anyway). Each speaker's mean voice is the duration-weighted mean of its
segments, so it sharpens as the call goes on; when two speakers' means grow `merge_threshold`
similar they were one voice heard twice, and the later label gives way to the earlier one
(`merged` tells which, so a caller can relabel what it has already said).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

# A long segment weighs no more than this many seconds in a speaker's mean: one monologue must
# not pin the mean to its own recording conditions.
MAX_WEIGHT_SECS = 10.0


@dataclass
class Speaker:
    label: str
    total: Vector  # duration-weighted sum of the voice vectors
    secs: float = 0.0
    segments: int = 0

    @property
    def mean(self) -> Vector:
        norm = float(np.linalg.norm(self.total))
        return self.total / norm if norm > 0 else self.total


@dataclass
class Assignment:
    label: str
    similarity: float  # to the speaker's mean before this segment joined (1.0: a new speaker)
    new: bool


@dataclass
class CallSpeakers:
    """One call's speakers. Not thread-safe: call `assign` from one task at a time."""

    threshold: float = 0.75
    merge_threshold: float = 0.85
    min_new_secs: float = 1.0
    speakers: list[Speaker] = field(default_factory=list)
    # label -> the label it was merged into (after merging, segments say the kept label).
    merged: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    def assign(self, voice: Vector, secs: float) -> Assignment:
        """The speaker of a segment with this voice vector (L2-normed) and duration."""
        weight = min(max(secs, 0.1), MAX_WEIGHT_SECS)
        best, similarity = self._nearest(voice)
        if best is None or (similarity < self.threshold and secs >= self.min_new_secs):
            self._count += 1
            speaker = Speaker(label=f"S{self._count}", total=voice * weight, secs=secs, segments=1)
            self.speakers.append(speaker)
            return Assignment(speaker.label, 1.0, new=True)
        if similarity >= self.threshold:
            best.total = best.total + voice * weight
            best.secs += secs
        best.segments += 1
        label = best.label
        self._merge()
        return Assignment(self.label_of(label), similarity, new=False)

    def voice_of(self, label: str) -> tuple[Vector, float] | None:
        """A speaker's mean voice (L2-normed) and how many seconds it was heard."""
        label = self.label_of(label)
        for speaker in self.speakers:
            if speaker.label == label:
                return speaker.mean, speaker.secs
        return None

    def label_of(self, label: str) -> str:
        """The label a (possibly merged-away) label now goes by."""
        while label in self.merged:
            label = self.merged[label]
        return label

    def _nearest(self, voice: Vector) -> tuple[Speaker | None, float]:
        best: Speaker | None = None
        similarity = -1.0
        for speaker in self.speakers:
            sim = float(np.dot(speaker.mean, voice))
            if sim > similarity:
                best, similarity = speaker, sim
        return best, similarity

    def _merge(self) -> None:
        """Fold together speakers whose mean voices became one (the earlier label stays)."""
        changed = True
        while changed:
            changed = False
            for i, keep in enumerate(self.speakers):
                for gone in self.speakers[i + 1 :]:
                    if float(np.dot(keep.mean, gone.mean)) >= self.merge_threshold:
                        keep.total = keep.total + gone.total
                        keep.secs += gone.secs
                        keep.segments += gone.segments
                        self.speakers.remove(gone)
                        self.merged[gone.label] = keep.label
                        changed = True
                        break
                if changed:
                    break
