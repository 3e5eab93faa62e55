"""The one error type that carries a message meant for the user."""

from __future__ import annotations



class CommandError(Exception):
    """An expected failure of a command (bad input, missing data): printed without traceback."""
