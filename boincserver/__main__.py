from boincserver.commands.cli import main

main()
