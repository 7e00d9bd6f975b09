"""Definitions: TOML validated with pydantic, refused with the file and field path (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autorun_cli.engine import Engine, load_definition, load_definitions, parse_toml
from autorun_cli.engine.demo import demo_dir
from autorun_cli.errors import EXIT_USAGE, UsageError

HEAD = """
id = "a"
name = "A"
trigger = "x.happened"
identity = { type = "email", from = "customer.email" }
"""

SMS = """
[[steps]]
key = "{key}"
type = "send_sms"
text = "hi"
"""


def refused(tmp_path: Path, body: str) -> str:
    f = tmp_path / "auto.toml"
    f.write_text(HEAD + body)
    with pytest.raises(UsageError) as exc:
        load_definition(f)
    err = exc.value
    assert err.exit_code == EXIT_USAGE
    assert str(f) in err.message
    assert err.hint and "validate" in err.hint
    return err.message


def test_bad_duration_names_the_step_field(tmp_path: Path) -> None:
    msg = refused(tmp_path, SMS.format(key="s1") + SMS.format(key="s2") + """
[[steps]]
key = "w"
type = "wait_for_event"
event = "e"
timeout = "30 fortnights"
""")
    assert "steps[2].timeout" in msg and "not a duration" in msg


def test_negative_duration_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, """
[[steps]]
key = "d"
type = "delay"
duration = -5
""")
    assert "steps[0].duration" in msg and "negative" in msg


def test_duplicate_key(tmp_path: Path) -> None:
    msg = refused(tmp_path, SMS.format(key="s1") + SMS.format(key="s2") + SMS.format(key="s1"))
    assert "steps[2].key" in msg and "duplicate key 's1'" in msg and "steps[0]" in msg


def test_dangling_next_step(tmp_path: Path) -> None:
    msg = refused(tmp_path, SMS.format(key="s1") + """
[[steps]]
key = "w"
type = "wait_for_event"
event = "e"
timeout = "5m"
on_timeout = "nowhere"
""")
    assert "steps[1].on_timeout" in msg and "'nowhere'" in msg


def test_cycle_through_condition_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, SMS.format(key="s1") + """
[[steps]]
key = "check"
type = "condition"
field = "payload.total"
op = "gt"
value = 10
on_true = "end"
on_false = "s1"
""")
    assert "steps[1].on_false" in msg and "cycle s1 -> check -> s1" in msg


def test_cycle_through_a_wait_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, """
[[steps]]
key = "w"
type = "wait_for_event"
event = "e"
timeout = "5m"
on_timeout = "nudge"

[[steps]]
key = "nudge"
type = "send_sms"
text = "still there?"
next = "w"
""")
    assert "steps[1].next" in msg and "cycle" in msg


def test_unknown_key_and_unknown_type_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, """
[[steps]]
key = "s1"
type = "send_sms"
text = "hi"
colour = "blue"
""")
    assert "steps[0].colour" in msg
    msg = refused(tmp_path, """
[[steps]]
key = "s1"
type = "send_fax"
""")
    assert "steps[0]" in msg and "send_fax" in msg


def test_top_level_field_errors(tmp_path: Path) -> None:
    f = tmp_path / "auto.toml"
    f.write_text('id = "a"\nname = "A"\ntrigger = "x"\nsteps = []\n')
    with pytest.raises(UsageError) as exc:
        load_definition(f)
    assert "identity" in exc.value.message and "steps" in exc.value.message


def test_reserved_end_key_and_bad_toml(tmp_path: Path) -> None:
    assert "steps[0].key" in refused(tmp_path, SMS.format(key="end"))
    f = tmp_path / "broken.toml"
    f.write_text("id = \n")
    with pytest.raises(UsageError) as exc:
        load_definition(f)
    assert "not valid TOML" in exc.value.message and str(f) in exc.value.message


def test_unreadable_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        load_definition(tmp_path / "missing.toml")
    assert "cannot read" in exc.value.message
    with pytest.raises(UsageError):
        load_definitions(tmp_path)


def test_duplicate_ids_across_a_folder(tmp_path: Path) -> None:
    for name in ("one.toml", "two.toml"):
        (tmp_path / name).write_text(HEAD + SMS.format(key="s1"))
    with pytest.raises(UsageError) as exc:
        load_definitions(tmp_path)
    assert "two.toml" in exc.value.message and "one.toml" in exc.value.message


def test_bundled_demo_definitions_are_valid() -> None:
    ids = sorted(d.id for d in load_definitions(demo_dir()))
    assert ids == ["invoice_webhook", "order_receipt", "welcome_pack"]


def test_loading_versions_definitions(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "home")
    d1 = parse_toml(HEAD + SMS.format(key="s1"))
    assert [(r.version, r.created) for r in engine.load(d1)] == [(1, True)]
    assert [(r.version, r.created) for r in engine.load(d1)] == [(1, False)]
    run1 = engine.trigger("x.happened", {"customer": {"email": "a@b.c"}})[0]
    d2 = parse_toml(HEAD + SMS.format(key="s1") + SMS.format(key="s2"))
    assert [(r.version, r.created) for r in engine.load(d2)] == [(2, True)]
    run2 = engine.trigger("x.happened", {"customer": {"email": "a@b.c"}})[0]
    assert engine.get_run(run1)["definition_version"] == 1
    assert [s["key"] for s in engine.get_run(run1)["steps"]] == ["s1"]
    assert engine.get_run(run2)["definition_version"] == 2
    assert [s["key"] for s in engine.get_run(run2)["steps"]] == ["s1", "s2"]
    assert [d["version"] for d in engine.definitions(all_versions=True)] == [1, 2]
    assert engine.definition("a")["version"] == 2


@pytest.mark.parametrize("value", ["inf", "nan", '"99999999d"', "99999999999999999999", '"0s"', "1e400"])
def test_durations_out_of_range_are_refused_at_load(tmp_path: Path, value: str) -> None:
    """Issue 12 #25: ≤ 365 days, finite, > 0, else exit 2 naming the field."""
    msg = refused(tmp_path, f"""
[[steps]]
key = "w"
type = "wait_for_event"
event = "e"
timeout = {value}
""")
    assert "steps[0].timeout" in msg
    assert "365 days" in msg or "nan" in msg


def test_retry_backoff_out_of_range_is_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, """
[[steps]]
key = "s"
type = "send_sms"
text = "hi"
retry = { attempts = 2, backoff = "99999999d" }
""")
    assert "steps[0].retry.backoff" in msg and "365 days" in msg


POISON = HEAD + """
[[steps]]
key = "w"
type = "wait_for_event"
event = "e"
timeout = "30m"

[[steps]]
key = "post"
type = "http_request"
url = "http://127.0.0.1:9/x"
timeout = "5s"
"""


def test_a_store_poisoned_by_an_earlier_version_stays_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier version stored `timeout = inf` (and its timer at infinity): list, show,
    trigger, demo and engine work must keep working on that store."""
    import json as _json

    from typer.testing import CliRunner

    from autorun_cli.cli.app import app

    home = tmp_path / "home"
    monkeypatch.setenv("AUTORUN_HOME", str(home))
    monkeypatch.setenv("AUTORUN_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("AUTORUN_ENGINE_URL", raising=False)
    engine = Engine.open(home)
    engine.load(parse_toml(POISON))
    [old_run] = engine.trigger("x.happened", {"customer": {"email": "a@b.c"}})
    conn = engine.store.conn  # type: ignore[attr-defined]
    spec = _json.loads(conn.execute("SELECT spec FROM definitions").fetchone()[0])
    spec["steps"][0]["timeout"] = float("inf")
    spec["steps"][1]["timeout"] = float("inf")
    conn.execute("UPDATE definitions SET spec = ?", (_json.dumps(spec),))
    conn.execute("UPDATE timers SET due_at = ?", (float("inf"),))
    conn.execute("UPDATE waits SET timeout_at = ?", (float("inf"),))
    engine.close()

    runner = CliRunner()
    for args in (["list", "-o", "json"], ["show", old_run, "-o", "json"], ["engine", "work", "-o", "json"],
                 ["trigger", "x.happened", "--payload", '{"customer": {"email": "b@b.c"}}', "-o", "json"],
                 ["demo", "-o", "id"], ["engine", "status", "-o", "json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    shown = _json.loads(runner.invoke(app, ["show", old_run, "-o", "json"]).stdout)
    assert shown["status"] == "waiting" and shown["waits"][0]["timeout_at"] is None
    [new] = [r for r in _json.loads(runner.invoke(app, ["list", "-o", "json", "--automation", "a"]).stdout)
             if r["id"] != old_run]
    wait = _json.loads(runner.invoke(app, ["show", new["id"], "-o", "json"]).stdout)["waits"][0]
    assert wait["timeout_at"] is not None  # clamped to 365 days, a real time


WELCOME = HEAD + """
[[steps]]
key = "welcome"
type = "send_email_template"
template = "welcome"
subject = "Welcome aboard, {{ payload.customer.name }}!"
retry = { attempts = 3, backoff = "1s" }

[[steps]]
key = "hook"
type = "http_request"
url = "http://127.0.0.1:9/{{ payload.account }}"
"""


def test_a_missing_template_variable_fails_the_step_instead_of_rendering_empty(tmp_path: Path) -> None:
    """Issue 12 #8: no "Welcome aboard, !"; the run fails naming the variable, at once."""
    engine = Engine.memory()
    engine.load(parse_toml(WELCOME))
    [run_id] = engine.trigger("x.happened", {"customer": {"email": "a@b.c"}})
    run = engine.get_run(run_id)
    assert run["status"] == "failed" and run["messages"] == []
    [step] = run["steps"]
    assert step["status"] == "failed" and step["attempt"] == 1  # no retries: they cannot bring the value
    assert "{{ payload.customer.name }} is missing: the trigger's payload has no customer.name" in step["error"]
    assert "customer.name" in run["error"]["message"] and engine.next_due() is None
    # a present value renders; a null one renders empty (it was given)
    [ok_id] = engine.trigger("x.happened", {"customer": {"email": "b@b.c", "name": None}, "account": "acc_1"})
    ok = engine.get_run(ok_id)
    assert ok["messages"][0]["title"] == "Welcome aboard, !"
    assert ok["steps"][0]["status"] == "completed" and ok["steps"][1]["key"] == "hook"


def test_a_missing_variable_in_an_http_step_sends_nothing(hook_server) -> None:
    engine = Engine.memory()
    engine.load(parse_toml(WELCOME.replace("http://127.0.0.1:9", hook_server.url)))
    [run_id] = engine.trigger("x.happened", {"customer": {"email": "a@b.c", "name": "Ann"}})
    run = engine.get_run(run_id)
    assert run["status"] == "failed" and hook_server.requests == []
    assert "payload has no account" in run["steps"][-1]["error"] and run["lease"] is None


def test_validate_warns_about_variables_a_run_may_lack() -> None:
    d = parse_toml(HEAD + """
[[steps]]
key = "greet"
type = "send_sms"
text = "Hi {{ payload.customer.first_name }}, {{ event.note }} {{ customer.email }} {{ identity.value }}"
to = "{{ payload.customer.email }}"

[[steps]]
key = "w"
type = "wait_for_event"
event = "email.opened"
timeout = "1h"
on_timeout = "late"

[[steps]]
key = "thanks"
type = "send_sms"
text = "Thanks for {{ event.subject }}"
next = "end"

[[steps]]
key = "late"
type = "send_sms"
text = "Still there? {{ event.subject }} {{ run.id }}"
""")
    warnings = d.template_warnings()
    text = "\\n".join(warnings)
    assert "steps[0].text: {{ payload.customer.first_name }}" in text  # the trigger may not carry it
    assert "steps[0].to" not in text  # the identity path: a run without it never starts
    assert "steps[0].text: {{ event.note }}" in text  # no event before the first wait
    assert "steps[0].text: {{ customer.email }} is not a variable" in text
    assert "steps[2]" not in text  # after a received event
    assert "steps[3].text: {{ event.subject }}" in text  # reached through the timeout
    assert "{{ identity.value }}" not in text and "{{ run.id }}" not in text
    assert len(warnings) == 4
