"""The command line, one module per command group; cli.py is the root and main()."""
