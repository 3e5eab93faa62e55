"""Argument types shared by the commands, and the exit codes."""

from __future__ import annotations

import argparse
import math


EXIT_USAGE = 2
EXIT_FAILURE = 1


# Argument types for numeric flags: argparse rejects a bad value at parsing, with the flag's
# name and this message, before any data is read or any model is built.


def _number(text: str, kind, requirement: str, ok) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (a count of steps, images, epochs, pixels)."""
    return _number(text, int, "a positive integer (1, 2, ...)", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a seed, a number of workers, an overlap; 0 often means "none")."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a time budget, a pixel size)."""
    return _number(text, float, "a positive number", lambda v: 0 < v < math.inf)


def unit_interval(text: str) -> float:
    """A number strictly between 0 and 1 (a decay rate)."""
    return _number(text, float, "a number strictly between 0 and 1", lambda v: 0 < v < 1)


def zero_to_one(text: str) -> float:
    """A number from 0 to 1, both included (DDIM's eta)."""
    return _number(text, float, "a number from 0 to 1", lambda v: 0 <= v <= 1)
