"""karmactl: the command-line client of karmad.

It talks to the daemon only over its socket and imports nothing from `karmad` except the
shared protocol types, so that it starts in a few tens of milliseconds.
"""
