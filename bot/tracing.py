"""Pipecat's own OpenTelemetry tracing, switched on by CONVENE_TRACING (README: Metrics and
tracing).

With it, each call's `PipelineWorker` runs with `enable_tracing` and `enable_turn_tracking`:
Pipecat's `TurnTraceObserver` opens a `conversation` span per call and a `turn` span per turn
inside it (processors/user_turns.py marks where a caller's turn starts), with the spans of
Pipecat's own services (Deepgram, Cartesia, ElevenLabs) inside the turn. They go over OTLP/HTTP
to the endpoint the standard OpenTelemetry variables name (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...), set up once per
process through `pipecat.utils.tracing.setup.setup_tracing`. The OpenTelemetry SDK and the
exporter come with the optional extra `tracing` (`uv sync --extra tracing`); the default
install does without them.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from pipecat.utils.tracing.setup import is_tracing_available, setup_tracing

from core.errors import ConfigError
from core.settings import Settings

try:  # the optional extra `tracing`
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
except ImportError:  # pragma: no cover - depends on the install
    OTLPSpanExporter = None

log = logging.getLogger(__name__)
_lock = threading.Lock()
_configured = False

MISSING_EXTRA = (
    "CONVENE_TRACING is on but the OpenTelemetry SDK or its OTLP exporter is not installed: "
    "uv sync --extra tracing (pip install 'convene[tracing]')"
)


def start_tracing(settings: Settings, *, exporter: Any | None = None) -> bool:
    """Set up the process's tracer provider once, when CONVENE_TRACING is on: spans to
    `exporter`, else to OTLP/HTTP as the OTEL_* variables say. Returns whether tracing is on;
    without the `tracing` extra, a `ConfigError` saying so (at start, not mid-call)."""
    global _configured
    if not settings.tracing:
        return False
    if not is_tracing_available() or (exporter is None and OTLPSpanExporter is None):
        raise ConfigError(MISSING_EXTRA)
    with _lock:
        if _configured:
            return True
        if exporter is None:
            assert OTLPSpanExporter is not None
            exporter = OTLPSpanExporter()
        service = os.environ.get("OTEL_SERVICE_NAME", "convene")
        if not setup_tracing(service_name=service, exporter=exporter):
            raise ConfigError("CONVENE_TRACING: the OpenTelemetry tracer could not be set up")
        _configured = True
    log.info("tracing: Pipecat's OpenTelemetry spans exported as %s", service)
    return True


def worker_tracing(settings: Settings, *, call_id: str, series: str | None) -> dict[str, Any]:
    """The `PipelineWorker` arguments for one call: one trace per turn when tracing is on."""
    if not settings.tracing:
        return {"enable_tracing": False, "enable_turn_tracking": False}
    attributes = {"convene.call_id": call_id}
    if series is not None:
        attributes["convene.series"] = series
    return {
        "enable_tracing": True,
        "enable_turn_tracking": True,
        "conversation_id": call_id,
        "additional_span_attributes": attributes,
    }
