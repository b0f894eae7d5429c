"""The first page a volunteer sees, on the session's shared stack: a project page (long name,
description, forums, a first news item), not BOINC's notes to the operator; long_name and
description from boincserver.toml applied by `up`; about.php served. Then a screenshot by
Debian's headless Chromium (`./run test` installs chromium-headless-shell and fonts-dejavu-core),
written over docs/home.png when BOINCSERVER_UPDATE_SCREENSHOT=1. The shared stack's settings are
put back afterwards."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tests.stack.conftest import Stack, apache_sh, run_cli, sql

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium-headless-shell")
SCREENSHOT = Path(__file__).parents[2] / "docs" / "home.png"
LONG_NAME = "Primes@Home"
DESCRIPTION = ("Primes@Home looks for large prime numbers & twin primes with the spare time of "
               "volunteers' computers.\n\nEach task tests a range of numbers and sends back the primes it "
               "found. Join, install BOINC, and your computer takes part while you are not using it.")
BOINC_NOTES = ("No news forum", "No project description", "REPLACE WITH")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def project_page(stack: Stack, page: str = "") -> str:
    status, body = get(f"{stack.local}/{stack.project}/{page}")
    assert status == 200, (page, status, body[:500])
    return body


def forum_counts(stack: Stack) -> tuple[int, int]:
    categories, forums = sql(stack.dir, stack.project,
                             "SELECT (SELECT COUNT(*) FROM category), (SELECT COUNT(*) FROM forum)").split()
    return int(categories), int(forums)


def set_home_page(stack: Stack, long_name: str, description: str) -> None:
    """As an operator would: the settings file, then `up`."""
    from boincserver import settings
    settings.save(stack.dir, settings.load(stack.dir).with_changes(long_name=long_name, description=description))
    run_cli("up", cwd=stack.dir)


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many different filtered rows the image has. A one-colour image has
    at most 10 (five PNG filters, each giving one row for the first line and one for the rest)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = len(raw) // height
    return width, height, len({raw[i:i + stride] for i in range(0, len(raw), stride)})


def screenshot(stack: Stack, out: Path) -> bytes:
    """The home page as a volunteer's browser draws it; every host but 127.0.0.1 unresolvable, so
    nothing leaves this machine (BOINC's pages load jQuery from a CDN: it fails at once)."""
    done = subprocess.run(
        [CHROMIUM, "--no-sandbox", "--hide-scrollbars", "--window-size=1280,900", "--virtual-time-budget=5000",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--screenshot={out}",
         f"{stack.local}/{stack.project}/"], capture_output=True, text=True, timeout=120)
    assert out.is_file(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return out.read_bytes()


def test_the_home_page_is_a_project_page(stack: Stack, tmp_path):
    # As `init` and `up` leave it: the short name, a default description, forums, a welcome.
    home = project_page(stack)
    for note in BOINC_NOTES:
        assert note not in home
    assert "is a volunteer computing project" in home
    assert f"{stack.project} is open" in home  # motd.php's welcome
    assert forum_counts(stack) == (3, 10)  # html/ops/create_forums.php's set
    assert "is a volunteer computing project" in project_page(stack, "about.php")
    assert "News is available as an" in home  # news.inc found the News forum

    settings_file = stack.dir / "boincserver.toml"
    original = settings_file.read_text()
    try:
        set_home_page(stack, LONG_NAME, DESCRIPTION)
        home = project_page(stack)
        assert f"<title>{LONG_NAME}</title>" in home
        assert f"What is {LONG_NAME}?" in home and f"Join {LONG_NAME}" in home and f"{LONG_NAME} is open" in home
        assert "large prime numbers &amp; twin primes" in home and "is a volunteer computing project" not in home
        assert re.search(rf"&copy; \d{{4}}\s+{re.escape(LONG_NAME)}</center>", home)  # COPYRIGHT_HOLDER followed
        for note in BOINC_NOTES:
            assert note not in home
        about = project_page(stack, "about.php")
        assert f"About {LONG_NAME}" in about and "Each task tests a range of numbers" in about
        assert f"<long_name>{LONG_NAME}</long_name>" in apache_sh(stack.dir, "cat config.xml")
        assert forum_counts(stack) == (3, 10)  # the second start added none
        for php_error in ("<b>Warning</b>", "<b>Notice</b>", "<b>Deprecated</b>"):
            assert php_error not in home  # display_errors() is off

        if not CHROMIUM:
            import pytest
            pytest.skip("no chromium-headless-shell: `./run test` installs it (apt), or set CHROMIUM")
        png = screenshot(stack, tmp_path / "home.png")
        width, height, rows = png_facts(png)
        assert width >= 1280 and height >= 900, (width, height)
        assert rows > 10, f"a one-colour screenshot ({rows} distinct rows): the page was not drawn"
        if os.environ.get("BOINCSERVER_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            SCREENSHOT.write_bytes(png)
    finally:
        settings_file.write_text(original)
        run_cli("up", cwd=stack.dir)
