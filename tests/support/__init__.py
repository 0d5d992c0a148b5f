"""Test-only helpers: emulators, subprocess runners. Nothing in pipelines/ imports this."""
