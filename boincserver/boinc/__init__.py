"""BOINC knowledge as pure functions: no Docker, no terminal, no third-party imports.

This package is also copied into the makeproject image, where the project set-up script
imports it, so it must stay standard-library only.
"""
