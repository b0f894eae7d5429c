from boincserver.cli import main

main()
