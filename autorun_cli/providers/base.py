"""The provider interface: one subclass per API style, registered in ``__init__``.

A provider builds paths, passes what filters it can to the server, and maps the
vendor's JSON onto :mod:`autorun_cli.model`. Transport, retries and pagination
live in :mod:`autorun_cli.http`; rendering lives in :mod:`autorun_cli.render`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from autorun_cli.errors import NotSupportedError, UsageError, replay_locally

if TYPE_CHECKING:
    from autorun_cli.http import HttpClient
    from autorun_cli.model import Run

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# IDs go into URL paths: refuse anything that could change the path or query.
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@~-]{0,199}$")


# Settings, ListQuery and EventRequest are plain slotted classes, not dataclasses:
# this module loads on every command, and building a dataclass costs start-up time.
class _Record:
    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (like dataclasses.replace)."""
        return type(self)(**{**{n: getattr(self, n) for n in self.__slots__}, **changes})


class Settings(_Record):
    """Everything resolved from flags, env, profile and defaults for one command."""

    __slots__ = ("provider", "profile", "base_url", "token", "tenant", "account", "automation", "home", "verbose", "paths",
                 "engine_url")

    def __init__(
        self,
        provider: str = "local",
        profile: str | None = None,
        base_url: str | None = None,
        token: str | None = None,
        tenant: str | None = None,
        account: str | None = None,
        automation: str | None = None,
        home: str | None = None,
        verbose: bool = False,
        # Per-profile path overrides: list_path, get_path, retry_path, cancel_path...
        paths: dict[str, str] | None = None,
        # The local engine's store (sqlite:///PATH, postgresql://…); None: <home>/engine.db.
        engine_url: str | None = None,
    ):
        self.provider = provider
        self.profile = profile
        self.base_url = base_url
        self.token = token
        self.tenant = tenant
        self.account = account
        self.automation = automation
        self.home = home
        self.verbose = verbose
        self.paths = {} if paths is None else paths
        self.engine_url = engine_url

    @property
    def secrets(self) -> list[str]:
        from autorun_cli.textsafe import url_password

        return [s for s in (self.token, url_password(self.base_url)) if s]


class ListQuery(_Record):
    """``autorun list`` filters in normalized terms."""

    __slots__ = ("statuses", "uuids", "client_uuids", "automation", "since", "until", "sort", "limit")

    def __init__(
        self,
        statuses: list[str] | None = None,
        uuids: list[str] | None = None,
        client_uuids: list[str] | None = None,
        automation: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        # "-created_at" (default, newest first), "name", "-status"...
        sort: str = "-created_at",
        # None = every page (--all).
        limit: int | None = 20,
    ):
        self.statuses = [] if statuses is None else statuses
        self.uuids = [] if uuids is None else uuids
        self.client_uuids = [] if client_uuids is None else client_uuids
        self.automation = automation
        self.since = since
        self.until = until
        self.sort = sort
        self.limit = limit

    @property
    def sort_field(self) -> str:
        return self.sort.lstrip("-+")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


class EventRequest(_Record):
    """An inbound event for ``events send`` (local engine or Sendrealm POST /events)."""

    __slots__ = ("event", "payload", "email", "contact_id", "external_id", "occurred_at", "idempotency_key")

    def __init__(
        self,
        event: str,
        payload: dict[str, Any] | None = None,
        email: str | None = None,
        contact_id: str | None = None,
        external_id: str | None = None,
        occurred_at: str | None = None,
        idempotency_key: str | None = None,
    ):
        self.event = event
        self.payload = {} if payload is None else payload
        self.email = email
        self.contact_id = contact_id
        self.external_id = external_id
        self.occurred_at = occurred_at
        self.idempotency_key = idempotency_key


class Provider(ABC):
    """One API style. Subclasses set ``name`` and implement listing and fetching."""

    name: ClassVar[str]
    # Sort orders the server can apply itself ("-created_at", "created_at", ...).
    # For any other order, list buffers and sorts on the client.
    server_sorts: ClassVar[frozenset[str]] = frozenset({"-created_at"})
    # The server may be given the filter but the client always re-applies every
    # filter, so a provider that ignores one stays correct.
    needs_automation: ClassVar[bool] = False
    # ListQuery filters the server applies itself: "status", "uuid", "client_uuids",
    # "since", "until", "automation". The CLI re-applies every other filter on the
    # client; one the server applied is not re-checked, since list items may lack
    # the field (plannr lists carry no client account).
    server_filters: ClassVar[frozenset[str]] = frozenset()
    # False for providers with no server (local): no base URL, no HttpClient.
    uses_http: ClassVar[bool] = True

    @classmethod
    def auth_headers(cls, settings: Settings) -> dict[str, str]:
        """Headers that authenticate every request (default: a bearer token)."""
        return {"Authorization": f"Bearer {settings.token}"} if settings.token else {}

    @staticmethod
    def error_message(body: Any) -> str | None:
        """The API's own message from an error body (see ``http.ErrorHooks``)."""
        from autorun_cli.http import default_error_message

        return default_error_message(body)

    @staticmethod
    def classify_error(status: int, message: str) -> Any:
        """An AutorunError to raise instead of the status-based default, or None."""
        return None

    def __init__(self, settings: Settings, http: HttpClient | None = None):
        self.settings = settings
        self.http = http

    @property
    def pages_read(self) -> int:
        """List pages read so far, for progress (``1,200 runs · 12 pages``)."""
        return self.http.pages if self.http is not None else 0

    # -- documents given by the user (replay) ------------------------------
    @classmethod
    def recognizes(cls, doc: Any) -> bool:
        """Whether ``doc`` is this API's own run document (as saved by a user)."""
        return False

    @classmethod
    def map_document(cls, doc: Any) -> Run:
        """Map this API's own run document onto the model (see ``recognizes``)."""
        raise UsageError(f"the {cls.name} provider cannot read saved documents", hint="pass a run ID instead")

    # -- identifiers -------------------------------------------------------
    def validate_id(self, run_id: str) -> str:
        """Refuse a malformed run ID before any request (exit 2)."""
        if not SAFE_ID_RE.match(run_id or ""):
            raise UsageError(
                f"malformed run ID {run_id!r}",
                hint="run IDs are letters, digits and - _ . : ; list them with `autorun list`",
            )
        return run_id

    def require_automation(self) -> str:
        if not self.settings.automation:
            raise UsageError(
                f"the {self.name} API lists and fetches runs per automation, and none was given",
                hint="pass --automation ID or set AUTORUN_AUTOMATION_ID (or `automation` in the profile)",
            )
        return self.settings.automation

    def path(self, key: str, default: str, **values: str) -> str:
        """A path template, overridable per profile (``list_path``...), filled in."""
        from autorun_cli.config import fill_path

        # Only {id}, {automation}, {automation_id}; never str.format, whose format
        # specs ("{id:>99999999999}") a profile could use to exhaust memory.
        return fill_path(key, self.settings.paths.get(key) or default, values)

    # -- reading -----------------------------------------------------------
    @abstractmethod
    def iter_runs(self, query: ListQuery) -> Iterator[Run]:
        """Yield runs lazily, page by page, passing the filters the API knows."""

    def iter_run_documents(self, query: ListQuery) -> Iterator[dict[str, Any]] | None:
        """The runs ``query`` selects, in full, as normalized JSON, page by page — for
        a provider whose listing holds whole runs (local). None elsewhere: each run is
        then fetched on its own (``stats`` does it concurrently)."""
        return None

    @abstractmethod
    def get_run(self, run_id: str) -> Run:
        """Fetch one run in full."""

    def get_run_document(self, run_id: str, raw: bool = False) -> dict[str, Any]:
        """One run as normalized JSON (``Run.to_json``). A provider may answer
        without building the model when it can (local: no pydantic at start-up)."""
        return self.get_run(run_id).to_json(raw=raw)

    def latest_id(self, query: ListQuery) -> str | None:
        for run in self.iter_runs(ListQuery(automation=query.automation, limit=1)):
            return run.id
        return None

    def tick(self) -> None:  # noqa: B027 - a hook: a no-op unless a provider needs it
        """Called by ``watch`` before each poll. Remote APIs advance on their own;
        the local engine overrides this to run its due timers and retries, so a
        waiting run being watched really reaches its timeout."""

    # -- acting ------------------------------------------------------------
    def check_retry(self, run: Run, force: bool = False) -> None:  # noqa: B027 - a hook: a no-op unless a provider knows better
        """Refuse, before any request, a retry the API is known to refuse (exit 4).

        ``run`` is the run as just fetched; ``force`` is the user's --force. The
        default accepts everything and leaves the decision to the command and the API.
        """

    def retry(self, run: Run) -> Run:
        raise NotSupportedError(
            f"the {self.name} API offers no retry for a run",
            hint=f"replay it on the local engine instead: {replay_locally(run.id)}",
        )

    def retry_from(self, run: Run, step_key: str) -> Run:
        """Start ``run`` again at step ``step_key``; the steps before keep their results."""
        if type(self).retry is Provider.retry:
            hint = f"replay it on the local engine instead: {replay_locally(run.id)}"
        else:
            hint = (
                f"retry the whole run without --from-step (`autorun retry {run.id}`), or replay it locally "
                f"from any step: {replay_locally(run.id)}"
            )
        raise NotSupportedError(f"the {self.name} API cannot start a run again from a chosen step", hint=hint)

    def cancel(self, run: Run) -> Run:
        raise NotSupportedError(
            f"the {self.name} API offers no way to cancel a run",
            hint="cancel is available on the generic and local providers",
        )

    def send_event(self, event: EventRequest) -> dict[str, Any]:
        raise NotSupportedError(
            f"the {self.name} API has no events endpoint autorun can post to",
            hint="events send works with --provider sendrealm or local",
        )

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
