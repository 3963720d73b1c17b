"""Packflow's error root. Every error Packflow raises on purpose is a `PackflowError`."""

from __future__ import annotations


class PackflowError(Exception):
    """Root of all Packflow errors; the SDK and the runtime subclass it."""
