"""Packaging: local sessions of shared projects into outboxes, redacted and incremental."""
