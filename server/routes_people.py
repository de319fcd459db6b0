"""People of series: who was heard (names from introductions, answers, voiceprints) and
callers registered by number, with their tasks across series."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from core.identifiers import E164_PATTERN, SERIES_KEY_RULE, SeriesKey
from server.auth import Principal, Reader, Writer, audit
from server.deps import RuntimeDep
from server.runtime import Runtime

router = APIRouter()
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,80}$"


class PersonRequest(BaseModel):
    """A person of a series; with `phone`, an inbound call from that number is theirs (they
    are greeted with their open items, and it is evidence of who speaks first)."""

    series: SeriesKey = Field(description=f"The series the person belongs to. {SERIES_KEY_RULE}")
    name: str = Field(pattern=NAME_PATTERN, description="As they are called in meetings")
    phone: str | None = Field(
        default=None, pattern=E164_PATTERN, description="E.164, e.g. +14155550100"
    )


def _no_person(person_id: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no person {person_id}")


async def _visible_person(runtime: Runtime, principal: Principal, person_id: int) -> str:
    """The person's series, when the person exists and this caller may see it (else 404)."""
    series = await runtime.store.people.series_of(person_id)
    if series is None or not principal.sees(series):
        raise _no_person(person_id)
    return series


@router.get("/people", summary="People heard or registered, per series (scope: read)")
async def list_people(
    request: Request,
    runtime: RuntimeDep,
    principal: Reader,
    series: Annotated[SeriesKey | None, Query(description="Only this series")] = None,
) -> dict[str, Any]:
    if series is not None and not principal.sees(series):
        return {"people": []}
    keys = [series] if series is not None else principal.series
    people = await runtime.store.people.in_series(series=sorted(keys) if keys is not None else None)
    await audit(request, runtime, principal, "read", f"people:{series or '*'}")
    return {"people": people}


@router.get("/people/{person_id}", summary="A person and their tasks across series (scope: read)")
async def get_person(
    person_id: int, request: Request, runtime: RuntimeDep, principal: Reader
) -> dict[str, Any]:
    await _visible_person(runtime, principal, person_id)
    person = await runtime.store.people.get(person_id)
    if person is None:
        raise _no_person(person_id)
    # Another series' tasks (the same number there) only where this caller may look.
    person["tasks"] = [t for t in person["tasks"] if principal.sees(t["series"])]
    await audit(request, runtime, principal, "read", f"person:{person_id}")
    return person


@router.post("/people", status_code=201, summary="Register a person of a series (scope: write)")
async def add_person(
    body: PersonRequest, request: Request, runtime: RuntimeDep, principal: Writer
) -> dict[str, Any]:
    if not principal.sees(body.series):
        raise HTTPException(status_code=404, detail=f"no series {body.series!r}")
    try:
        person_id = await runtime.store.people.add(
            series_key=body.series, name=body.name.strip(), phone=body.phone
        )
    except asyncpg.UniqueViolationError as exc:
        raise HTTPException(
            status_code=409,
            detail=f"phone: another person of series {body.series!r} has this number",
        ) from exc
    await audit(request, runtime, principal, "write", f"person:{person_id}")
    person = await runtime.store.people.get(person_id)
    assert person is not None
    return person


@router.delete(
    "/people/{person_id}",
    summary="Forget a person: record, number, voiceprint (scope: write)",
)
async def delete_person(
    person_id: int, request: Request, runtime: RuntimeDep, principal: Writer
) -> dict[str, Any]:
    await _visible_person(runtime, principal, person_id)
    if not await runtime.store.people.delete(person_id):
        raise _no_person(person_id)
    await audit(request, runtime, principal, "delete", f"person:{person_id}")
    return {"id": person_id, "deleted": True}
