"""Acting on runs (retry, cancel): resolving the IDs given and refusing early.

Shared by the verbs that change runs, so each refuses an operation its provider
does not offer with one wording, before any request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autorun_cli.cli.session import Session
    from autorun_cli.providers.base import Provider


def resolve(s: Session, run_id: str) -> str:
    """A checked run ID (``@latest`` resolved), or a UsageError / NotFoundError."""
    from autorun_cli.fetch import LATEST, resolve_id

    checked = s.provider.validate_id(run_id) if run_id != LATEST else run_id
    return resolve_id(s.provider, checked, s.settings.automation)


def offers(provider: Provider, operation: str) -> bool:
    """Whether ``provider`` implements ``operation`` ("retry", "cancel")."""
    from autorun_cli.providers.base import Provider as Base

    return getattr(type(provider), operation) is not getattr(Base, operation)


def require(provider: Provider, operation: str, run_id: str) -> None:
    """Refuse an operation the provider does not offer, before any request.

    The base class's method raises the provider's NotSupportedError (with its hint,
    e.g. ``autorun replay ID``); calling it with a stub run keeps one wording.
    """
    from autorun_cli.model import Run
    from autorun_cli.providers.base import Provider as Base

    if not offers(provider, operation):
        getattr(Base, operation)(provider, Run(id=run_id, provider=provider.name))
