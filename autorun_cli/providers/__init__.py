"""Provider registry: name → "module:Class", imported only when used.

Adding a provider is one module in this package and one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autorun_cli.errors import UsageError

if TYPE_CHECKING:
    from autorun_cli.providers.base import Provider, Settings

REGISTRY: dict[str, str] = {
    "plannr": "autorun_cli.providers.plannr:PlannrProvider",
    "sendrealm": "autorun_cli.providers.sendrealm:SendrealmProvider",
    "tenant": "autorun_cli.providers.tenant:TenantProvider",
    "generic": "autorun_cli.providers.generic:GenericProvider",
    "local": "autorun_cli.providers.local:LocalProvider",
}

NAMES = tuple(REGISTRY)


def provider_class(name: str) -> type[Provider]:
    import importlib

    target = REGISTRY.get(name)
    if target is None:
        raise UsageError(
            f"unknown provider {name!r}",
            hint="use one of: " + ", ".join(REGISTRY),
        )
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_provider(settings: Settings) -> Provider:
    """Build the provider for ``settings`` with its HTTP client (none for local)."""
    cls = provider_class(settings.provider)
    http = None
    if getattr(cls, "uses_http", True):
        from autorun_cli.http import HttpClient

        if not settings.base_url:
            raise UsageError(
                f"no base URL for the {settings.provider} provider",
                hint="pass --base-url URL, set AUTORUN_BASE_URL, or add one to the profile "
                "(autorun config add NAME --provider … --base-url …)",
            )
        http = HttpClient(
            settings.base_url,
            headers=cls.auth_headers(settings),
            secrets=settings.secrets,
            verbose=settings.verbose,
            error_parser=cls,
        )
    return cls(settings, http)
