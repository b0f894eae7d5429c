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


# The <config> elements that say how BOINC's programs reach the project's database.
DATABASE_ELEMENTS = ("db_host", "db_user", "db_passwd", "db_name")


def database_settings(text: str) -> dict[str, str]:
    """db_host, db_user, db_passwd and db_name as config.xml has them ("" where absent)."""
    return {tag: get_element(text, tag) or "" for tag in DATABASE_ELEMENTS}


def key_dir(text: str) -> str | None:
    """The folder of the project's keys (update_versions signs with its code_sign_private)."""
    folder = get_element(text, "key_dir")
    return folder.rstrip("/") if folder else None


def with_recaptcha_keys(text: str, public: str, private: str) -> str:
    """config.xml with the reCAPTCHA key pair BOINC's web pages use."""
    return set_element(set_element(text, "recaptcha_public_key", public), "recaptcha_private_key", private)
