"""Allows `python -m karmad`, which is how the service units start it when no entry point exists."""

from karmad.cli import main

# Guarded: a parser process started by the indexer (multiprocessing's spawn) imports
# this module again under another name, and must not start a second daemon.
if __name__ == "__main__":
    raise SystemExit(main())
