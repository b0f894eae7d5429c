"""boincserver: a self-hosted BOINC project server as a Docker Compose stack."""

__version__ = "0.1.0"
