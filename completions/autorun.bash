# bash completion for autorun; source it or put it in bash-completion's directory.
_autorun_completion() {
    local IFS=$'\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _AUTORUN_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _autorun_completion autorun
