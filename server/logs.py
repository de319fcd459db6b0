"""Structured logging: `key=value` text by default, JSON lines with CONVENE_LOG_FORMAT=json.

Pipecat logs through loguru; its records are routed to the same level and stream (stderr), so
`--json` output on stdout stays clean.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(level: str = "WARNING") -> None:
    """Configure std logging and loguru (pipecat) once, for CLI and server processes."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("CONVENE_LOG_FORMAT", "text") == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=level, serialize=os.environ.get("CONVENE_LOG_FORMAT") == "json")
