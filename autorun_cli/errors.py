"""Every failure autorun reports, with its exit code, in one place.

Commands, providers and the HTTP layer raise these; the CLI renders any of them as
one ``error:`` line plus a ``hint:`` line and exits with ``exit_code``. Nothing here
imports rich or httpx, so it is cheap to import at start-up.
"""

from __future__ import annotations

# Exit codes of the contract (cli-contract.md, "Exit codes").
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_ALLOWED = 4
EXIT_SERVICE = 5
EXIT_WATCH_TIMEOUT = 6
EXIT_INTERRUPTED = 130


class AutorunError(Exception):
    """Base class: a message for the user, an optional hint and an exit code."""

    exit_code: int = EXIT_RUN_FAILED
    code: str = "error"

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}


class UsageError(AutorunError):
    """Bad usage or bad input: unknown value, malformed ID, unreadable file, bad TOML."""

    exit_code = EXIT_USAGE
    code = "usage"


class ConfigError(UsageError):
    code = "config"


class NotFoundError(AutorunError):
    exit_code = EXIT_NOT_FOUND
    code = "not_found"


class NotAllowedError(AutorunError):
    """Authentication or permission refused."""

    exit_code = EXIT_NOT_ALLOWED
    code = "not_allowed"


class AuthError(NotAllowedError):
    code = "unauthorized"


class NotSupportedError(NotAllowedError):
    """The provider does not offer the operation (contract: exit 4)."""

    code = "not_supported"


class ServiceError(AutorunError):
    """5xx after retries, connection/TLS failure, or a response of the wrong shape."""

    exit_code = EXIT_SERVICE
    code = "service"


class BadResponseError(ServiceError):
    code = "bad_response"


class RunFailedError(AutorunError):
    """A followed run ended failed/cancelled/timed_out, or replay diverged."""

    exit_code = EXIT_RUN_FAILED
    code = "run_failed"


class WatchTimeoutError(AutorunError):
    exit_code = EXIT_WATCH_TIMEOUT
    code = "timeout"



# Pydantic's wording (Typer validates typed options with it; the models use it too)
# → plain words, for every message that quotes a validation error.
_PLAIN = (
    (r"Field required", "is missing (required)"),
    (r"Extra inputs are not permitted", "is not a known field"),
    (r"Input should be a valid integer[^;\n]*", "must be a whole number"),
    (r"Input should be a finite number", "must be a finite number"),
    (r"Input should be a valid number[^;\n]*", "must be a number"),
    (r"Input should be a valid string", "must be text"),
    (r"Input should be a valid boolean[^;\n]*", "must be true or false"),
    (r"Input should be a valid dictionary[^;\n]*", "must be a table"),
    (r"Input should be a valid list", "must be a list"),
    (r"Input should be greater than or equal to ", "must be at least "),
    (r"Input should be greater than ", "must be more than "),
    (r"Input should be less than or equal to ", "must be at most "),
    (r"Input should be less than ", "must be less than "),
    (r"Input should be ", "must be "),
    (r"String should have ", "must have "),
    (r"List should have ", "must have "),
    (r"Value error, ", ""),
)


def replay_locally(run_id: str) -> str:
    """The command that replays a run the API cannot retry: on the local engine,
    against a definition drafted from the run itself (a user rarely has one at hand,
    and a hint must be a command that can succeed)."""
    import shlex

    run = shlex.quote(run_id)
    return f"autorun automations draft {run} -f draft.toml && autorun replay {run} -d draft.toml"


def plain_words(message: str) -> str:
    """A validation message as people say it: "must be a whole number", not "Input
    should be a valid integer, unable to parse string as an integer"."""
    import re

    for pattern, words in _PLAIN:
        message = re.sub(pattern, words, message)
    return message
