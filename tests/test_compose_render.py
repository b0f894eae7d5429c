"""What the apache service relies on to run as the BOINC user: the rendered compose.yaml, the
apache base image's Dockerfile, its supervisord configuration and its start scripts."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest

from boincserver import paths, render
from boincserver.settings import Settings

APACHE = paths.data_dir("images") / "apache"
SERVERNAME_CONF = "/etc/apache2/conf-enabled/boincserver-servername.conf"


# -- a reader for the YAML that compose.yaml.j2 writes (no YAML library is a dependency) ----
def _scalar(text: str):
    text = text.strip()
    if text[:1] in "\"'" and text[-1:] == text[:1]:
        return text[1:-1]
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _lines(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((len(line) - len(line.lstrip()), line.strip()))
    return out


def _block(lines, i: int, indent: int):
    """The mapping or list whose lines start at lines[i] with this indent; (value, next i)."""
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            rest = lines[i][1][2:]
            if re.match(r"^[\w.-]+:( |$)", rest):  # a list of mappings: `- key: value` ...
                sub = [(indent + 2, rest)] + [l for l in lines[i + 1:]]
                value, used = _block(sub, 0, indent + 2)
                items.append(value)
                i += used
            else:
                items.append(_scalar(rest))
                i += 1
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent:
        key, _, rest = lines[i][1].partition(":")
        rest = re.sub(r"^\s*&\S+", "", rest).strip()  # an anchor names the value
        i += 1
        if rest:
            mapping[key] = _scalar(rest)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def read_yaml(text: str) -> dict:
    lines = _lines(text)
    value, end = _block(lines, 0, 0)
    assert end == len(lines), f"not read: {lines[end:]}"
    return value


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:?message}` and `${VAR:-default}` over .env's values."""
    def one(m: re.Match) -> str:
        if m.group(2) == "-":
            return env.get(m.group(1)) or m.group(3)
        return env[m.group(1)]
    return re.sub(r"\$\{(\w+)(?::([?-])([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def rendered():
    settings = Settings(project="demo", boinc_user="alice", project_root="/srv/alice/demo",
                        url_base="https://boinc.example.org")
    files = render.render_all(settings)
    env = dict(line.split("=", 1) for line in files[paths.ENV_FILE].splitlines()
               if line and not line.startswith("#"))
    return settings, read_yaml(files[paths.COMPOSE_FILE]), env


def test_the_reader_reads_the_whole_file(rendered):
    _, compose, _ = rendered
    assert sorted(compose["services"]) == ["apache", "makeproject", "mysql"]
    assert compose["x-build-args"]["PROJECT"].startswith("${PROJECT:?")


def test_apache_runs_as_the_boinc_user_in_the_project_folder(rendered):
    settings, compose, env = rendered
    apache = compose["services"]["apache"]
    assert interpolate(apache["user"], env) == settings.boinc_user == "alice"
    assert interpolate(apache["working_dir"], env) == settings.project_root == "/srv/alice/demo"


def test_apache_may_listen_on_port_80_without_root(rendered):
    _, compose, _ = rendered
    apache = compose["services"]["apache"]
    assert apache["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": 0}
    assert [str(p).rsplit(":", 1)[1] for p in apache["ports"]] == ["80", "443}"]


def test_https_is_published_for_an_https_url_and_on_loopback_only_otherwise(rendered):
    settings, compose, env = rendered
    ports = compose["services"]["apache"]["ports"]
    assert interpolate(ports[1], env) == "443:443"
    plain = settings.with_changes(url_base="http://boinc.example.org")
    plain_env = plain.env()
    assert "HTTPS_PUBLISH" not in plain_env and "TLS" not in plain_env
    assert interpolate(ports[1], plain_env) == "127.0.0.1::443"
    proxied = settings.with_changes(tls="proxy")
    assert "TLS" not in proxied.env()
    moved = settings.with_changes(url_base="https://boinc.example.org:8443")
    assert moved.env()["HTTPS_PUBLISH"] == "8443:443"
    assert moved.with_changes(https_port=9443).env()["HTTPS_PUBLISH"] == "9443:443"


def test_apache_keeps_its_certificates_in_the_tls_volume_which_the_job_gives_the_boinc_user(rendered):
    _, compose, env = rendered
    services = compose["services"]
    assert "tls:/run/boincserver/tls" in services["apache"]["volumes"]
    assert "tls:/run/boincserver/tls" in services["makeproject"]["volumes"]
    assert "tls" in compose["volumes"]
    apache_env = {k: interpolate(v, env) for k, v in services["apache"]["environment"].items()}
    assert apache_env["TLS"] == "acme" and apache_env["TLS_URL_BASE"] == "https://boinc.example.org"
    assert apache_env["ACME_DIRECTORY"] == "letsencrypt"


def test_the_makeproject_job_mounts_the_results_volume_to_give_it_to_the_boinc_user(rendered):
    _, compose, env = rendered
    services = compose["services"]
    assert "results:/run/boincserver/results" in services["makeproject"]["volumes"]
    apache_mounts = [interpolate(v, env) for v in services["apache"]["volumes"] if isinstance(v, str)]
    assert "results:/srv/alice/demo/results" in apache_mounts


# -- the apache base image ------------------------------------------------------------------
def instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            out.append(" ".join(current.split()))
            current = ""
    return [i for i in out if i]


def test_the_image_sets_no_user_so_that_the_overlays_run_lines_stay_root():
    steps = instructions(APACHE / "Dockerfile")
    assert not [s for s in steps if re.match(r"^(ONBUILD )?USER\b", s)]


def test_what_needed_root_at_start_is_done_at_build_time():
    onbuild_runs = [s for s in instructions(APACHE / "Dockerfile") if s.startswith("ONBUILD RUN ")]
    script = " ".join(onbuild_runs)
    assert "APACHE_RUN_USER=$BOINC_USER/" in script and "APACHE_RUN_GROUP=$BOINC_USER/" in script
    assert 'ln -sf "$PROJECT_ROOT/$PROJECT.httpd.conf" "/etc/apache2/sites-enabled/$PROJECT.conf"' in script
    chown = re.search(r'chown -R "\$BOINC_USER:" ([^&]+)', script).group(1).split()
    for path in ("/var/run/apache2", "/var/lock/apache2", "/var/log/apache2", SERVERNAME_CONF):
        assert path in chown, path
    # Anything under PROJECT_ROOT in the image would be copied onto a fresh project volume.
    assert "PROJECT_ROOT" not in re.sub(r'ln -sf "\$PROJECT_ROOT/[^"]*"', "", script)


def test_the_start_script_does_nothing_that_needs_root():
    text = (APACHE / "apache-start").read_text()
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    for needs_root in ("chown", "ln -s", "sed -i", "/etc/cron", "envvars", "sites-enabled"):
        assert needs_root not in code, needs_root


# -- supervisord ------------------------------------------------------------------------------


def supervisord_config() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string((APACHE / "supervisord.conf").read_text())
    return parser


def test_supervisord_reads_the_file_the_image_installs():
    copied = [s.split()[1:] for s in instructions(APACHE / "Dockerfile") if s.startswith("COPY supervisord.conf ")]
    assert len(copied) == 1
    started = re.search(r"exec /usr/bin/supervisord -n -c (\S+)", (APACHE / "apache-start").read_text())
    assert started and started.group(1) == copied[0][1]


def test_supervisord_needs_no_root():
    conf = supervisord_config()
    main = conf["supervisord"]
    for key in ("pidfile", "childlogdir"):
        assert not main[key].startswith(("/var/run", "/run", "/var/log")), key
    assert main["logfile"] == "/dev/null" or main["logfile"].startswith("/tmp")
    assert not conf.has_section("unix_http_server")  # its socket's folder is root's
    programs = [s for s in conf.sections() if s.startswith("program:")]
    assert programs and not [p for p in programs if conf.has_option(p, "user")]
    commands = [conf[p]["command"] for p in programs]
    assert not [c for c in commands if "cron -f" in c or c.split()[0].endswith("/cron")]
    assert "/usr/local/bin/boincserver-daemons --cron" in commands


# -- the scripts themselves, over a fake project folder -------------------------------------
def server_name(url_base: str) -> str | None:
    """apache-start's own function, run by sh: the host it names, or None if it refused."""
    text = (APACHE / "apache-start").read_text()
    function = re.search(r"^server_name\(\) \{\n.*?^\}\n", text, re.S | re.M).group(0)
    done = subprocess.run(["sh", "-c", function + 'server_name "$1"', "sh", url_base],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.mark.parametrize("url_base,expected", [
    ("http://127.0.0.1:8091", "127.0.0.1"),
    ("https://Boinc.Example.ORG:8443/path", "Boinc.Example.ORG"),
    ("http://user:secret@boinc.example.org/", "boinc.example.org"),
    ("http://[::1]:8080/", "[::1]"),
])
def test_server_name_is_the_host_of_url_base(url_base, expected):
    assert server_name(url_base) == expected


@pytest.mark.parametrize("url_base", [
    "", "http://a b.org", "http://x.org;Include /etc/passwd", "http://x.org\nInclude /etc/passwd",
    "http://$HOME.org", "http://[::1 x]/", "http://\"x\".org",
])
def test_server_name_refuses_what_is_not_a_host(url_base):
    assert server_name(url_base) is None


def test_the_cron_replacement_runs_bin_start_cron_on_the_five_minutes_into_cron_log(tmp_path):
    root = tmp_path / "project"
    (root / "bin").mkdir(parents=True)
    (root / "log_boincserver").mkdir()
    calls = tmp_path / "calls"
    (root / "bin" / "start").write_text(f'#!/bin/sh\necho "start $* in $(pwd)" >> {calls}\necho "tasks ran"\n')
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    # The clock says 1000 s: the next five-minute mark is 200 s away. The second sleep ends it.
    (stubs / "date").write_text("#!/bin/sh\necho 1000\n")
    (stubs / "hostname").write_text("#!/bin/sh\necho boincserver\n")
    (stubs / "sleep").write_text(f'#!/bin/sh\necho "sleep $*" >> {calls}\n'
                                 f'[ "$(grep -c ^sleep {calls})" -lt 2 ] || kill -TERM $PPID\n')
    for f in (*stubs.iterdir(), root / "bin" / "start"):
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "PROJECT_ROOT": str(root)}
    done = subprocess.run([str(APACHE / "boinc-daemons"), "--cron"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0  # ended by the stub's TERM: it never returns by itself
    assert calls.read_text().splitlines() == ["sleep 200", f"start --cron in {root}", "sleep 200"]
    assert (root / "log_boincserver" / "cron.log").read_text() == "tasks ran\n"


def test_the_scripts_are_posix_sh():
    for name in ("apache-start", "boinc-daemons"):
        done = subprocess.run(["sh", "-n", str(APACHE / name)], capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr)
        assert (APACHE / name).read_text().startswith("#!/bin/sh\n")

