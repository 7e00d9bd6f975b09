from autorun_cli.cli.app import main

main()
