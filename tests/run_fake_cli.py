"""Run the autorun CLI with the scripted fake provider registered.

For tests that need a real process (tmux): ``python tests/run_fake_cli.py watch ID
--provider fake`` with ``AUTORUN_FAKE_SCRIPT`` naming the script (see fakes.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakes

fakes.register()
fakes.FakeProvider.load_env_script()

from autorun_cli.cli.app import main  # noqa: E402

main()
