"""File names of a Packflow project (upstream's `packflow.constants`)."""

from __future__ import annotations

from packflow.project import PROJECT_FILE

PACKAGING_CONFIG_NAME = PROJECT_FILE
REQUIREMENTS_TEXT_NAME = "requirements.txt"

__all__ = ["PACKAGING_CONFIG_NAME", "REQUIREMENTS_TEXT_NAME"]
