"""BOINC knowledge as pure functions: no Docker, no terminal, no third-party imports.

This package is also shipped into the apache and makeproject images, where the programs of
boincserver.container import it, so it must stay standard-library only: each fact about
BOINC lives here once, for the host and the containers alike.
"""
