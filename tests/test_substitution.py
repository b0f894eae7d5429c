"""Runtime values written into a project's files."""

from __future__ import annotations

import pytest

from boincserver.boinc import substitution as sub

VALUES = {
    "url_base": "https://boinc.example.org",
    "project": "demo",
    "boinc_user": "boincadm",
    "project_root": "/home/boincadm/project",
    "db_name": "demo",
}


# -- fill_placeholders --------------------------------------------------------------------
@pytest.mark.parametrize("text", ["${URL_BASE}/${PROJECT}/", "${url_base}/${project}/",
                                  "${Url_Base}/${pRoJeCt}/"])
def test_placeholders_are_matched_without_regard_to_case(text):
    assert sub.fill_placeholders(text, VALUES) == "https://boinc.example.org/demo/"


def test_keys_of_the_values_are_matched_without_regard_to_case_too():
    assert sub.fill_placeholders("${project}", {"PROJECT": "demo"}) == "demo"


def test_unknown_and_malformed_placeholders_are_left_alone():
    text = "${LONG_NAME} ${url-base} $url_base ${} ${1abc} {project} $(project)"
    assert sub.fill_placeholders(text, VALUES) == text


def test_filled_values_are_not_expanded_again():
    values = {"project": "${url_base}", "url_base": "http://a.b"}
    assert sub.fill_placeholders("${project} ${url_base}", values) == "${url_base} http://a.b"


# -- replace_url_base ---------------------------------------------------------------------
def test_replace_url_base_without_old_or_same_old_is_a_no_op():
    text = "<master_url>http://a.b/demo/</master_url>"
    assert sub.replace_url_base(text, None, "http://c.d") == text
    assert sub.replace_url_base(text, "", "http://c.d") == text
    assert sub.replace_url_base(text, "http://a.b", "http://a.b") == text


def test_replace_url_base_only_where_followed_by_slash():
    old, new = "http://127.0.0.1:8080", "http://10.1.2.3:9000"
    text = ("a http://127.0.0.1:8080/demo/\n"
            "b http://127.0.0.1:80801/x\n"
            "c URL_BASE=http://127.0.0.1:8080\n")
    assert sub.replace_url_base(text, old, new) == (
        "a http://10.1.2.3:9000/demo/\n"
        "b http://127.0.0.1:80801/x\n"
        "c URL_BASE=http://127.0.0.1:8080\n")


@pytest.mark.parametrize("text", ["http://a.b.c/x", "http://a.bc/x", "http://a.b:8080/x",
                                  "https://a.b/x"])
def test_replace_url_base_leaves_longer_hosts_and_other_schemes_alone(text):
    assert sub.replace_url_base(text, "http://a.b", "http://new.host") == text


def test_replace_url_base_never_doubles_slashes():
    out = sub.replace_url_base("http://a.b/demo/ http://a.b/demo_cgi/cgi", "http://a.b/", "http://c.d/")
    assert out == "http://c.d/demo/ http://c.d/demo_cgi/cgi"


def test_replace_url_base_replaces_every_occurrence():
    text = "http://a.b/x http://a.b/y http://a.b/z"
    assert sub.replace_url_base(text, "http://a.b", "http://c.d") == "http://c.d/x http://c.d/y http://c.d/z"


# -- substitute on real files --------------------------------------------------------------
CONFIG_XML = """<?xml version="1.0" ?>
<boinc>
  <config>
    <master_url>${URL_BASE}/${project}/</master_url>
    <download_url>http://127.0.0.1:8080/demo/download</download_url>
    <upload_url>http://127.0.0.1:8080/demo_cgi/file_upload_handler</upload_url>
    <cgi_url>http://127.0.0.1:8080/demo_cgi/</cgi_url>
    <db_name>${db_name}</db_name>
    <long_name>${LONG_NAME}</long_name>
    <key_dir>${project_root}/keys/</key_dir>
    <host>boincserver</host>
  </config>
</boinc>
"""

CONFIG_XML_AFTER = """<?xml version="1.0" ?>
<boinc>
  <config>
    <master_url>https://boinc.example.org/demo/</master_url>
    <download_url>https://boinc.example.org/demo/download</download_url>
    <upload_url>https://boinc.example.org/demo_cgi/file_upload_handler</upload_url>
    <cgi_url>https://boinc.example.org/demo_cgi/</cgi_url>
    <db_name>demo</db_name>
    <long_name>${LONG_NAME}</long_name>
    <key_dir>/home/boincadm/project/keys/</key_dir>
    <host>boincserver</host>
  </config>
</boinc>
"""


def test_substitute_config_xml():
    out = sub.substitute(CONFIG_XML, VALUES, "http://127.0.0.1:8080")
    assert out == CONFIG_XML_AFTER
    # A second start with the same URL changes nothing more.
    assert sub.substitute(out, VALUES, VALUES["url_base"]) == out


def test_substitute_schedulers_txt():
    text = ('<!-- <scheduler>http://1.2.3.4:8080/demo_cgi/cgi</scheduler> -->\n'
            '<link rel="boinc_scheduler" href="http://1.2.3.4:8080/demo_cgi/cgi">\n')
    out = sub.substitute(text, {"url_base": "http://5.6.7.8"}, "http://1.2.3.4:8080")
    assert out == ('<!-- <scheduler>http://5.6.7.8/demo_cgi/cgi</scheduler> -->\n'
                   '<link rel="boinc_scheduler" href="http://5.6.7.8/demo_cgi/cgi">\n')
    assert "1.2.3.4" not in out


def test_substitute_without_previous_url_only_fills_placeholders():
    text = "${url_base}/demo/ http://1.2.3.4:8080/demo/"
    assert sub.substitute(text, VALUES, None) == "https://boinc.example.org/demo/ http://1.2.3.4:8080/demo/"


def test_substitute_needs_url_base_in_values():
    with pytest.raises(KeyError):
        sub.substitute("x", {"project": "demo"}, "http://a.b")


# -- which files ----------------------------------------------------------------------------
@pytest.mark.parametrize("relpath", ["config.xml", "html/user/schedulers.txt", "html/project/project.inc",
                                     "html/ops/.htaccess", "demo.httpd.conf", "${project}.httpd.conf"])
def test_is_substituted(relpath):
    assert sub.is_substituted(relpath) is True


@pytest.mark.parametrize("relpath", ["html/user/index.php", "html/user/schedulers.txt.bak", "config.xml.orig",
                                     "sub/demo.httpd.conf", "httpd.conf.d/x", "html/ops/index.php",
                                     "project.inc", "schedulers.txt"])
def test_is_not_substituted(relpath):
    assert sub.is_substituted(relpath) is False


def test_substituted_files_are_the_fixed_ones_then_the_matching_top_level_ones():
    names = ["config.xml", "demo.httpd.conf", "html", "bin", "other.conf"]
    assert sub.substituted_files(names) == list(sub.SUBSTITUTED_FILES) + ["demo.httpd.conf"]


def test_substituted_name():
    assert sub.substituted_name("${project}.httpd.conf", VALUES) == "demo.httpd.conf"
    assert sub.substituted_name("${PROJECT}.httpd.conf", VALUES) == "demo.httpd.conf"
    assert sub.substituted_name("plain.txt", VALUES) == "plain.txt"
    assert sub.substituted_name("${unknown}.txt", VALUES) == "${unknown}.txt"


# -- SQL ------------------------------------------------------------------------------------
@pytest.mark.parametrize("old", [None, "", "http://a.b"])
def test_sql_url_updates_empty_when_unchanged(old):
    assert sub.sql_url_updates(old, "http://a.b") == []


def test_sql_url_updates_two_parameterised_statements():
    stmts = sub.sql_url_updates("http://1.2.3.4:8080", "https://boinc.example.org")
    assert len(stmts) == 2
    tables = []
    for sql, params in stmts:
        assert sql.count("%s") == 2
        assert "1.2.3.4" not in sql and "example" not in sql  # values only as parameters
        assert sql.startswith("UPDATE ")
        assert "REPLACE(xml_doc, %s, %s)" in sql
        assert params == ("http://1.2.3.4:8080/", "https://boinc.example.org/")
        tables.append(sql.split()[1])
    assert sorted(tables) == ["app_version", "workunit"]


def test_sql_url_updates_never_doubles_the_slash():
    (_, params), _ = sub.sql_url_updates("http://a.b/", "http://c.d/")
    assert params == ("http://a.b/", "http://c.d/")
