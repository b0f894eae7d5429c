"""Project names, BOINC users, project roots and URL_BASE."""

from __future__ import annotations

import pytest

from boincserver.boinc import naming
from boincserver.boinc.naming import NameError_


# -- project names ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["demo", "my_project", "a", "p2", "x" * 32, "2024_run"])
def test_valid_project_names(name):
    assert naming.check_project_name(name) == name


@pytest.mark.parametrize("name", ["", None, "Demo", "my-project", "my project", "x" * 33, "démo",
                                  "a.b", "../x", "demo;drop"])
def test_invalid_project_names(name):
    with pytest.raises(NameError_) as exc:
        naming.check_project_name(name)
    assert "project name" in str(exc.value)
    assert "lowercase" in str(exc.value)


@pytest.mark.parametrize("name", ["mysql", "information_schema", "performance_schema", "sys"])
def test_project_name_refuses_mariadb_system_databases(name):
    with pytest.raises(NameError_):
        naming.check_project_name(name)


# -- BOINC users --------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["boincadm", "alice2", "boinc-adm", "boinc_adm", "a" * 32])
def test_valid_boinc_users(user):
    assert naming.check_boinc_user(user) == user


@pytest.mark.parametrize("user", ["root", "", None, "Boincadm", "1user", "-user", "a" * 33,
                                  "user name", "user:x", "usér"])
def test_invalid_boinc_users(user):
    with pytest.raises(NameError_) as exc:
        naming.check_boinc_user(user)
    assert "BOINC user" in str(exc.value)


def test_root_is_refused_with_a_reason():
    with pytest.raises(NameError_, match="not a system user such as root"):
        naming.check_boinc_user("root")


@pytest.mark.parametrize("user", ["www-data", "daemon", "nobody"])
def test_boinc_user_refuses_existing_system_users(user):
    with pytest.raises(NameError_):
        naming.check_boinc_user(user)


# -- project roots ------------------------------------------------------------------------
@pytest.mark.parametrize("root", ["/home/boincadm/project", "/srv/boinc", "/opt/boinc-1.6/proj_x",
                                  "/home/Alice/Project.d"])
def test_valid_project_roots(root):
    assert naming.check_project_root(root) == root


@pytest.mark.parametrize("root", ["", None, "/", "/home", "home/boincadm", "relative",
                                  "/home//boincadm", "/home/boinc adm", "/home/$USER/project",
                                  "/home/x;rm", "~/project"])
def test_invalid_project_roots(root):
    with pytest.raises(NameError_) as exc:
        naming.check_project_root(root)
    assert "project root" in str(exc.value)
    assert "absolute path" in str(exc.value)


@pytest.mark.parametrize("root", ["/home/..", "/../etc", "/home/./project"])
def test_project_root_refuses_dot_components(root):
    with pytest.raises(NameError_):
        naming.check_project_root(root)


# -- URL_BASE -----------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("http://a.b//", "http://a.b"),
    ("https://boinc.example.org/", "https://boinc.example.org"),
    ("HTTP://Boinc.Example.ORG:8443/", "http://boinc.example.org:8443"),
    ("http://10.0.0.5", "http://10.0.0.5"),
    ("http://a.b:80", "http://a.b:80"),
    ("  http://a.b:8080/  ", "http://a.b:8080"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("http://[2001:DB8::1]", "http://[2001:db8::1]"),
    ("https://my-host.example.org", "https://my-host.example.org"),
])
def test_normalise_url_base(url, expected):
    assert naming.normalise_url_base(url) == expected


@pytest.mark.parametrize("url", ["http://a.b", "http://a.b/", "http://a.b//", "http://A.B:8080///"])
def test_normalised_url_base_never_ends_with_slash_and_is_stable(url):
    once = naming.normalise_url_base(url)
    assert not once.endswith("/")
    assert "//" not in once.split("://", 1)[1]
    assert naming.normalise_url_base(once) == once
    assert naming.normalise_url_base(once + "/") == once


@pytest.mark.parametrize("url", ["http://boincsrv/", "http://boincsrv:8080", "http://localhost/"])
def test_bare_host_is_refused_with_a_reason(url):
    with pytest.raises(NameError_) as exc:
        naming.normalise_url_base(url)
    message = str(exc.value)
    assert "dot" in message
    assert "IP" in message


@pytest.mark.parametrize("url", ["ftp://a.b/", "a.b", "//a.b", "file:///srv/x", "", None, "boinc"])
def test_non_http_url_is_refused(url):
    with pytest.raises(NameError_) as exc:
        naming.normalise_url_base(url)
    assert "http://" in str(exc.value)


@pytest.mark.parametrize("url", ["http://a.b/demo/", "http://a.b/demo", "http://a.b:8080/x/y",
                                 "http://a.b/?x=1", "http://a.b/#top", "http://user@a.b/"])
def test_url_with_path_query_or_user_is_refused(url):
    with pytest.raises(NameError_) as exc:
        naming.normalise_url_base(url)
    assert "scheme://host[:port]" in str(exc.value)


@pytest.mark.parametrize("url", ["http://a.b:99999", "http://a.b:port", "http://[::1", "http://a_b.c",
                                 "http://-a.b", "http://a..b", "http://a.b./"])
def test_malformed_hosts_and_ports_are_refused(url):
    with pytest.raises(NameError_):
        naming.normalise_url_base(url)


def test_master_url():
    assert naming.master_url("HTTP://A.B:8080/", "demo") == "http://a.b:8080/demo/"


@pytest.mark.parametrize("check, value", [
    (naming.check_project_name, "demo\n"),
    (naming.check_boinc_user, "boincadm\n"),
    (naming.check_project_root, "/home/boincadm/project\n"),
])
def test_trailing_newline_is_refused(check, value):
    with pytest.raises(NameError_):
        check(value)


def test_name_error_is_a_value_error():
    assert issubclass(NameError_, ValueError)
