"""Tools for instructors (:mod:`teachdiff.book.tools`) on the command line:

    python -m teachdiff.cli.book student notebooks _student      # what `make student` runs
"""

from __future__ import annotations

import argparse
import sys

from teachdiff.book.tools import make_student_version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m teachdiff.cli.book",
        description="Tools for instructors: a student version of the course notebooks, without the solutions.")
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write the notebooks without solution cells")
    student.add_argument("src", help="folder of the chapters, e.g. notebooks")
    student.add_argument("dst", help="output folder, e.g. _student")
    student.add_argument("--overwrite", action="store_true", help="replace existing files in dst")
    args = parser.parse_args(argv)
    try:
        written = make_student_version(args.src, args.dst, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ImportError) as err:
        print(f"book_tools student: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} student notebooks (solutions removed) to {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
