"""Who spoke: voices into per-call speaker labels (S1, S2, ...), on phone audio.

Three voices (the packaged Piper voice, two eSpeak NG voices) speak a meeting; it reaches the
encoder the way a call does (8 kHz mu-law, back to 16 kHz), directly and through the whole
call path. Segments of one voice must share a label, different voices must not, and the
diarization error rate against the synthesis script is reported.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import pickle
import re
import struct
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from domain.speakers import CallSpeakers
from domain.voice_encoder import (
    EMBEDDING_SIZE,
    PARTIAL_FRAMES,
    VoiceEncoder,
    load_state,
    weights_path,
)
from memory.models import CallCreated, SegmentRecord, SpeakersMerged
from memory.spool import Spool
from server.audio import float_to_pcm16, pcm16_to_float, resample, to_twilio_ulaw, ulaw_to_pcm16
from server.runtime import Runtime
from server.voices import Turn, voice_meeting
from tests.calls import simulate_meeting
from tests.diarization import der

MEETING_DATE = dt.date(2026, 11, 24)
MEETING = [
    ("piper", "Good morning everyone, this is the weekly sync for the launch."),
    ("en-us+m3", "Thanks. I will send the security review to legal by Thursday."),
    ("en-us+f3", "Great. Can you also get the demo ready for the customer next week?"),
    ("en-us+m3", "Yes, I can do that, I will finish the slides tomorrow."),
    ("piper", "The budget numbers look fine to me, let's move on to hiring."),
    ("en-us+f3", "I will post the job description on Monday morning."),
    ("en-us+m3", "One more thing, the vendor contract expires at the end of the month."),
    ("en-us+f3", "Then I will call the vendor this afternoon and ask for a renewal quote."),
    ("piper", "Perfect, thanks everyone, see you all next week."),
]


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A measurement in the test output (shown even when output is captured) and in the
    test's report properties (JUnit XML)."""
    request.node.user_properties.append(("measured", line))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stdout.write(f"\n{line}\n")


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder()


@pytest.fixture(scope="module")
def meeting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Turn]]:
    path = tmp_path_factory.mktemp("voices") / "three-voices.wav"
    return path, voice_meeting(path, MEETING)


def phone_pcm(path: Path) -> bytes:
    """The WAV as a call carries it: 8 kHz mu-law, decoded and raised to 16 kHz."""
    pcm8 = pcm16_to_float(ulaw_to_pcm16(to_twilio_ulaw(path)))
    return float_to_pcm16(resample(pcm8, 8000, 16000))


def same_partition(labels: list[str | None], voices: list[str]) -> bool:
    """Each voice has one label of its own."""
    by_voice = {v: {lab for lab, w in zip(labels, voices, strict=True) if w == v} for v in voices}
    owned = [next(iter(s)) for s in by_voice.values() if len(s) == 1]
    return None not in labels and len(owned) == len(by_voice) == len(set(owned))


# -- the encoder -----------------------------------------------------------------------------


def reference_lstm(state: dict[str, np.ndarray], mels: np.ndarray) -> np.ndarray:
    """PyTorch's nn.LSTM (gates i, f, g, o) + Linear + ReLU + L2 norm, step by step."""
    x = mels.astype(np.float64)
    h = np.zeros((x.shape[0], EMBEDDING_SIZE))
    for n in range(3):
        w_ih, w_hh = state[f"lstm.weight_ih_l{n}"], state[f"lstm.weight_hh_l{n}"]
        bias = state[f"lstm.bias_ih_l{n}"] + state[f"lstm.bias_hh_l{n}"]
        h = np.zeros((x.shape[0], EMBEDDING_SIZE))
        c = np.zeros_like(h)
        out = []
        for t in range(x.shape[1]):
            i, f, g, o = np.split(x[:, t] @ w_ih.T + h @ w_hh.T + bias, 4, axis=1)
            sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            out.append(h)
        x = np.stack(out, axis=1)
    raw = np.maximum(h @ state["linear.weight"].T + state["linear.bias"], 0)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_the_onnx_graph_is_the_trained_lstm(encoder: VoiceEncoder) -> None:
    state = load_state(weights_path())
    assert state["lstm.weight_ih_l0"].shape == (4 * EMBEDDING_SIZE, 40)
    assert state["linear.weight"].shape == (EMBEDDING_SIZE, EMBEDDING_SIZE)
    rng = np.random.default_rng(7)
    mels = (rng.random((2, PARTIAL_FRAMES, 40)) ** 4 * 3).astype(np.float32)
    got = encoder.embed_partials(mels)
    assert np.allclose(got, reference_lstm(state, mels), atol=1e-4)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_weights_reader_refuses_other_code(tmp_path: Path) -> None:
    """A checkpoint that names anything but tensors (here os.system) is refused, not run."""
    evil = tmp_path / "evil.pt"
    out = io.BytesIO()
    for literal in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001}):
        pickle.dump(literal, out, protocol=2)
    out.write(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.")
    evil.write_bytes(out.getvalue() + pickle.dumps([], protocol=2) + struct.pack("<q", 0))
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_state(evil)


# -- clustering ------------------------------------------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_a_short_segment_never_starts_a_speaker_and_twins_merge() -> None:
    rng = np.random.default_rng(1)
    a, other = unit(rng.normal(size=256)), unit(rng.normal(size=256))
    other = unit(other - np.dot(other, a) * a)
    b = unit(0.7 * a + np.sqrt(1 - 0.7**2) * other)  # 0.7 similar: below the threshold
    speakers = CallSpeakers(threshold=0.75, merge_threshold=0.85, min_new_secs=1.0)
    assert speakers.assign(a, 3.0).label == "S1"
    assert speakers.assign(b, 0.5).label == "S1"  # too short to be someone new
    assert speakers.assign(b, 3.0).label == "S2"
    # Evidence that S2 is S1 after all: both means drift together until they merge.
    between = unit(a + b)
    for _ in range(6):
        speakers.assign(between, 3.0)
    assert speakers.label_of("S2") == "S1"
    assert speakers.assign(b, 3.0).label == "S1"


def test_three_voices_on_phone_audio(
    encoder: VoiceEncoder, meeting: tuple[Path, list[Turn]], request: pytest.FixtureRequest
) -> None:
    path, truth = meeting
    pcm = phone_pcm(path)
    speakers = CallSpeakers()
    labels: list[str | None] = []
    for turn in truth:
        voice = encoder.embed(pcm[turn.start_ms * 32 : turn.end_ms * 32], 16000)
        labels.append(speakers.assign(voice, (turn.end_ms - turn.start_ms) / 1000).label)
    rate = der(truth, [(t.start_ms, t.end_ms, lab) for t, lab in zip(truth, labels, strict=True)])
    report(request, f"speakers: DER {rate:.1%} on the true turns (encoder + clustering)")
    assert same_partition(labels, [t.voice for t in truth]), labels
    assert rate == 0.0


# -- relabelling what is stored ----------------------------------------------------------


async def test_merged_speakers_relabel_stored_segments(runtime: Runtime, tmp_path: Path) -> None:
    call_id = await runtime.store.create_call(
        CallCreated(
            call_id=str(uuid.uuid4()),
            direction="inbound",
            status="in-progress",
            meeting_date=MEETING_DATE,
            time_zone="UTC",
        )
    )
    said = [("S1", "first words"), ("S2", "second words"), ("S3", "third words")]
    await runtime.store.apply(
        [
            SegmentRecord(call_id, i, i * 1000, i * 1000 + 900, t, speaker=s)
            for i, (s, t) in enumerate(said)
        ]
    )
    # Through the spool, as a merge written while Postgres was away would come back.
    spool = Spool(tmp_path / "spool.sqlite3")
    try:
        await spool.append([SpeakersMerged(call_id=call_id, gone="S2", kept="S1")])
        ops = [op for _, op in await spool.peek(10)]
    finally:
        spool.close()
    await runtime.store.apply(ops)
    await runtime.store.apply(ops)  # a replay changes nothing more
    stored = await runtime.store.get_segments(call_id)
    assert [seg["speaker"] for seg in stored] == ["S1", "S1", "S3"]


# -- a call ----------------------------------------------------------------------------------


async def test_a_call_labels_its_speakers(
    base_url: str, meeting: tuple[Path, list[Turn]], request: pytest.FixtureRequest
) -> None:
    path, truth = meeting
    result = await simulate_meeting(path, base_url=base_url, meeting_date=MEETING_DATE)
    segments = result["transcript"]
    assert segments and all(re.fullmatch(r"S\d+", s["speaker"] or "") for s in segments)

    def voice_of(seg: dict[str, object]) -> str:
        start, end = int(seg["start_ms"]), int(seg["end_ms"])  # type: ignore[call-overload]
        return max(truth, key=lambda t: min(end, t.end_ms) - max(start, t.start_ms)).voice

    voices = [voice_of(s) for s in segments]
    assert len(set(voices)) == 3, voices  # every voice was heard
    rate = der(truth, [(s["start_ms"], s["end_ms"], s["speaker"]) for s in segments])
    report(
        request,
        f"speakers: DER {rate:.1%} through the call path (8 kHz mu-law, VAD segments,"
        f" 250 ms collar), {len(segments)} segments",
    )
    assert same_partition([s["speaker"] for s in segments], voices)
    assert rate <= 0.2
    # A voice label is not a name: "I will send ..." has no owner "S2".
    assert result["commitments"]
    assert not any(re.fullmatch(r"S\d+", c["owner"] or "") for c in result["commitments"])


def test_meeting_wav_is_what_the_truth_says(meeting: tuple[Path, list[Turn]]) -> None:
    """The truth's turns are where the sound is: a wrong script would score anything."""
    path, truth = meeting
    audio, rate = sf.read(path, dtype="float32")
    for turn in truth:
        inside = audio[turn.start_ms * rate // 1000 : turn.end_ms * rate // 1000]
        assert float(np.sqrt(np.mean(inside**2))) > 0.05
    gap = audio[truth[0].end_ms * rate // 1000 + 100 : truth[1].start_ms * rate // 1000 - 100]
    assert float(np.abs(gap).max()) == 0.0
