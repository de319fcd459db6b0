"""Who said it: owner accuracy and diarization error through the whole call path.

    uv run python benchmarks/people.py [--series 4]

Series of two meetings each, three people per series, spoken by voices the speaker
thresholds were not tuned on (mixes of the packaged Piper voice moved in pitch and formants,
and eSpeak NG variants other than the tests'), with scripts written for this benchmark (not the
tests' or the demo's): in the first meeting people introduce themselves or answer a request
put to them by name, in the second nobody says who they are. Each meeting is streamed as a
Twilio call (8 kHz mu-law, the in-process server, as `convene simulate` does). Reported per
meeting and overall:
- owner accuracy: commitments whose owner is the person whose voice said them (the segment the
  commitment came from, placed on the script's turns by time); a null owner counts as wrong;
- named: segments that carry the right person / all segments (a wrong name counts against);
- wrong names: segments or owners naming someone else (unsure is null, never wrong);
- DER: diarization error rate of the speaker labels against the script (250 ms collar).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from loguru import logger  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from rapidfuzz import fuzz  # noqa: E402

from core.settings import Settings  # noqa: E402
from server.app import create_app  # noqa: E402
from server.local_server import minted_token, serve_in_process  # noqa: E402
from server.runtime import Runtime  # noqa: E402
from server.simulate import simulate_call  # noqa: E402
from server.voices import Turn, voice_meeting  # noqa: E402
from tests.diarization import der  # noqa: E402

# (names, voices): the chair, the one asked, the one who introduces themselves.
CAST = [
    (("Ana", "Ben", "Carla"), ("piper@0.85", "en-us+m1", "piper@1.3")),
    (("Daniel", "Eli", "Fatima"), ("en-us+m2", "piper", "en-us+f2")),
    (("Grace", "Hiro", "Ines"), ("piper@1.2", "en-us+m7", "piper@0.75")),
    (("Jonas", "Kim", "Lena"), ("piper", "piper@0.8", "en-us+f4")),
]


def scripts(a: str, b: str, c: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Two meetings: (who 0-2, what they say)."""
    first = [
        (0, f"Hello everyone, this is {a}, let's get started with the weekly review."),
        (0, f"{b}, could you prepare the budget summary by Thursday?"),
        (1, "Sure, I will have the budget summary ready by Thursday."),
        (1, "I will also call the supplier about the late delivery tomorrow."),
        (2, f"Hi, I'm {c}. I will write the onboarding guide next week."),
        (0, "Good. I will book the meeting room for the workshop on Monday."),
    ]
    second = [
        (1, "Quick update, the budget summary is done."),
        (2, "I will send the onboarding guide to the new hires by Friday."),
        (0, "I will ask finance about the travel policy tomorrow."),
        (1, "And I will order the new laptops next week."),
    ]
    return first, second


def named(owner: str | None, name: str) -> bool:
    return owner is not None and fuzz.ratio(owner.lower(), name.lower()) >= 75


async def run_meeting(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    api_token: str,
    wav: Path,
    truth: list[Turn],
    who: dict[str, str],
    *,
    series: str,
    date: dt.date,
    show: bool = False,
) -> dict[str, Any]:
    result = await simulate_call(
        wav,
        base_url=url,
        series=series,
        meeting_date=date,
        speed=0,
        auth_token=token,
        api_token=api_token,
    )
    segments = result["transcript"]
    found = (await http.get(f"/calls/{result['call_id']}/commitments")).json()["commitments"]

    def person_of(start: int, end: int) -> str:
        turn = max(truth, key=lambda t: min(end, t.end_ms) - max(start, t.start_ms))
        return who[turn.voice]

    right = sum(
        named(c["owner"], person_of(segments[c["seq"]]["start_ms"], segments[c["seq"]]["end_ms"]))
        for c in found
    )
    seg_right = sum(named(s["person"], person_of(s["start_ms"], s["end_ms"])) for s in segments)
    wrong = sum(
        1
        for s in segments
        if s["person"] is not None and not named(s["person"], person_of(s["start_ms"], s["end_ms"]))
    ) + sum(
        1
        for c in found
        if c["owner"] is not None
        and not named(
            c["owner"], person_of(segments[c["seq"]]["start_ms"], segments[c["seq"]]["end_ms"])
        )
    )
    if show:
        for s in segments:
            print(
                f"    {person_of(s['start_ms'], s['end_ms']):>8} {s['speaker']} {s['person']}: {s['text']}"
            )
        for c in found:
            print(f"    -> {c['owner']}: {c['action']}")
    rate = der(truth, [(s["start_ms"], s["end_ms"], s["speaker"]) for s in segments])
    return {
        "commitments": len(found),
        "owners_right": right,
        "segments": len(segments),
        "named_right": seg_right,
        "wrong": wrong,
        "der": rate,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=len(CAST), help="how many series (1-4)")
    parser.add_argument("--only", type=int, default=None, help="just this series (1-4)")
    parser.add_argument("--show", action="store_true", help="print each segment: who, heard")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    home = Path(tempfile.mkdtemp(prefix="convene-bench-people-"))
    token = secrets.token_hex(8)
    settings = Settings.of(convene_home=home, twilio_auth_token=SecretStr(token), public_host=None)
    runtime = await Runtime.start(settings)
    totals = {"commitments": 0, "owners_right": 0, "segments": 0, "named_right": 0, "wrong": 0}
    ders: list[float] = []
    print("series  meeting  commitments  owners right  segments named right  wrong names  DER")
    try:
        async with (
            minted_token(runtime, name="people benchmark") as api_token,
            serve_in_process(create_app(runtime=runtime)) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {api_token}"}, timeout=30
            ) as http,
        ):
            for n, (names, voices) in enumerate(CAST[: args.series]):
                if args.only is not None and n + 1 != args.only:
                    continue
                agent = runtime.prompts.agent.model_copy(update={"participants": list(names)})
                runtime.prompts = runtime.prompts.model_copy(update={"agent": agent})
                series = f"bench-people-{n}-{secrets.token_hex(3)}"
                who = dict(zip(voices, names, strict=True))
                for m, (script, date) in enumerate(
                    zip(
                        scripts(*names), (dt.date(2026, 11, 10), dt.date(2026, 11, 17)), strict=True
                    )
                ):
                    wav = home / f"series-{n}-meeting-{m + 1}.wav"
                    truth = voice_meeting(wav, [(voices[i], text) for i, text in script])
                    r = await run_meeting(
                        http,
                        url,
                        token,
                        api_token,
                        wav,
                        truth,
                        who,
                        series=series,
                        date=date,
                        show=args.show,
                    )
                    for key in totals:
                        totals[key] += r[key]
                    ders.append(r["der"])
                    print(
                        f"{n + 1:>6}  {m + 1:>7}  {r['commitments']:>11}  {r['owners_right']:>12}"
                        f"  {r['segments']:>8}  {r['named_right']:>11}  {r['wrong']:>11}"
                        f"  {r['der']:5.1%}",
                        flush=True,
                    )
    finally:
        await runtime.close()
    owner_acc = totals["owners_right"] / max(totals["commitments"], 1)
    named_rate = totals["named_right"] / max(totals["segments"], 1)
    print(
        f"\nowner accuracy {owner_acc:.3f} ({totals['owners_right']}/{totals['commitments']}),"
        f" segments named right {named_rate:.3f} ({totals['named_right']}/{totals['segments']}),"
        f" wrong names {totals['wrong']} (segments and owners),"
        f" DER mean {sum(ders) / max(len(ders), 1):.1%} max {max(ders, default=0):.1%}"
    )


if __name__ == "__main__":
    asyncio.run(main())
