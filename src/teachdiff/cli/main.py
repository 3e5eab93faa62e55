"""The ``teachdiff`` command line: ``teachdiff data|train|restore|export|evaluate|reproduce``.

Each command is a module of this package (the only place that parses arguments or names a flag)
and exposes ``add_parser(subparsers)``, which
adds its sub-parser and sets ``func`` (a callable taking the parsed arguments and returning
an exit code). This file only wires them together and turns expected errors into a one-line
message and a non-zero exit code instead of a traceback.

One style for every command: a usage error prints the usage of the (sub)command it concerns
and ``teachdiff data check: error: ...``; an error while the command runs prints the same
prefix, and a warning ``warning: ...``. Command modules import torch, SciPy and the like inside
the functions that use them, so that ``teachdiff --help`` and ``teachdiff weights list`` answer
at once (``tests/test_cli_errors.py`` checks that ``--help`` leaves torch unimported).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from teachdiff.cli.args import EXIT_FAILURE, EXIT_USAGE
from teachdiff.core.errors import CommandError


# Modules that provide a command, in the order `teachdiff --help` lists them.
COMMAND_MODULES = [
    "teachdiff.cli.data",
    "teachdiff.cli.train",
    "teachdiff.cli.restore",
    "teachdiff.cli.export",
    "teachdiff.cli.evaluate",
    "teachdiff.cli.reproduce",
    "teachdiff.cli.weights",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teachdiff",
        description="Conditional diffusion models for microscopy image restoration.",
        epilog="Run `teachdiff COMMAND --help` for the options and examples of each command.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    _name_every_parser(parser)
    return parser


def _name_every_parser(parser: argparse.ArgumentParser) -> None:
    """Each (sub)parser stores itself as ``_parser``: the innermost one chosen wins, so errors can
    print the usage and name of the command they concern (``teachdiff data check: error: ...``)."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _name_every_parser(sub)


@contextlib.contextmanager
def warnings_above_progress_bars():
    """Print warnings with ``tqdm.write``, which clears the active progress bar, prints the line
    and redraws the bar, so a warning never lands in the middle of a bar's line."""
    from tqdm.auto import tqdm

    def show(message, category, filename, lineno, file=None, line=None):
        kind = "" if category is UserWarning else f" ({category.__name__})"
        tqdm.write(f"warning{kind}: {message}", file=file or sys.stderr)

    original = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def _version() -> str:
    from teachdiff import __version__

    return f"teachdiff {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    command = getattr(args, "_parser", parser)
    if unknown:  # argparse would print the top-level usage; the command's own is the helpful one
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with warnings_above_progress_bars():
            return int(args.func(args) or 0)
    except (CommandError, ValueError, FileNotFoundError, FileExistsError, PermissionError) as err:
        print(f"{command.prog}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{command.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
