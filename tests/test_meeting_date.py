"""One meaning of "the meeting's date": decided when the call is created, kept for its life.

The server runs in-process, so the app's clock (core.clock) is set per test: these tests pass
on any day, and `.ci/run` runs them again with the whole machine's clock on other days.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core import clock
from server.runtime import Runtime
from tests.calls import simulate_meeting
from tests.speech import write_meeting
from tests.test_webhooks import inbound_form, signed

pytestmark = pytest.mark.dates

UTC = dt.UTC


@pytest.fixture
def set_clock() -> Iterator[Callable[[dt.datetime], None]]:
    def move(instant: dt.datetime) -> None:
        clock.set_source(lambda: instant)

    try:
        yield move
    finally:
        clock.set_source(None)


async def answer(base_url: str, query: str = "", form_extra: dict[str, str] | None = None) -> str:
    url = f"{base_url}/twilio/voice{query}"
    form = inbound_form() | (form_extra or {})
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=form, headers=signed(url, form))
    assert response.status_code == 200, response.text
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    return str(params["call_id"])


@pytest.mark.parametrize(
    "instant",
    [
        dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        dt.datetime(2027, 2, 28, 23, 0, tzinfo=UTC),
        dt.datetime(2028, 2, 29, 0, 0, 1, tzinfo=UTC),
        dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
async def test_an_undated_call_takes_todays_date_from_the_clock(
    base_url: str, runtime: Runtime, set_clock: Callable[[dt.datetime], None], instant: dt.datetime
) -> None:
    set_clock(instant)
    call_id = await answer(base_url, "?series=any-day")
    call = await runtime.store.get_call(call_id)
    assert call is not None
    assert call["meeting_date"] == instant.date() and call["time_zone"] == "UTC"


async def test_a_named_date_wins_in_the_query_or_the_form(
    base_url: str, runtime: Runtime, set_clock: Callable[[dt.datetime], None]
) -> None:
    set_clock(dt.datetime(2026, 11, 30, 12, tzinfo=UTC))
    by_query = await answer(base_url, "?series=named&date=2026-11-03")
    by_form = await answer(base_url, "", {"series": "named", "date": "2026-10-27"})
    assert (await runtime.store.get_call(by_query) or {})["meeting_date"] == dt.date(2026, 11, 3)
    assert (await runtime.store.get_call(by_form) or {})["meeting_date"] == dt.date(2026, 10, 27)


async def test_a_bad_form_date_is_a_clear_error(base_url: str) -> None:
    url = f"{base_url}/twilio/voice"
    form = inbound_form() | {"date": "30/11/2026"}
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=form, headers=signed(url, form))
    assert response.status_code == 422
    assert "date" in response.json()["detail"] and "YYYY-MM-DD" in response.json()["detail"]


async def test_a_series_in_another_time_zone_reads_the_date_there(
    base_url: str,
    runtime: Runtime,
    override: Callable[..., Runtime],
    set_clock: Callable[[dt.datetime], None],
) -> None:
    override(
        pipeline={
            "series": {
                "tokyo-sync": {"call": {"timezone": "Asia/Tokyo"}},
                "sf-sync": {"call": {"timezone": "America/Los_Angeles"}},
            }
        }
    )
    # 20:00 UTC on Monday 30 November is already Tuesday in Tokyo, still Monday in SF...
    set_clock(dt.datetime(2026, 11, 30, 20, tzinfo=UTC))
    tokyo = await runtime.store.get_call(await answer(base_url, "?series=tokyo-sync"))
    sf = await runtime.store.get_call(await answer(base_url, "?series=sf-sync"))
    plain = await runtime.store.get_call(await answer(base_url, "?series=utc-sync"))
    assert tokyo is not None and sf is not None and plain is not None
    assert (tokyo["meeting_date"], tokyo["time_zone"]) == (dt.date(2026, 12, 1), "Asia/Tokyo")
    assert (sf["meeting_date"], sf["time_zone"]) == (dt.date(2026, 11, 30), "America/Los_Angeles")
    assert plain["meeting_date"] == dt.date(2026, 11, 30)
    # ...and 05:00 UTC the next morning is still Monday evening in SF.
    set_clock(dt.datetime(2026, 12, 1, 5, tzinfo=UTC))
    sf_late = await runtime.store.get_call(await answer(base_url, "?series=sf-sync"))
    assert sf_late is not None and sf_late["meeting_date"] == dt.date(2026, 11, 30)


async def test_the_global_time_zone_setting_applies_without_an_override(
    base_url: str,
    runtime: Runtime,
    override: Callable[..., Runtime],
    set_clock: Callable[[dt.datetime], None],
) -> None:
    override(settings={"convene_timezone": "Pacific/Auckland"})
    set_clock(dt.datetime(2026, 11, 30, 12, tzinfo=UTC))  # Tuesday 01:00 in Auckland
    call = await runtime.store.get_call(await answer(base_url, "?series=kiwi-sync"))
    assert call is not None
    assert (call["meeting_date"], call["time_zone"]) == (dt.date(2026, 12, 1), "Pacific/Auckland")


async def test_a_call_that_straddles_midnight_keeps_one_date(
    base_url: str, runtime: Runtime, set_clock: Callable[[dt.datetime], None], tmp_path: Path
) -> None:
    """Answered at 23:59:59, streamed after midnight: every step uses the answer's date."""
    set_clock(dt.datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC))  # a Thursday

    def after_midnight(_: str) -> None:
        set_clock(dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=UTC))

    wav = write_meeting(tmp_path / "m.wav", ["Tom will send the budget to finance by Friday."])
    result = await simulate_meeting(
        wav,
        base_url=base_url,
        series="midnight-sync",
        meeting_date=None,  # type: ignore[arg-type]  # undated on purpose: the server decides
        on_call_id=after_midnight,
    )
    call = await runtime.store.get_call(result["call_id"])
    assert call is not None and call["meeting_date"] == dt.date(2026, 12, 3)
    [promise] = [c for c in result["commitments"] if c["kind"] == "commitment"]
    assert promise["due"] == "2026-12-04"  # "by Friday" from Thursday the 3rd
    tasks = await runtime.store.list_tasks("midnight-sync")
    assert tasks is not None and tasks[0]["created_in"] == "2026-12-03"
    assert call["summary"].startswith("Meeting of Thursday 03 December 2026")


async def test_an_invalid_time_zone_stops_start_up_with_the_key(tmp_path: Path) -> None:
    from server.errors import ConfigError
    from server.prompts import load_prompts
    from server.settings import REPO_ROOT

    folder = tmp_path / "prompts"
    folder.mkdir()
    for source in (REPO_ROOT / "prompts").glob("*.yaml"):
        (folder / source.name).write_text(source.read_text())
    text = (folder / "pipeline.yaml").read_text()
    (folder / "pipeline.yaml").write_text(
        text.replace("series: {}", "series:\n  mars:\n    call: {timezone: Mars/Olympus}")
    )
    with pytest.raises(ConfigError) as info:
        load_prompts(folder)
    message = str(info.value)
    assert "pipeline.yaml" in message and "series.mars" in message and "Mars/Olympus" in message
