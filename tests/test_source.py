"""Which BOINC commit a source tarball holds, and finding the pinned source."""

from __future__ import annotations

import os
import subprocess
import tarfile

import pytest

from boincserver import boinc_source, paths, pins
from boincserver.boinc.source import tarball_commit, tarball_top_folder
from boincserver.errors import BoincServerError, SourceError

from conftest import GIT_ENV

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
PIN = pins.BOINC_COMMIT


def files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- tarball_commit / tarball_top_folder -------------------------------------------------------
def test_tarball_commit_from_pax_global_header(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "boinc.tar.gz", COMMIT, top=f"boinc-{COMMIT}")
    assert tarball_commit(path) == COMMIT


def test_tarball_commit_uncompressed(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "boinc.tar", COMMIT, compress=False)
    assert tarball_commit(path) == COMMIT


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tarball_without_pax_header_has_no_commit(tmp_path, make_tarball, fmt):
    path = make_tarball(tmp_path / "boinc.tar.gz", None, fmt=fmt)
    assert tarball_commit(path) is None


@pytest.mark.parametrize("comment", ["hello", COMMIT[:39], COMMIT + "0", COMMIT.upper(), "", "v1.6.2"])
def test_tarball_comment_that_is_not_a_commit_id(tmp_path, make_tarball, comment):
    path = make_tarball(tmp_path / "boinc.tar.gz", comment)
    assert tarball_commit(path) is None


def test_tarball_comment_whitespace_is_ignored(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "boinc.tar.gz", f"  {COMMIT}\n")
    assert tarball_commit(path) == COMMIT


def test_per_member_pax_comment_is_not_a_commit(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "boinc.tar.gz", None, member_pax={"comment": COMMIT})
    assert tarball_commit(path) is None


def test_git_archive_tarball_carries_its_commit(tmp_path, git_repo):
    folder, head = git_repo
    out = tmp_path / "archive.tar.gz"
    subprocess.run(["git", "-C", str(folder), "archive", "--format=tar.gz", f"--prefix=boinc-{head}/",
                    "-o", str(out), head], check=True, capture_output=True, env=dict(os.environ, **GIT_ENV))
    assert tarball_commit(out) == head
    assert tarball_top_folder(out) == f"boinc-{head}"


def test_tarball_top_folder(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "boinc.tar.gz", COMMIT, top=f"boinc-{COMMIT}")
    assert tarball_top_folder(path) == f"boinc-{COMMIT}"


def test_tarball_top_folder_without_folder_entry(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "boinc.tar.gz", COMMIT, top="boinc-x", dir_entry=False)
    assert tarball_top_folder(path) == "boinc-x"


def test_tarball_top_folder_of_empty_tarball(tmp_path, make_tarball):
    path = make_tarball(tmp_path / "empty.tar.gz", None, files={}, dir_entry=False)
    assert tarball_top_folder(path) is None


def test_not_a_tarball_raises(tmp_path):
    path = tmp_path / "x.tar.gz"
    path.write_text("not a tarball")
    with pytest.raises(tarfile.TarError):
        tarball_commit(path)


# -- boinc_source.resolve --------------------------------------------------------------------
def test_cache_follows_environment(isolated):
    assert paths.boinc_tarball_cache() == isolated / "boinc" / f"boinc-{PIN}.tar.gz"


def test_pinned_tarball_is_accepted_and_cached(tmp_path, make_tarball, isolated):
    src = make_tarball(tmp_path / "src" / "boinc.tar.gz", PIN, top=f"boinc-{PIN}")
    got = boinc_source.resolve(str(src), download=False)
    assert got == paths.boinc_tarball_cache()
    assert got.is_file()
    assert got.read_bytes() == src.read_bytes()
    assert src.is_file()  # the given file is copied, not moved
    assert files_under(isolated) == [got]  # no .part left behind
    assert tarball_commit(got) == PIN


def test_pinned_tarball_from_environment(tmp_path, make_tarball, monkeypatch):
    src = make_tarball(tmp_path / "src" / "boinc.tar.gz", PIN)
    monkeypatch.setenv(boinc_source.ENV_SOURCE, str(src))
    got = boinc_source.resolve(download=False)
    assert got == paths.boinc_tarball_cache()
    assert got.read_bytes() == src.read_bytes()


def test_given_source_wins_over_environment(tmp_path, make_tarball, monkeypatch):
    good = make_tarball(tmp_path / "good.tar.gz", PIN)
    monkeypatch.setenv(boinc_source.ENV_SOURCE, str(tmp_path / "missing.tar.gz"))
    assert boinc_source.resolve(good, download=False).read_bytes() == good.read_bytes()


def test_tarball_of_another_commit_is_refused(tmp_path, make_tarball, isolated):
    src = make_tarball(tmp_path / "src" / "boinc.tar.gz", OTHER)
    with pytest.raises(SourceError) as exc:
        boinc_source.resolve(src, download=False)
    assert PIN in str(exc.value)
    assert OTHER in str(exc.value)
    assert files_under(isolated) == []


def test_tarball_without_commit_is_refused(tmp_path, make_tarball, isolated):
    src = make_tarball(tmp_path / "src" / "boinc.tar.gz", None)
    with pytest.raises(SourceError, match="no commit id"):
        boinc_source.resolve(src, download=False)
    assert files_under(isolated) == []


def test_unreadable_tarball_is_refused(tmp_path, isolated):
    src = tmp_path / "boinc.tar.gz"
    src.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(SourceError, match="not a readable tarball"):
        boinc_source.resolve(src, download=False)
    assert files_under(isolated) == []


def test_missing_source_is_refused(tmp_path, isolated):
    with pytest.raises(SourceError, match="does not exist"):
        boinc_source.resolve(tmp_path / "nowhere.tar.gz", download=False)
    assert files_under(isolated) == []


def test_folder_that_is_not_a_git_checkout_is_refused(tmp_path, isolated):
    folder = tmp_path / "boinc"
    folder.mkdir()
    (folder / "configure.ac").write_text("AC_INIT\n")
    with pytest.raises(SourceError, match="not a git checkout"):
        boinc_source.resolve(folder, download=False)
    assert files_under(isolated) == []


def test_git_checkout_without_pinned_commit_is_refused(git_repo, isolated):
    folder, _head = git_repo
    with pytest.raises(SourceError) as exc:
        boinc_source.resolve(folder, download=False)
    assert "does not contain" in str(exc.value)
    assert PIN in str(exc.value)
    assert files_under(isolated) == []


def test_git_checkout_with_pinned_commit_is_archived(git_repo, monkeypatch, isolated):
    # Pretend the pin is this repository's commit: resolve must `git archive` exactly it.
    folder, head = git_repo
    monkeypatch.setattr(pins, "BOINC_COMMIT", head)
    got = boinc_source.resolve(folder, download=False)
    assert got.is_file()
    assert got.parent == isolated / "boinc"
    assert tarball_commit(got) == head
    assert tarball_top_folder(got) == f"boinc-{head}"
    with tarfile.open(got) as tar:
        assert f"boinc-{head}/README" in tar.getnames()
    assert files_under(isolated) == [got]


def test_empty_cache_without_download_is_refused_with_advice(isolated):
    with pytest.raises(SourceError) as exc:
        boinc_source.resolve(download=False)
    assert "--boinc-src" in (exc.value.advice or "")
    assert PIN in str(exc.value)
    assert isinstance(exc.value, BoincServerError)


def test_cached_tarball_is_used(make_tarball):
    cache = make_tarball(paths.boinc_tarball_cache(), PIN)
    before = cache.read_bytes()
    assert boinc_source.cached() == cache
    assert boinc_source.resolve(download=False) == cache
    assert cache.read_bytes() == before


def test_cached_tarball_of_another_commit_is_refused(make_tarball):
    make_tarball(paths.boinc_tarball_cache(), OTHER)
    with pytest.raises(SourceError, match=OTHER):
        boinc_source.resolve(download=False)


def test_giving_the_cached_tarball_itself_keeps_it(make_tarball):
    cache = make_tarball(paths.boinc_tarball_cache(), PIN)
    before = cache.read_bytes()
    assert boinc_source.resolve(cache, download=False) == cache
    assert cache.read_bytes() == before


def test_cached_is_none_when_empty():
    assert boinc_source.cached() is None


def test_expected_names_release_and_commit():
    text = boinc_source.expected()
    assert pins.BOINC_RELEASE in text and PIN in text


# -- boinc_source.resolve_client: the same ways, for the volunteer client's pinned commit ------
CLIENT_PIN = pins.CLIENT_COMMIT


@pytest.fixture
def no_client_env(monkeypatch):
    monkeypatch.delenv(boinc_source.ENV_CLIENT_SOURCE, raising=False)


def test_client_and_server_pins_are_different_commits():
    assert CLIENT_PIN != PIN
    assert paths.boinc_tarball_cache(CLIENT_PIN) != paths.boinc_tarball_cache()


def test_client_tarball_is_accepted_and_cached_beside_the_server_one(tmp_path, make_tarball, isolated, no_client_env):
    src = make_tarball(tmp_path / "src" / "client.tar.gz", CLIENT_PIN, top=f"boinc-{CLIENT_PIN}")
    got = boinc_source.resolve_client(src, download=False)
    assert got == paths.boinc_tarball_cache(CLIENT_PIN) == isolated / "boinc" / f"boinc-{CLIENT_PIN}.tar.gz"
    assert got.read_bytes() == src.read_bytes()
    assert boinc_source.cached(boinc_source.client_source()) == got
    assert boinc_source.cached() is None  # the server's cache is untouched


def test_client_resolve_refuses_the_server_tarball(tmp_path, make_tarball, isolated, no_client_env):
    src = make_tarball(tmp_path / "server.tar.gz", PIN)
    with pytest.raises(SourceError) as exc:
        boinc_source.resolve_client(src, download=False)
    assert CLIENT_PIN in str(exc.value) and pins.CLIENT_RELEASE in str(exc.value)
    assert files_under(isolated) == []


def test_server_resolve_refuses_the_client_tarball(tmp_path, make_tarball, isolated):
    src = make_tarball(tmp_path / "client.tar.gz", CLIENT_PIN)
    with pytest.raises(SourceError, match=CLIENT_PIN):
        boinc_source.resolve(src, download=False)


def test_client_tarball_from_its_own_environment_variable(tmp_path, make_tarball, monkeypatch):
    src = make_tarball(tmp_path / "client.tar.gz", CLIENT_PIN)
    monkeypatch.setenv(boinc_source.ENV_CLIENT_SOURCE, str(src))
    monkeypatch.setenv(boinc_source.ENV_SOURCE, str(tmp_path / "missing.tar.gz"))
    assert boinc_source.resolve_client(download=False).read_bytes() == src.read_bytes()


def test_client_cache_is_used(make_tarball, no_client_env):
    cache = make_tarball(paths.boinc_tarball_cache(CLIENT_PIN), CLIENT_PIN)
    assert boinc_source.resolve_client(download=False) == cache


def test_client_empty_cache_without_download_names_the_client_option(isolated, no_client_env):
    with pytest.raises(SourceError) as exc:
        boinc_source.resolve_client(download=False)
    assert "--client-src" in (exc.value.advice or "")
    assert CLIENT_PIN in str(exc.value)


def test_client_git_checkout_with_pinned_commit_is_archived(git_repo, monkeypatch, isolated, no_client_env):
    folder, head = git_repo
    monkeypatch.setattr(pins, "CLIENT_COMMIT", head)
    got = boinc_source.resolve_client(folder, download=False)
    assert got == isolated / "boinc" / f"boinc-{head}.tar.gz"
    assert tarball_commit(got) == head and tarball_top_folder(got) == f"boinc-{head}"


def test_client_download_names_the_client_commit(monkeypatch, isolated, no_client_env):
    asked = []

    def refuse(url, timeout):
        asked.append(url)
        raise OSError("offline")
    monkeypatch.setattr(boinc_source.urllib.request, "urlopen", refuse)
    with pytest.raises(SourceError) as exc:
        boinc_source.resolve_client()
    assert asked == [pins.BOINC_ARCHIVE_URL.format(commit=CLIENT_PIN)]
    assert boinc_source.ENV_CLIENT_SOURCE in exc.value.advice
