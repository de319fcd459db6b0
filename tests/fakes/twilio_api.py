"""A loopback server speaking Twilio's REST API for creating calls (2010-04-01 Calls.json)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class FakeTwilio:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: tuple[int, int, str] | None = None  # (HTTP status, Twilio code, message)
    # Updates of a call (POST Calls/{sid}.json, e.g. Status=completed: a hang-up).
    updates: list[dict[str, Any]] = field(default_factory=list)
    updated: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/2010-04-01/Accounts/{account_sid}/Calls.json")
        async def create_call(account_sid: str, request: Request) -> JSONResponse:
            form = await request.form()
            auth = request.headers.get("authorization", "")
            user, _, password = (
                base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
            )
            self.requests.append(
                {
                    "account_sid": account_sid,
                    "auth_user": user,
                    "auth_password": password,
                    "form": {k: [str(v) for v in form.getlist(k)] for k in form},
                }
            )
            if self.fail_with:
                status, code, message = self.fail_with
                return JSONResponse(
                    {
                        "code": code,
                        "message": message,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    },
                    status_code=status,
                )
            sid = "CA" + secrets.token_hex(16)
            return JSONResponse(
                {
                    "sid": sid,
                    "account_sid": account_sid,
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "status": "queued",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json",
                },
                status_code=201,
            )

        @api.post("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json")
        async def update_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            form = await request.form()
            self.updates.append({"call_sid": call_sid, "form": {k: str(form[k]) for k in form}})
            self.updated.set()
            return JSONResponse(
                {
                    "sid": call_sid,
                    "account_sid": account_sid,
                    "status": str(form.get("Status") or "in-progress"),
                    "api_version": "2010-04-01",
                    "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json",
                }
            )

        return api
