"""Reusable test machinery: real karmad processes, raw socket clients, Syncthing nodes."""
