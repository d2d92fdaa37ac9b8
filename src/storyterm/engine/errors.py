"""Errors the engine raises on purpose. Each carries a one-line message meant for the writer."""

from __future__ import annotations


class StorytermError(Exception):
    """Base of every expected failure: the message is shown as is, without a traceback."""


class ModelLoadError(StorytermError):
    """A model source could not be loaded (bad path, not cached offline, pickle weights refused, …)."""


class DeviceError(StorytermError):
    """An unavailable device or an unsupported dtype was asked for."""


class SettingsError(StorytermError, ValueError):
    """A sampler setting is out of range; the message names the setting and the allowed range."""


class EngineBusyError(StorytermError):
    """A generation was requested while another one is still running on the same engine."""


class UnknownGenreError(StorytermError, ValueError):
    """The genre is not one of the loaded model's genres."""
