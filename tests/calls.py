"""How tests run meetings and read what was heard: always with an explicit meeting date, and
heard words judged the way the product judges them (the tracker's matcher, a WER bound), never
as a literal substring of ASR output."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from core.english import ordinal
from memory.embeddings import shared_embedder
from memory.models import CommitmentRecord
from memory.tracking import MATCH_THRESHOLD, TaskRow, match_score
from server.runtime import Runtime
from server.simulate import request_twiml, simulate_call
from server.simulator import TwilioStreamClient, new_sid, stream_url_from_twiml
from tests.conftest import TEST_API_TOKEN, TEST_AUTH_TOKEN
from tests.speech import wer


async def simulate_meeting(
    audio: Path,
    *,
    base_url: str,
    meeting_date: dt.date,
    series: str | None = None,
    speed: float = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """`convene simulate` for a test: the meeting date is required, never the server's today."""
    return await simulate_call(
        audio,
        base_url=base_url,
        series=series,
        meeting_date=meeting_date,
        speed=speed,
        auth_token=kwargs.pop("auth_token", TEST_AUTH_TOKEN),
        api_token=kwargs.pop("api_token", TEST_API_TOKEN),
        **kwargs,
    )


async def answer_call(
    base_url: str,
    *,
    series: str | None = None,
    meeting_date: dt.date | None = None,
    call_sid: str | None = None,
) -> tuple[str, dict[str, str], str]:
    """A call answered as Twilio would have it: `/twilio/voice` (signed) answers TwiML whose
    `<Stream>` names the URL and carries the call's stream token. Returns that URL, the
    stream's parameters and the CallSid (`call_sid`, else a new one)."""
    call_sid = call_sid or new_sid("CA")
    async with httpx.AsyncClient(timeout=30) as http:
        twiml = await request_twiml(
            http,
            base_url,
            series=series,
            meeting_date=meeting_date,
            auth_token=TEST_AUTH_TOKEN,
            call_sid=call_sid,
        )
    url, params = stream_url_from_twiml(twiml)
    return url, params, call_sid


@asynccontextmanager
async def answered_stream(
    base_url: str,
    *,
    series: str | None = None,
    meeting_date: dt.date | None = None,
    **kwargs: Any,
) -> AsyncIterator[TwilioStreamClient]:
    """A Media Streams client for a call answered by `answer_call`: it connects to the
    `<Stream>` URL with those parameters and the same CallSid."""
    url, params, call_sid = await answer_call(
        base_url, series=series, meeting_date=meeting_date, call_sid=kwargs.pop("call_sid", None)
    )
    async with TwilioStreamClient(
        url, custom_parameters=params, call_sid=call_sid, **kwargs
    ) as client:
        yield client


def weekday_on_or_after(day: dt.date, weekday: int) -> dt.date:
    """The first `weekday` (Monday 0) on or after `day`, as "by Friday" resolves."""
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def say_weekday(day: dt.date) -> str:
    """ "Friday the 27th": how replies name a day within the next weeks."""
    return f"{day:%A} the {ordinal(day.day)}"


def find_task(
    tasks: list[dict[str, Any]], description: str, *, owner: str | None = None
) -> dict[str, Any]:
    """The task the tracker would match `description` to (same score, same threshold)."""
    embedder = shared_embedder()
    vectors = embedder.embed([description, *(t["action"] for t in tasks)])
    probe = CommitmentRecord(
        call_id="", seq=0, ordinal=0, kind="commitment", owner=owner,
        action=description, due=None, quote=description, confidence=1.0,
    )  # fmt: skip
    scored = [
        (
            match_score(
                probe,
                vectors[0],
                vectors[0],
                TaskRow(t["id"], t["owner"], t["action"], None, t["status"], vectors[i + 1]),
            ),
            t,
        )
        for i, t in enumerate(tasks)
    ]
    best = max(scored, key=lambda pair: pair[0], default=(0.0, {}))
    assert best[0] >= MATCH_THRESHOLD, f"no task matches {description!r}: {tasks}"
    return best[1]


def heard_close_to(expected: str, heard: str, *, max_wer: float = 0.35) -> bool:
    return wer(expected, heard) <= max_wer


def contains_close_to(text: str, phrase: str, *, max_wer: float = 0.34) -> bool:
    """Some run of words in `text` is within `max_wer` of `phrase`."""
    words = text.split()
    n = len(phrase.split())
    windows = [" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))]
    return any(heard_close_to(phrase, w, max_wer=max_wer) for w in windows)


@contextmanager
def overridden(
    runtime: Runtime,
    *,
    pipeline: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[Runtime]:
    """Override pipeline knobs (section -> {key: value}) and settings for one block; the
    session's runtime is restored however the block ends."""
    saved_settings, saved_prompts = runtime.settings, runtime.prompts
    try:
        if pipeline:
            knobs = saved_prompts.pipeline
            update = {
                section: getattr(knobs, section).model_copy(update=dict(values))
                if isinstance(values, Mapping) and section != "series"
                else values
                for section, values in pipeline.items()
            }
            runtime.prompts = saved_prompts.model_copy(
                update={"pipeline": knobs.model_copy(update=update)}
            )
        if settings:
            runtime.settings = saved_settings.updated(**dict(settings))
        yield runtime
    finally:
        runtime.settings, runtime.prompts = saved_settings, saved_prompts
