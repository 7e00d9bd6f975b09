# fish completion for autorun; put it in ~/.config/fish/completions/autorun.fish.
complete --command autorun --no-files --arguments "(env _AUTORUN_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) autorun)" --condition "env _AUTORUN_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args _TYPER_COMPLETE_ARGS=(commandline -cp) autorun"
