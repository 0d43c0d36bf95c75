"""The Lambdas' settings: one `Settings` (core.settings), re-exported where handlers have always found it."""

from __future__ import annotations

from core.settings import Settings

__all__ = ["Settings"]
