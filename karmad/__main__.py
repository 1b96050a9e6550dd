"""Allows `python -m karmad`, which is how the service units start it when no entry point exists."""

from karmad.cli import main

raise SystemExit(main())
