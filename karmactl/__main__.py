"""Allows `python -m karmactl`."""

from karmactl.cli import main

raise SystemExit(main())
