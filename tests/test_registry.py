"""Registry names, tags and OCI labels: pure functions."""

from __future__ import annotations

import subprocess

import pytest

from boincserver import registry
from boincserver.errors import InvalidInput
from boincserver.settings import Settings


@pytest.mark.parametrize("remote,url", [
    ("git@github.com:acme/proj.git", "https://github.com/acme/proj"),
    ("ssh://git@example.org/acme/proj.git", "https://example.org/acme/proj"),
    ("https://bot:s3cr3t@example.org/acme/proj.git", "https://example.org/acme/proj"),
    ("https://example.org:8443/acme/proj/", "https://example.org:8443/acme/proj"),
    ("/srv/git/proj.git", None),
])
def test_public_url_never_keeps_credentials(remote, url):
    assert registry.public_url(remote) == url


def test_latest_is_refused():
    with pytest.raises(InvalidInput, match="latest"):
        registry.check_tag("latest")
    assert registry.check_tag("v1.2-rc_3") == "v1.2-rc_3"
    for bad in ("", "-x", ".x", "a b", "a:b", "x" * 129):
        with pytest.raises(InvalidInput):
            registry.check_tag(bad)


@pytest.mark.parametrize("good", ["ghcr.io/acme", "127.0.0.1:5000", "127.0.0.1:5000/ci", "localhost",
                                  "registry.example.org/a/b"])
def test_registry_names(good):
    assert registry.check_registry(good + "/") == good


@pytest.mark.parametrize("bad", ["https://ghcr.io/acme", "acme", "GHCR.io/acme", "ghcr.io/Acme", "a b"])
def test_bad_registry_names(bad):
    with pytest.raises(InvalidInput):
        registry.check_registry(bad)


def test_references():
    assert registry.reference("ghcr.io/acme", "boincserver-demo", "apache", "v1") == \
        "ghcr.io/acme/boincserver-demo/apache:v1"
    assert registry.reference("", "boincserver-demo", "apache", "v1") == "boincserver-demo/apache:v1"
    tag = registry.content_tag("0.1.0", "ab" * 32)
    assert tag == "0.1.0-in" + "ab" * 10 and registry.TAG_RE.match(tag)


def test_labels_without_git_have_no_revision_nor_created():
    labels = registry.oci_labels("0.1.0", "c0ffee", {})
    assert labels == {"org.opencontainers.image.version": "0.1.0", "org.boincserver.boinc-commit": "c0ffee"}


def test_git_facts(tmp_path):
    assert registry.git_facts(tmp_path) == {}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(tmp_path)]
    subprocess.run(git + ["init", "-q"], check=True)
    (tmp_path / "f").write_text("x\n")
    subprocess.run(git + ["add", "f"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "m"], check=True, env={
        "GIT_COMMITTER_DATE": "2024-01-02T03:04:05+00:00", "PATH": "/usr/bin:/bin"})
    subprocess.run(git + ["remote", "add", "origin", "git@example.org:acme/p.git"], check=True)
    facts = registry.git_facts(tmp_path)
    assert len(facts["revision"]) == 40
    assert facts["created"] == "2024-01-02T03:04:05+00:00"  # the commit's time: the same at every build
    assert facts["source"] == "https://example.org/acme/p"
    labels = registry.oci_labels("0.1.0", "c0ffee", facts)
    assert labels["org.opencontainers.image.revision"] == facts["revision"]


def test_registry_setting_is_checked():
    assert Settings(project="demo", registry="ghcr.io/acme/").registry == "ghcr.io/acme"
    with pytest.raises(InvalidInput):
        Settings(project="demo", registry="https://ghcr.io/acme")
