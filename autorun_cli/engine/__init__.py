"""The local engine (placeholder docstring, replaced below)."""
