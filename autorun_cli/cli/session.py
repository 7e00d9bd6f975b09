"""Per-command state: resolved settings, the provider, the output object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autorun_cli import textsafe
from autorun_cli.cli.options import Opts
from autorun_cli.cli.output import Output

if TYPE_CHECKING:
    from autorun_cli.providers.base import Provider, Settings


class Session:
    def __init__(self, opts: Opts):
        self.opts = opts
        textsafe.set_secrets(())  # none known until the settings are resolved
        self.out = Output(opts)
        self._settings: Settings | None = None
        self._provider: Provider | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from autorun_cli import config

            self._settings = config.resolve(self.opts)
            # From here on every output of the command masks them (textsafe).
            textsafe.set_secrets(self._settings.secrets)
        return self._settings

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            from autorun_cli.providers import make_provider

            self._provider = make_provider(self.settings)
        return self._provider

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
