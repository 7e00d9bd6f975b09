"""Replay a recorded run on the local engine and report where it diverges.

``source`` turns what the user gave (an ID, a ``show -o json`` file, a vendor's
document, ndjson on stdin) into recorded runs; ``compare`` finds the first
divergence between a recorded and a replayed run. Neither imports the CLI.
"""
