"""Editing BOINC's config.xml as text, keeping everything else of the file as it is.

make_project writes elements whose empty text spans several lines, and BOINC's PHP reads
config.xml with plain string search (the first occurrence wins, no XML unescaping), so the
file is edited in place rather than re-serialised.
"""

from __future__ import annotations

import re


def get_element(text: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    if m:
        return m.group(1).strip()
    return "" if re.search(rf"<{tag}\s*/>", text) else None


def set_element(text: str, tag: str, value: str) -> str:
    """Set the first <tag> inside <config>, adding it at the end of <config> if absent."""
    if any(c in value for c in "<>&"):
        raise ValueError(f"{tag}: a value with <, > or & cannot be written (BOINC's PHP does not unescape)")
    pattern = re.compile(rf"<{tag}>.*?</{tag}>|<{tag}\s*/>", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: f"<{tag}>{value}</{tag}>", text, count=1)
    m = re.search(r"</config>", text)
    if not m:
        raise ValueError("config.xml has no <config> section")
    return f"{text[:m.start()]}    <{tag}>{value}</{tag}>\n  {text[m.start():]}"
