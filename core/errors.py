"""Convene's error hierarchy.

Users catch these, not driver exceptions. Every message says which file, field or
service failed and why, and never carries a secret.
"""

from __future__ import annotations


class ConveneError(Exception):
    """Base of every error Convene raises on purpose."""


class ConfigError(ConveneError):
    """A setting, prompt file or key is missing or invalid."""


class StorageUnavailable(ConveneError):
    """Postgres or Redis cannot be reached or refused the operation."""


class ProviderError(ConveneError):
    """An external provider (Twilio, an STT/TTS/LLM service) failed."""


class NotConfigured(ConveneError):
    """A feature was used that needs configuration that is absent (e.g. Twilio keys)."""
