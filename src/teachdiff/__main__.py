"""``python -m teachdiff`` runs the command-line interface."""

from teachdiff.cli import main

raise SystemExit(main())
