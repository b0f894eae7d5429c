"""BOINC's bin/status: only whether the project is enabled (the -v table layout is not pinned yet)."""

from __future__ import annotations

import pytest

from boincserver.boinc import status


@pytest.mark.parametrize("output, expected", [
    ("BOINC is ENABLED\n", True),
    ("BOINC is DISABLED\n", False),
    ("", None),
    ("bin/status: command not found\n", None),
    ("Not running as the BOINC user\n", None),
])
def test_enabled(output, expected):
    assert status.enabled(output) is expected


def test_enabled_found_among_other_lines():
    out = "some warning\nBOINC is ENABLED\n\nDAEMON  pid  status\n"
    assert status.enabled(out) is True
    assert status.enabled(out.replace("ENABLED", "DISABLED")) is False
