"""Acting on runs (``retry``, ``cancel``): one run, or many at once.

Many runs — several IDs, ``-`` for IDs on stdin, or ``list``'s selection flags —
go through four stages, each shared by the verbs:

1. ``prepare``: the IDs (malformed ones become failed outcomes, the rest are kept)
   or the runs the selection chooses; each run read concurrently and checked
   (status, ``--from-step`` key) before anything is changed;
2. ``plan`` (``--dry-run``): what would be sent — the exact request for an API, the
   step it would start from on the local engine — by running the provider's own
   code against a stand-in HTTP client that records the first write;
3. ``confirm``: more than one run needs ``--yes`` or a yes typed at a terminal;
4. ``execute``: the action, concurrently (``AUTORUN_CONCURRENCY``), outcomes in
   the order given, each as soon as it and those before it are done.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autorun_cli.cli.output import Output
    from autorun_cli.cli.session import Session
    from autorun_cli.errors import AutorunError
    from autorun_cli.model import Run
    from autorun_cli.providers.base import ListQuery, Provider

STDIN = "-"
_UNSET = object()
# The verb as the user reads it: (present, past).
WORDS = {"retry": ("retry", "retried"), "cancel": ("cancel", "cancelled")}


def resolve(s: Session, run_id: str) -> str:
    """A checked run ID (``@latest`` resolved), or a UsageError / NotFoundError."""
    from autorun_cli.fetch import LATEST, resolve_id

    checked = s.provider.validate_id(run_id) if run_id != LATEST else run_id
    return resolve_id(s.provider, checked, s.settings.automation)


def offers(provider: Provider, operation: str) -> bool:
    """Whether ``provider`` implements ``operation`` ("retry", "cancel", "retry_from")."""
    from autorun_cli.providers.base import Provider as Base

    return getattr(type(provider), operation) is not getattr(Base, operation)


def require(provider: Provider, operation: str, run_id: str = "ID") -> None:
    """Refuse an operation the provider does not offer, before any request.

    The base class's method raises the provider's NotSupportedError (with its hint,
    e.g. ``autorun replay ID``); calling it with a stub run keeps one wording.
    """
    from autorun_cli.model import Run
    from autorun_cli.providers.base import Provider as Base

    if not offers(provider, operation):
        stub = Run(id=run_id, provider=provider.name)
        if operation == "retry_from":
            Base.retry_from(provider, stub, "KEY")
        getattr(Base, operation)(provider, stub)


# -- checks before acting ----------------------------------------------------------


def retry_refusal(provider: Provider, run: Run, force: bool) -> AutorunError | None:
    """Why ``run`` must not be retried (exit 4), or None."""
    from autorun_cli.errors import AutorunError, NotAllowedError
    from autorun_cli.status import RETRYABLE

    # The provider first: it may know the API refuses this run (tenant: no retry link).
    try:
        provider.check_retry(run, force=force)
    except AutorunError as refused:
        return refused
    rid = run.id
    if run.status in RETRYABLE or force and not (provider.name == "local" and run.status == "completed"):
        return None
    if run.status in ("pending", "running", "waiting"):
        message = f"run {rid} is {run.status}, not failed, cancelled or timed out: retrying it now could run it twice"
        hint = f"follow it with `autorun watch {rid}`, or pass --force to retry anyway"
    else:
        message = f"run {rid} is {run.status}; only failed, cancelled or timed-out runs are retried"
        hint = f"pass --force to retry it anyway (`autorun retry {rid} --force`)"
        if provider.name == "local" and run.status == "completed":
            # The engine refuses even --force: a completed run has nothing left to resume.
            from autorun_cli.render import trigger_command

            again = trigger_command(run)
            hint = "a completed local run has nothing left to resume; start a new one" + (f": {again}" if again else " with `autorun trigger EVENT`")
    return NotAllowedError(message, hint=hint, code="not_retryable")


def cancel_refusal(run: Run) -> AutorunError | None:
    """Why ``run`` cannot be cancelled (it ended: exit 4), or None."""
    from autorun_cli.errors import NotAllowedError
    from autorun_cli.status import RETRYABLE, TERMINAL

    if run.status not in TERMINAL:
        return None
    rid = run.id
    hint = f"retry it with `autorun retry {rid}`" if run.status in RETRYABLE else f"see it with `autorun show {rid}`"
    return NotAllowedError(f"run {rid} already ended {run.status}: there is nothing to cancel", hint=hint, code="already_ended")


def step_keys(run: Run) -> list[str]:
    """The keys of the steps ``run`` recorded, in order, each once."""
    return list(dict.fromkeys(step.key for step in run.steps if step.key))


def step_refusal(run: Run, from_step: str) -> AutorunError | None:
    """A usage error (exit 2) naming the run's step keys when it has no ``from_step``."""
    from autorun_cli.errors import UsageError

    keys = step_keys(run)
    if from_step in keys:
        return None
    return UsageError(
        f"run {run.id} has no step {from_step!r}" + ("" if keys else ": it recorded no steps"),
        hint=f"its steps are: {', '.join(keys)}" if keys else "retry it without --from-step",
        code="unknown_step",
    )


# -- one outcome per run -----------------------------------------------------------


class Outcome:
    """What happened to one run: the contract's JSON entry, plus what it was built from."""

    __slots__ = ("id", "action", "from_step", "run", "new", "error", "plan", "final", "label")

    def __init__(self, run_id: str, action: str, from_step: str | None = None, *, error: AutorunError | None = None,
                 label: str | None = None):
        self.id = run_id
        self.action = action
        self.from_step = from_step
        # Where the ID came from when that is not the command line ("stdin line 3").
        self.label = label
        self.run: Run | None = None
        self.new: Run | None = None  # the run as the provider answered the action
        self.error = error
        self.plan: dict[str, Any] | None = None
        # With --wait: the status the retried run ended with (_UNSET without --wait).
        self.final: Any = _UNSET

    @property
    def new_id(self) -> str | None:
        """The retried run's ID (the same where the provider retries in place)."""
        return self.new.id if self.new is not None and self.action == "retry" else None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "action": self.action,
            "new_id": self.new_id,
            "from_step": self.from_step,
            "error": {"code": self.error.code, "message": self.error.message} if self.error is not None else None,
        }
        if self.plan is not None:
            doc["plan"] = self.plan
        if self.final is not _UNSET:
            doc["status"] = self.final
        return doc


def read_stdin_ids(out: Output) -> list[tuple[str, str]]:
    """(label, text) per non-blank stdin line; a blank line is reported and skipped."""
    from autorun_cli.textsafe import clean

    found: list[tuple[str, str]] = []
    for n, line in enumerate(sys.stdin, 1):
        text = line.strip()
        if not text:
            out.warn(f"stdin line {n} is blank: skipped")
            continue
        found.append((f"stdin line {n}", clean(text)))
    return found


class Bulk:
    """One ``retry``/``cancel`` over many runs (see the module docstring)."""

    def __init__(self, s: Session, action: str, *, force: bool = False, from_step: str | None = None):
        self.s = s
        self.provider = s.provider
        self.action = action
        self.force = force
        self.from_step = from_step

    @property
    def workers(self) -> int:
        from autorun_cli.fetch import concurrency

        # The local engine is one SQLite connection per Engine, not for threads; its
        # operations take microseconds anyway.
        return concurrency() if self.provider.uses_http else 1

    # -- 1. prepare ------------------------------------------------------------
    def targets(self, ids: list[str], query: ListQuery | None) -> list[Outcome]:
        """One outcome per distinct run, in the order given; bad IDs already failed."""
        from autorun_cli.errors import AutorunError

        outcomes: list[Outcome] = []
        seen: set[str] = set()

        def add(run_id: str, outcome: Outcome) -> None:
            if run_id not in seen:
                seen.add(run_id)
                outcomes.append(outcome)

        if query is not None:
            from autorun_cli.listing import list_runs

            for run in list_runs(self.provider, query):
                add(run.id, Outcome(run.id, self.action, self.from_step))
            return outcomes
        given: list[tuple[str | None, str]] = []
        for arg in ids:
            if arg == STDIN:
                given += read_stdin_ids(self.s.out)
            else:
                given.append((None, arg))
        for label, text in given:
            try:
                run_id = resolve(self.s, text)
            except AutorunError as exc:
                if label is not None:
                    exc.message = f"{label}: {exc.message}"
                add(f"\0{len(outcomes)}", Outcome(text, self.action, self.from_step, error=exc))
                continue
            add(run_id, Outcome(run_id, self.action, self.from_step, label=label))
        return outcomes

    def prepare(self, ids: list[str], query: ListQuery | None) -> list[Outcome]:
        """The outcomes with each run read and checked; nothing is changed yet."""
        from autorun_cli.errors import AutorunError, UsageError
        from autorun_cli.fetch import map_bounded

        outcomes = self.targets(ids, query)

        def read(o: Outcome) -> Outcome:
            try:
                o.run = self.provider.get_run(o.id)
            except AutorunError as exc:
                if o.label is not None:
                    exc.message = f"{o.label}: {exc.message}"
                o.error = exc
                return o
            o.error = self.refusal(o.run)
            return o

        for _ in map_bounded(read, [o for o in outcomes if o.error is None], self.workers):
            pass
        if self.from_step is not None:
            automations = sorted({str(o.run.automation_id) for o in outcomes if o.run is not None})
            if len(automations) > 1:
                raise UsageError(
                    f"--from-step {self.from_step} names a step of one automation, and these runs belong to "
                    f"{len(automations)}: {', '.join(automations)}",
                    hint="retry the runs of one automation at a time (add --automation ID)",
                )
        return outcomes

    def refusal(self, run: Run) -> AutorunError | None:
        if self.action == "cancel":
            return cancel_refusal(run)
        return retry_refusal(self.provider, run, self.force) or (
            step_refusal(run, self.from_step) if self.from_step is not None else None
        )

    # -- 2. plan ---------------------------------------------------------------
    def plan(self, o: Outcome) -> dict[str, Any]:
        """What acting on ``o`` would do, without doing it."""
        assert o.run is not None
        if self.provider.http is None:
            # The local engine: where the run would start again, or stop.
            if self.action == "cancel":
                return {"step": o.run.current_step}
            return {"step": self.from_step or resume_step(o.run)}
        stand_in = copy.copy(self.provider)
        stand_in.http = _PlanningHttp(self.provider.http)  # type: ignore[assignment]
        try:
            self._act(stand_in, o.run)
        except _Planned as planned:
            return {"request": planned.as_dict(self.provider.http.base_url)}
        return {"request": None}  # the provider would send nothing (not expected)

    # -- 4. execute ------------------------------------------------------------
    def _act(self, provider: Provider, run: Run) -> Run:
        if self.action == "cancel":
            return provider.cancel(run)
        if self.from_step is not None:
            return provider.retry_from(run, self.from_step)
        return provider.retry(run)

    def execute(self, outcomes: list[Outcome], dry_run: bool) -> Iterator[Outcome]:
        """Act on every run not already failed; yields every outcome in order."""
        from autorun_cli.errors import AutorunError
        from autorun_cli.fetch import map_bounded

        def one(o: Outcome) -> Outcome:
            assert o.run is not None
            try:
                if dry_run:
                    o.plan = self.plan(o)
                else:
                    o.new = self._act(self.provider, o.run)
            except AutorunError as exc:
                o.error = exc
            return o

        done = map_bounded(one, [o for o in outcomes if o.error is None], self.workers)
        for o in outcomes:
            if o.error is None:
                next(done)  # the same outcome: map_bounded keeps the order
            yield o


def resume_step(run: Run) -> str | None:
    """The step the local engine resumes ``run`` at: its current step, else the step
    its error names, else the last step that did not complete."""
    if run.current_step:
        return run.current_step
    if run.error is not None and run.error.step:
        return run.error.step
    for step in reversed(run.steps):
        if step.status != "completed" and step.key:
            return step.key
    return run.steps[-1].key if run.steps else None


class _Planned(Exception):
    """The first request that would change something, caught instead of sent."""

    def __init__(self, method: str, url: str, body: Any):
        super().__init__(f"{method} {url}")
        self.method, self.url, self.body = method.upper(), url, body

    def as_dict(self, base_url: str) -> dict[str, Any]:
        path = self.url[len(base_url):] if self.url.startswith(base_url) else self.url
        return {"method": self.method, "path": path or "/", "body": self.body}


class _PlanningHttp:
    """Stands in for a provider's HTTP client in a dry run: reads go through, the
    first write (POST, PATCH…) raises :class:`_Planned` instead of being sent."""

    def __init__(self, real: Any):
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if method.upper() in ("GET", "HEAD", "OPTIONS"):
            return self._real.request(method, url, **kwargs)
        raise _Planned(method, url, kwargs.get("json_body"))

    def send_json(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.request(method, url, json_body=body)


# -- the human view and the JSON array ----------------------------------------------


def describe_plan(o: Outcome, action: str) -> str:
    from autorun_cli.textsafe import clean

    plan = o.plan or {}
    request = plan.get("request")
    if request:
        text = f"would send {request['method']} {request['path']}"
        if request.get("body") is not None:
            import json

            body = json.dumps(request["body"], ensure_ascii=False, separators=(",", ":"), default=str)
            text += " " + (body if len(body) <= 120 else body[:119] + "…")
        return clean(text)
    step = plan.get("step")
    if action == "cancel":
        return f"would stop it at step {clean(step)}" if step else "would stop it"
    return f"would start it again at step {clean(step)}" if step else "would start it again at its first step"


def describe(o: Outcome, action: str) -> str:
    """The human line's text after the run ID."""
    from autorun_cli.textsafe import clean

    if o.error is not None:
        return clean(o.error.message)
    if o.plan is not None:
        return describe_plan(o, action)
    new = o.new
    assert new is not None
    if action == "cancel":
        return "cancelled" if new.status == "cancelled" else f"cancel requested (now {clean(new.status)})"
    text = "retried" + (f" from step {clean(o.from_step)}" if o.from_step else "")
    if new.id != o.id:
        text += f" → {clean(new.id)}"
    return f"{text} ({clean(new.status)})"


class Report:
    """Prints outcomes as they come — a line per run for people, ndjson/id streamed —
    or the JSON array at the end; then the summary and the exit code."""

    def __init__(self, out: Output, action: str, *, dry_run: bool, width: int = 0, wait: bool = False):
        self.out = out
        self.action = action
        self.dry_run = dry_run
        self.wait = wait
        self.width = width
        self.seen: list[Outcome] = []

    def add(self, o: Outcome) -> None:

        self.seen.append(o)
        mode = self.out.mode
        if mode == "table":
            from rich.text import Text

            from autorun_cli.textsafe import clean

            mark, style = ("✗", "red") if o.error is not None else (("·", "cyan") if o.plan is not None else ("✓", "green"))
            line = Text(mark + " ", style=style)
            line.append(clean(o.id).ljust(self.width), style="bold")
            line.append("  " + describe(o, self.action), style="red" if o.error is not None else "")
            self.out.out.print(line, soft_wrap=True)
        elif mode == "ndjson":
            self.out.ndjson(o.to_json())
        elif mode == "id":
            # The runs acted on (or that would be); failures are on stderr.
            if o.error is None:
                self.out.line(o.new_id or o.id)

    def finish(self, after: AutorunError | None = None) -> None:
        """The JSON array (-o json), the summary on stderr, the exit code: the first
        failed run's, else that of ``after`` (the verdict of following them)."""
        import typer

        out = self.out
        if out.mode == "json":
            out.print_json([o.to_json() for o in self.seen])
        failed = [o for o in self.seen if o.error is not None]
        past = WORDS[self.action][1]
        n = len(self.seen)
        noun = "run" if n == 1 else "runs"
        if out.mode == "table":
            if self.dry_run:
                summary = f"dry run: {n - len(failed)} of {n} {noun} would be {past}; nothing was changed"
            else:
                summary = f"{past} {n - len(failed)} of {n} {noun}"
            out.info(summary + (f", {len(failed)} failed" if failed and not self.dry_run else ""), style="dim")
        if failed:
            first = failed[0].error
            assert first is not None
            err = first
            if n > 1:
                message = f"{len(failed)} of {n} runs could not be {past}; the first: {first.message}"
                err = type(first)(message, hint=first.hint, code=first.code)
        elif after is not None:
            err = after
        else:
            return
        if out.mode in ("table", "id"):
            raise err
        # stdout holds the outcomes; the failure goes to stderr only.
        from autorun_cli.cli.output import report_error

        report_error(err, "table")
        raise typer.Exit(err.exit_code)


def confirm(out: Output, action: str, outcomes: list[Outcome], from_step: str | None, yes: bool,
            ids_on_stdin: bool = False) -> None:
    """Acting on more than one run needs --yes or a yes typed at a terminal. Stdin
    that held the IDs (typed at the terminal, ended with Ctrl-D) cannot answer."""
    from autorun_cli.errors import UsageError

    todo = [o for o in outcomes if o.error is None]
    if yes or len(todo) <= 1:
        return
    present, past = WORDS[action]
    automations = sorted({o.run.automation_id for o in todo if o.run is not None and o.run.automation_id})
    of = f" of {automations[0]}" if len(automations) == 1 else (f" of {len(automations)} automations" if automations else "")
    where = f" from step {from_step}" if from_step else ""
    question = f"{present.capitalize()} {len(todo)} runs{of}{where}?"
    if ids_on_stdin or not stdin_is_tty():
        why = "stdin held the run IDs, so it cannot answer" if ids_on_stdin else "there is no terminal to ask on"
        raise UsageError(
            f"{present} of {len(todo)} runs needs a confirmation, and {why}",
            hint="add --yes to act on them all (see them first with --dry-run)",
            code="confirm",
        )
    from autorun_cli.textsafe import clean

    sys.stderr.write(f"{clean(question)} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        import typer

        sys.stderr.write(f"nothing was {past}\n")
        raise typer.Exit(1)


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


# -- the command's flow ----------------------------------------------------------------


class Selection:
    """What the user named: IDs (``-`` for stdin), or ``list``'s selection flags.

    ``--automation`` alone is a selection; beside IDs it only says where they live
    (the generic API's paths need it). Neither IDs nor a selection, or both, is bad
    usage (exit 2), refused before any request.
    """

    def __init__(self, ctx: Any, ids: list[str] | None, *, status: str | None = None, since: str | None = None,
                 until: str | None = None, limit: int | None = None, all_: bool = False, action: str = "retry"):
        from autorun_cli.cli.options import given_on_command_line
        from autorun_cli.errors import UsageError

        self.ids = list(ids or [])
        self.status, self.since, self.until, self.limit, self.all_ = status, since, until, limit, all_
        flags = [name for name, given in (("--status", status is not None), ("--since", since is not None),
                                          ("--until", until is not None), ("--limit", limit is not None),
                                          ("--all", all_)) if given]
        automation = ctx is not None and given_on_command_line(ctx, "automation")
        example = "failed" if action == "retry" else "running"
        if self.ids and flags:
            raise UsageError(
                f"give run IDs or selection flags, not both (got IDs and {', '.join(flags)})",
                hint=f"e.g. `autorun {action} ID…`, or `autorun {action} --status {example} --since 2h`",
            )
        self.selecting = bool(flags) or (automation and not self.ids)
        if not self.ids and not self.selecting:
            raise UsageError(
                f"{action} needs run IDs or a selection of runs",
                hint=f"e.g. `autorun {action} ID…`, `autorun {action} --status {example} --since 2h`, "
                f"or `autorun list --status {example} -o id | autorun {action} - --yes`",
            )

    @property
    def many(self) -> bool:
        return self.selecting or len(self.ids) > 1 or STDIN in self.ids

    def query(self, s: Session, default_statuses: list[str]) -> ListQuery | None:
        if not self.selecting:
            return None
        from autorun_cli.cli.selection import build_query

        query = build_query(status=self.status, since=self.since, until=self.until,
                            limit=20 if self.limit is None else self.limit, all_=self.all_,
                            default_statuses=default_statuses)
        query.automation = s.settings.automation
        return query


def run_bulk(
    s: Session, action: str, selection: Selection, *, force: bool = False, from_step: str | None = None,
    dry_run: bool = False, yes: bool = False, wait: bool = False, interval: float = 2.0,
    timeout: float | None = None,
) -> None:
    """``retry``/``cancel`` over many runs, from the IDs or selection to the exit code."""
    from autorun_cli.status import RETRYABLE

    provider = s.provider
    # A provider that cannot do it at all refuses before any request (exit 4).
    require(provider, "retry_from" if from_step is not None else action)
    # Without --status, a selection chooses the runs the action applies to.
    default = sorted(RETRYABLE) if action == "retry" else ["pending", "running", "waiting"]
    bulk = Bulk(s, action, force=force, from_step=from_step)
    outcomes = bulk.prepare(selection.ids, selection.query(s, default))
    if not outcomes:
        s.out.info("no runs match" if selection.selecting else "no run IDs were given on stdin", style="dim")
        if s.out.mode == "json":
            s.out.print_json([])
        return
    if not dry_run:
        confirm(s.out, action, outcomes, from_step, yes, ids_on_stdin=STDIN in selection.ids)
    report = Report(s.out, action, dry_run=dry_run, width=max(len(o.id) for o in outcomes), wait=wait and not dry_run)
    for o in bulk.execute(outcomes, dry_run):
        report.add(o)
    if not report.wait:
        report.finish()
        return
    from autorun_cli.cli.following import follow_runs

    new = [o.new for o in report.seen if o.new is not None]
    runs, verdict = follow_runs(s, new, interval, timeout)
    final = {run.id: run.status for run in runs}
    for o in report.seen:
        o.final = final.get(o.new.id) if o.new is not None else None
    report.finish(after=verdict)
