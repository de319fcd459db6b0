"""Speakers into people: who a voice is, from introductions, answers to requests by name,
voiceprints remembered across a series' meetings, and callers' numbers.

The meetings are spoken by three voices (the packaged Piper voice and two eSpeak NG voices,
server/voices.py) and streamed as Twilio calls through the whole call path: every
commitment's owner must be the person who made it, in the first meeting (people introduce
themselves, a request is put to Tom by name) and in the second (nobody says who they are:
their voices are remembered).
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from rapidfuzz import fuzz

from domain.people import (
    ANSWER,
    CALLER,
    INTRODUCTION,
    VOICEPRINT,
    CallPeople,
    KnownVoice,
    introduced_name,
)
from memory.models import CallCreated, CommitmentRecord, SpeakerBound
from server.runtime import Runtime
from server.voices import Turn, voice_meeting
from tests.calls import simulate_meeting
from tests.conftest import TEST_API_TOKEN

FIRST = dt.date(2026, 11, 17)
SECOND = dt.date(2026, 11, 24)
MAYA, TOM, PRIYA = "piper", "en-us+m3", "en-us+f3"
MEETING_1 = [
    (MAYA, "Good morning everyone, this is Maya, welcome to the weekly product sync."),
    (MAYA, "Tom, can you get the demo environment ready by Friday?"),
    (TOM, "Yes, I will have the demo environment ready by Friday."),
    (TOM, "I will also send the security review to legal by Thursday."),
    (PRIYA, "Hi, this is Priya. I will update the pricing page next week."),
    (MAYA, "Thanks everyone, see you next week."),
]
MEETING_2 = [
    (TOM, "Good morning, quick update: the demo environment is ready."),
    (TOM, "The security review is not done yet, I will send it to legal by Wednesday."),
    (PRIYA, "I will draft the launch email for the customers by Friday."),
    (MAYA, "Thanks, let's wrap up for today."),
]
AUTH = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


def named(owner: str | None, name: str) -> bool:
    """The owner is that person, as speech recognition spelled the name."""
    return owner is not None and fuzz.ratio(owner.lower(), name.lower()) >= 75


VOICES = {MAYA: "Maya", TOM: "Tom", PRIYA: "Priya"}


async def owners_right(http: httpx.AsyncClient, result: dict[str, Any], truth: list[Turn]) -> int:
    """Every commitment's owner is the person whose voice said it (the segment it came from,
    placed on the script's turns by time; eSpeak's voices are hard to hear, so the words may
    come out garbled: the owner may not). Returns how many there were."""
    found = (await http.get(f"/calls/{result['call_id']}/commitments")).json()["commitments"]
    segments = result["transcript"]
    for c in found:
        seg = segments[c["seq"]]
        turn = max(
            truth,
            key=lambda t: min(seg["end_ms"], t.end_ms) - max(seg["start_ms"], t.start_ms),
        )
        assert named(c["owner"], VOICES[turn.voice]), (c, seg)
    return len(found)


# -- evidence ----------------------------------------------------------------------------------


def test_introductions_name_the_speaker_and_nothing_else_does() -> None:
    said = {
        "Good morning everyone, this is Maya, welcome to the weekly sync.": "Maya",
        "Hi, I'm Laura, I'm the project manager.": "Laura",
        "My name is Dave and I run the backend.": "Dave",
        "Tom here, sorry I'm late.": "Tom",
        "This is our weekly sync.": None,
        "It's Monday, so let's start.": None,
        "This is Tom's task, not mine.": None,
        "I'm sure we can do it.": None,
        "This is Convene, your meeting assistant.": None,
    }
    for text, name in said.items():
        assert introduced_name(text, not_names=["Convene"]) == name, text


def test_an_answer_to_a_request_by_name_is_that_person() -> None:
    people = CallPeople(not_names=("Convene",))
    people.hear("S1", "Tom, can you get the demo ready by Friday?")
    assert people.hear("S2", "Yes, I will have it ready.")
    assert people.person_of("S2") == "Tom"
    assert people.bindings["S2"].source == ANSWER
    assert people.person_of("S1") is None
    ended = CallPeople()
    ended.hear("S1", "Thanks, Tom. Can you also get the demo ready by Friday?")
    ended.hear("S2", "Yes, I will.")
    assert ended.person_of("S2") == "Tom"
    # The asker answering their own request names nobody; a refusal names nobody.
    alone = CallPeople()
    alone.hear("S1", "Priya, could you update the pricing page?")
    assert not alone.hear("S1", "Yes, I will.")
    refused = CallPeople()
    refused.hear("S1", "Priya, could you update the pricing page?")
    assert not refused.hear("S2", "No, sorry, I can't this week.")
    assert refused.person_of("S2") is None


def test_a_name_heard_like_a_known_one_is_that_person() -> None:
    people = CallPeople(known_names=("Priya", "Tom"))
    people.hear("S1", "Hi, this is Pria.")
    people.hear("S2", "And this is Tim.")
    assert people.person_of("S1") == "Priya"  # as she is known
    assert people.person_of("S2") == "Tim"  # another name, not Tom


def test_one_voice_with_two_names_is_nobody() -> None:
    people = CallPeople()
    people.hear("S1", "Hi, this is Maya.")
    assert people.person_of("S1") == "Maya"
    people.hear("S1", "And this is Priya speaking.")
    assert people.person_of("S1") is None
    people.hear("S1", "This is Maya again.")
    assert people.person_of("S1") is None  # never a confident wrong name


def test_weaker_evidence_never_overrides_an_introduction() -> None:
    people = CallPeople()
    people.hear("S2", "This is Priya.")
    people.hear("S1", "Tom, can you send the notes?")
    people.hear("S2", "Sure, I will.")  # Priya answers for Tom: she is still Priya
    assert people.person_of("S2") == "Priya"
    assert people.bindings["S2"].source == INTRODUCTION
    caller = CallPeople()
    assert caller.bind("S1", "Tom", CALLER)
    assert caller.bind("S1", "Maya", INTRODUCTION)  # the number's owner was not first
    assert caller.person_of("S1") == "Maya"


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_voiceprints_name_a_voice_only_when_clearly_theirs() -> None:
    rng = np.random.default_rng(3)
    tom, priya = unit(rng.normal(size=256)), unit(rng.normal(size=256))
    known = [KnownVoice("Tom", tom), KnownVoice("Priya", priya)]
    people = CallPeople(voiceprint_threshold=0.75, voiceprint_margin=0.05)
    assert people.recognise("S1", unit(tom + 0.02 * rng.normal(size=256)), known)
    assert people.person_of("S1") == "Tom"
    assert people.bindings["S1"].source == VOICEPRINT
    # Between two prints: nobody.
    assert not people.recognise("S2", unit(tom + priya), known)
    assert people.person_of("S2") is None
    # Too far from anyone: nobody.
    assert not people.recognise("S3", unit(rng.normal(size=256)), known)
    # An introduction outranks a voiceprint.
    people.hear("S1", "This is Dave.")
    assert not people.recognise("S1", tom, known)
    assert people.person_of("S1") == "Dave"


# -- meetings through the call path -----------------------------------------------------------


@pytest.fixture(scope="module")
def meetings(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[Path, list[Turn]]]:
    folder = tmp_path_factory.mktemp("people")
    first, second = folder / "meeting-1.wav", folder / "meeting-2.wav"
    return [(first, voice_meeting(first, MEETING_1)), (second, voice_meeting(second, MEETING_2))]


async def test_owners_from_voices_across_a_series(
    base_url: str, meetings: list[tuple[Path, list[Turn]]]
) -> None:
    series = f"people-{uuid.uuid4().hex[:8]}"
    (first_wav, first_truth), (second_wav, second_truth) = meetings
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=30) as http:
        first = await simulate_meeting(
            first_wav, base_url=base_url, meeting_date=FIRST, series=series
        )
        # Introduced, answering a request put to him by name, first-person promises.
        assert await owners_right(http, first, first_truth) >= 3
        heard = {VOICES[t.voice] for t in first_truth}
        assert all(any(named(s["person"], name) for s in first["transcript"]) for name in heard), (
            first["transcript"]
        )

        # Next week nobody says who they are: their voices are remembered.
        second = await simulate_meeting(
            second_wav, base_url=base_url, meeting_date=SECOND, series=series
        )
        assert await owners_right(http, second, second_truth) >= 2
        assert all(s["person"] is not None for s in second["transcript"]), second["transcript"]

        listed = (await http.get("/people", params={"series": series})).json()["people"]
        assert len(listed) == 3 and all(p["voiceprint"] for p in listed), listed
        tom = next(p for p in listed if named(p["name"], "Tom"))
        assert tom["series"] == series
        detail = (await http.get(f"/people/{tom['id']}")).json()
        assert detail["tasks"] and all(named(t["owner"], "Tom") for t in detail["tasks"])
        # Forgotten: the record and the voiceprint go, the meeting's tasks stay.
        tasks_before = (await http.get(f"/series/{series}/tasks")).json()["tasks"]
        assert (await http.delete(f"/people/{tom['id']}")).json()["deleted"] is True
        assert (await http.get(f"/people/{tom['id']}")).status_code == 404
        tasks_after = (await http.get(f"/series/{series}/tasks")).json()["tasks"]
        assert [t["id"] for t in tasks_after] == [t["id"] for t in tasks_before]


# -- callers -------------------------------------------------------------------------------


async def _tasks_in(runtime: Runtime, series: str, items: list[tuple[str, str]]) -> None:
    """Open tasks in the series, as a meeting would have left them (owner, action)."""
    call_id = await runtime.store.create_call(
        CallCreated(
            call_id=str(uuid.uuid4()),
            direction="outbound",
            status="completed",
            meeting_date=FIRST,
            time_zone="UTC",
            series_key=series,
        )
    )
    await runtime.store.apply(
        [
            CommitmentRecord(
                call_id=call_id,
                seq=i,
                ordinal=0,
                kind="commitment",
                owner=owner,
                action=action,
                due=None,
                quote=f"{owner}: I will {action}.",
                confidence=0.9,
                series=series,
            )
            for i, (owner, action) in enumerate(items)
        ]
    )


@pytest.fixture(scope="module")
def quiet_call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile as sf

    path = tmp_path_factory.mktemp("callers") / "quiet.wav"
    sf.write(path, np.zeros(8000 * 2, dtype=np.int16), 8000)
    return path


async def test_each_caller_is_greeted_with_their_own_items(
    runtime: Runtime, base_url: str, quiet_call: Path
) -> None:
    series = f"callers-{uuid.uuid4().hex[:8]}"
    await _tasks_in(
        runtime,
        series,
        [("Priya", "renew the vendor contract"), ("Tom", "fix the login page"),
         ("Priya", "book the offsite venue")],
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=30) as http:
        for name, phone in (("Priya", "+15550107001"), ("Tom", "+15550107002")):
            added = await http.post(
                "/people", json={"series": series, "name": name, "phone": phone}
            )
            assert added.status_code == 201, added.text
        taken = await http.post(
            "/people", json={"series": series, "name": "Maya", "phone": "+15550107001"}
        )
        assert taken.status_code == 409 and "phone" in taken.json()["detail"]
        bad = await http.post("/people", json={"series": series, "name": "Ann", "phone": "555"})
        assert bad.status_code == 422

    async def greeting(number: str) -> list[dict[str, Any]]:
        result = await simulate_meeting(
            quiet_call,
            base_url=base_url,
            meeting_date=SECOND,
            series=series,
            from_number=number,
            expect_answer=number != "+15550107999",
            speed=1,
        )
        return [r for r in result["replies"] if r["intent"] == "greeting"]

    priya = await greeting("+15550107001")
    assert len(priya) == 1 and priya[0]["audio_ms"] > 0
    said = priya[0]["answer"]
    assert "Priya" in said and "renew the vendor contract" in said and "book the offsite" in said
    assert "login page" not in said  # never another caller's items
    tom = await greeting("+15550107002")
    assert len(tom) == 1
    assert "fix the login page" in tom[0]["answer"] and "vendor" not in tom[0]["answer"]
    assert await greeting("+15550107999") == []  # a number nobody registered: no greeting


# -- named later ------------------------------------------------------------------------------


async def test_a_promise_made_before_its_speaker_is_named_becomes_theirs(
    runtime: Runtime, base_url: str, tmp_path: Path
) -> None:
    """Tom promises first and is named only later (by answering a request put to him): the
    earlier promise, and the task it made, become his."""
    series = f"later-{uuid.uuid4().hex[:8]}"
    wav = tmp_path / "named-later.wav"
    truth = voice_meeting(
        wav,
        [
            ("piper@0.78", "Morning. I will send the security review to legal by Thursday."),
            ("piper", "Thanks. Tom, can you also get the demo environment ready by Friday?"),
            ("piper@0.78", "Yes, I will have it ready by Friday."),
        ],
    )
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=30) as http:
        result = await simulate_meeting(wav, base_url=base_url, meeting_date=FIRST, series=series)
        voices = {"piper@0.78": "Tom", "piper": "nobody"}
        found = (await http.get(f"/calls/{result['call_id']}/commitments")).json()["commitments"]
        assert len(found) >= 2, found
        for c in found:
            seg = result["transcript"][c["seq"]]
            turn = max(
                truth,
                key=lambda t: min(seg["end_ms"], t.end_ms) - max(seg["start_ms"], t.start_ms),
            )
            assert named(c["owner"], voices[turn.voice]), (c, seg)
        tasks = (await http.get(f"/series/{series}/tasks")).json()["tasks"]
        assert len(tasks) >= 2 and all(named(t["owner"], "Tom") for t in tasks), tasks


async def test_a_label_named_later_owns_what_it_promised(runtime: Runtime) -> None:
    series = f"later-{uuid.uuid4().hex[:8]}"
    call_id = await runtime.store.create_call(
        CallCreated(
            call_id=str(uuid.uuid4()),
            direction="inbound",
            status="in-progress",
            meeting_date=FIRST,
            time_zone="UTC",
            series_key=series,
        )
    )
    promise = CommitmentRecord(
        call_id=call_id, seq=0, ordinal=0, kind="commitment", owner=None,
        action="renew the vendor contract", due=None, quote="I will renew the vendor contract.",
        confidence=0.9, series=series, speaker="S2",
    )  # fmt: skip
    other = CommitmentRecord(
        call_id=call_id, seq=1, ordinal=0, kind="commitment", owner=None,
        action="fix the login page", due=None, quote="Someone will fix the login page.",
        confidence=0.5, series=series,
    )  # fmt: skip
    await runtime.store.apply([promise, other])
    bound = SpeakerBound(call_id=call_id, label="S2", person="Ines", confidence=0.9,
                         source="introduction")  # fmt: skip
    await runtime.store.apply([bound])
    await runtime.store.apply([bound])  # a replay changes nothing more
    owners = {c["action"]: c["owner"] for c in await runtime.store.get_commitments(call_id)}
    assert owners == {"renew the vendor contract": "Ines", "fix the login page": None}
    tasks = {t.action: t.owner for t in await runtime.store.tasks(series)}
    assert tasks == {"renew the vendor contract": "Ines", "fix the login page": None}
