"""karmad: shares Claude Code sessions between machines and teammates through Syncthing.

This package's import must stay free of side effects and heavy dependencies, because
`karmactl` imports `karmad.protocol` (and therefore this file) on every invocation.
"""

__version__ = "0.1.0"
