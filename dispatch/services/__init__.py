"""Application services: orchestration of domain, storage and solver (async, with I/O)."""
