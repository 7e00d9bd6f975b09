"""The confirmation prompt of ``retry``/``cancel`` on many runs, in a real terminal (tmux)."""

from __future__ import annotations

import shutil

import pytest
from fakes import run_doc
from test_watch_tmux import Terminal

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI: apt-get install -y tmux)")

FAILED = {rid: [run_doc(rid, "failed", [("send", "failed")], automation_id="aut_123"), run_doc(rid, "pending")]
          for rid in ("r1", "r2")}


@pytest.fixture
def term(tmp_path):
    t = Terminal(tmp_path)
    yield t
    t.close()


def test_a_yes_at_the_prompt_retries_every_run(term):
    term.start({"runs": FAILED}, "retry", "r1", "r2")
    term.wait_for(lambda s: "Retry 2 runs of aut_123? [y/N]" in s, "the prompt")
    term.tmux("send-keys", "-t", "watch", "y", "Enter")
    assert term.exit_code() == 0
    screen = term.screen()
    assert "✓ r1  retried (pending)" in screen and "✓ r2  retried (pending)" in screen
    assert "retried 2 of 2 runs" in screen


def test_anything_but_yes_at_the_prompt_changes_nothing_and_exits_1(term):
    term.start({"runs": FAILED}, "retry", "r1", "r2")
    term.wait_for(lambda s: "Retry 2 runs of aut_123? [y/N]" in s, "the prompt")
    term.tmux("send-keys", "-t", "watch", "n", "Enter")
    assert term.exit_code() == 1
    screen = term.screen()
    assert "nothing was retried" in screen and "✓" not in screen
