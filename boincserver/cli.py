"""Kept for the old import path (bench/jobs.py imports main from here); the CLI is boincserver/commands/."""

from boincserver.commands.cli import app, main

__all__ = ["app", "main"]
