"""``autorun completion SHELL``: print a shell completion script.

The scripts call back into autorun with ``_AUTORUN_COMPLETE`` set, which Typer
answers itself; the templates follow Typer's own (MIT).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

PROG = "autorun"
VAR = "_AUTORUN_COMPLETE"

SCRIPTS = {
    "bash": """\
# bash completion for autorun; source it or put it in bash-completion's directory.
_autorun_completion() {
    local IFS=$'\\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \\
                   COMP_CWORD=$COMP_CWORD \\
                   %(var)s=complete_bash $1 ) )
    return 0
}

complete -o default -F _autorun_completion %(prog)s
""",
    "zsh": """\
#compdef %(prog)s
# zsh completion for autorun; put it on $fpath as _autorun.

_autorun_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(var)s=complete_zsh %(prog)s)
}

compdef _autorun_completion %(prog)s
""",
    "fish": """\
# fish completion for autorun; put it in ~/.config/fish/completions/autorun.fish.
complete --command %(prog)s --no-files --arguments "(env %(var)s=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) %(prog)s)" --condition "env %(var)s=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args _TYPER_COMPLETE_ARGS=(commandline -cp) %(prog)s"
""",
}

FILES = {"bash": "autorun.bash", "zsh": "_autorun", "fish": "autorun.fish"}


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def script(shell: str) -> str:
    return SCRIPTS[shell] % {"prog": PROG, "var": VAR}


def completion(shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", case_sensitive=False)]) -> None:
    """Print the completion script for bash, zsh or fish (also in completions/)."""
    import sys

    sys.stdout.write(script(shell.value))


def register(app: typer.Typer, name: str = "completion") -> None:
    app.command("completion")(completion)
