"""``python -m teachdiff`` runs the command-line interface."""

from teachdiff.cli.main import main

raise SystemExit(main())
