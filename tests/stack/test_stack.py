"""The real stack: MariaDB, the makeproject job, Apache with BOINC's daemons.

The tests share one stack (see conftest.py) and may run in any order: a test that changes the
stack (URL, overlays, rows, files) puts it back as it found it, and a test that needs data makes
it itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request


from boincserver import __version__, pins

from .conftest import CLI, Stack, apache_sh, compose, run_cli, sql


def get(url: str, host: str | None = None, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if host:
        req.add_header("Host", host)
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def image_ids(stack: Stack) -> dict[str, str]:
    names = [f"boincserver-{stack.project}/{svc}:{__version__}" for svc in ("mysql", "makeproject", "apache")]
    names += [pins.base_image(n) for n in pins.BASE_IMAGE_NAMES]
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", *names],
                         capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(names, out))


def config_value(stack: Stack, tag: str) -> str:
    return apache_sh(stack.dir, f"sed -n 's:.*<{tag}>\\(.*\\)</{tag}>.*:\\1:p' $PROJECT_ROOT/config.xml").strip()


def insert_workunit(stack: Stack, name: str, xml_doc: str) -> None:
    """A workunit row as create_work stores it (appid 0: no app is needed)."""
    sql(stack.dir, stack.project,
        "INSERT INTO workunit (create_time, appid, name, xml_doc, rsc_fpops_est, rsc_fpops_bound, "
        "rsc_memory_bound, rsc_disk_bound, delay_bound, priority, batch, target_nresults, "
        "min_quorum, max_error_results, max_total_results, max_success_results) VALUES "
        f"(UNIX_TIMESTAMP(), 0, '{name}', '{xml_doc}', 1e9, 1e10, 1e8, 1e8, 3600, 0, 0, 1, 1, 1, 1, 1)")


def delete_workunit(stack: Stack, name: str) -> None:
    sql(stack.dir, stack.project, f"DELETE FROM workunit WHERE name='{name}'")


def test_home_page_scheduler_and_daemons(stack: Stack):
    status, page = get(f"{stack.local}/{stack.project}/")
    assert status == 200
    assert f"<title>{stack.project}</title>" in page
    status, reply = get(f"{stack.local}/{stack.project}_cgi/cgi")
    assert status == 200 and "<scheduler_reply>" in reply
    assert f"<master_url>{stack.local}/{stack.project}/</master_url>" in reply
    data = json.loads(run_cli("status", "--json", cwd=stack.dir).stdout)
    running = {d["name"] for d in data["daemons"] if d["running"]}
    assert {"feeder", "transitioner", "file_deleter"} <= running
    states = {r["service"]: r["state"] for r in data["services"]}
    assert states["apache"] == "running" and states["mysql"] == "running"


def test_ops_area_needs_the_generated_password(stack: Stack):
    assert get(f"{stack.local}/{stack.project}_ops/")[0] == 401
    password = compose(stack.dir, "run", "--rm", "--no-deps", "--entrypoint", "cat", "makeproject",
                       "/run/boincserver/secrets/ops_password").stdout.strip()
    assert len(password) == 32
    assert get(f"{stack.local}/{stack.project}_ops/", auth=("admin", "wrong"))[0] == 401
    assert get(f"{stack.local}/{stack.project}_ops/", auth=("admin", password))[0] == 200


def test_mysql_is_published_on_loopback_only(stack: Stack):
    published = compose(stack.dir, "port", "mysql", "3306").stdout.strip()
    assert published.startswith("127.0.0.1:"), published


def test_stopforumspam_is_off(stack: Stack):
    inc = apache_sh(stack.dir, "cat $PROJECT_ROOT/html/project/project.inc")
    assert 'define("USE_STOPFORUMSPAM", false);' in inc


def test_warm_up_builds_nothing_and_keeps_serving(stack: Stack):
    before = image_ids(stack)
    done = run_cli("up", cwd=stack.dir)
    assert "building" not in done.stderr, done.stderr
    assert image_ids(stack) == before
    assert get(f"{stack.local}/{stack.project}/")[0] == 200


def test_url_change_reaches_files_database_and_scheduler_without_rebuild(stack: Stack):
    old = stack.local
    new = f"http://127.0.0.2:{stack.port}"
    assert config_value(stack, "master_url") == f"{old}/{stack.project}/"
    # A workunit row made under the old URL, as create_work stores it.
    insert_workunit(stack, "url_probe", f"<file_info><url>{old}/{stack.project}/download/x</url></file_info>")
    try:
        before = image_ids(stack)
        run_cli("up", "--url-base", new + "/", cwd=stack.dir)
        assert image_ids(stack) == before, "a URL change rebuilt an image"
        check_url_changed(stack, old, new)
    finally:
        run_cli("up", "--url-base", old, cwd=stack.dir)
        delete_workunit(stack, "url_probe")
    assert config_value(stack, "master_url") == f"{old}/{stack.project}/"


def check_url_changed(stack: Stack, old: str, new: str) -> None:
    assert config_value(stack, "master_url") == f"{new}/{stack.project}/"
    assert config_value(stack, "upload_url") == f"{new}/{stack.project}_cgi/file_upload_handler"
    schedulers = apache_sh(stack.dir, "cat $PROJECT_ROOT/html/user/schedulers.txt")
    assert f'href="{new}/{stack.project}_cgi/cgi"' in schedulers and old not in schedulers
    assert "//" + stack.project not in schedulers  # the trailing '/' was not doubled
    reply = get(f"{stack.local}/{stack.project}_cgi/cgi")[1]
    assert f"<master_url>{new}/{stack.project}/</master_url>" in reply
    xml_doc = sql(stack.dir, stack.project, "SELECT xml_doc FROM workunit WHERE name='url_probe'")
    assert f"{new}/{stack.project}/download/x" in xml_doc and old not in xml_doc
    assert "URL_BASE=" + new in (stack.dir / ".env").read_text()


def test_plain_compose_applies_url_base(stack: Stack):
    own = config_value(stack, "master_url")
    third = f"http://127.0.0.3:{stack.port}"
    assert own != f"{third}/{stack.project}/"
    compose(stack.dir, "build")
    try:
        compose(stack.dir, "up", "-d", "--wait", env={"URL_BASE": third})
        assert config_value(stack, "master_url") == f"{third}/{stack.project}/"
    finally:
        # boincserver's own setting wins again at its next up.
        run_cli("up", cwd=stack.dir)
    assert config_value(stack, "master_url") == own


def test_overlays_reach_the_volume_and_the_service(stack: Stack):
    mk = stack.dir / "images/makeproject/Dockerfile"
    ap = stack.dir / "images/apache/Dockerfile"
    originals = {mk: mk.read_text(), ap: ap.read_text()}
    added = [stack.dir / "hello.html", stack.dir / "project.conf.txt"]
    # What the running project made must survive the overlay being applied.
    apache_sh(stack.dir, "echo made-by-project > $PROJECT_ROOT/upload/overlay_probe.txt")
    try:
        added[0].write_text("<p>hello from ${project} at ${URL_BASE}</p>\n")
        added[1].write_text("served by ${project}\n")
        mk.write_text(originals[mk] + "COPY hello.html $PROJECT_ROOT/html/user/hello.html\n"
                      "COPY project.conf.txt $PROJECT_ROOT/html/user/${project}_note.txt\n")
        ap.write_text(originals[ap] + "RUN apt-get update && apt-get install -y --no-install-recommends jq "
                      "&& rm -rf /var/lib/apt/lists/*\n")
        bases = {k: v for k, v in image_ids(stack).items() if k.startswith("boincserver/")}
        run_cli("up", cwd=stack.dir)
        assert {k: v for k, v in image_ids(stack).items() if k.startswith("boincserver/")} == bases, \
            "a project change rebuilt a base image"
        status, page = get(f"{stack.local}/{stack.project}/hello.html")
        assert status == 200 and "hello from" in page
        assert apache_sh(stack.dir, "cat $PROJECT_ROOT/upload/overlay_probe.txt").strip() == "made-by-project"
        assert "jq-" in apache_sh(stack.dir, "jq --version")
        assert get(f"{stack.local}/{stack.project}/")[0] == 200
    finally:
        # The project as it was: its own overlays, images and served files.
        for path, text in originals.items():
            path.write_text(text)
        for path in added:
            path.unlink(missing_ok=True)
        run_cli("up", cwd=stack.dir)
        apache_sh(stack.dir, "rm -f $PROJECT_ROOT/upload/overlay_probe.txt $PROJECT_ROOT/html/user/hello.html "
                             f"$PROJECT_ROOT/html/user/{stack.project}_note.txt")
    assert get(f"{stack.local}/{stack.project}/hello.html")[0] == 404


def test_locked_values_are_refused_and_nothing_changes(stack: Stack):
    settings = stack.dir / "boincserver.toml"
    original = settings.read_text()
    env_before = (stack.dir / ".env").read_text()
    settings.write_text(original.replace('boinc_user = "boincadm"', 'boinc_user = "other"'))
    try:
        done = run_cli("up", cwd=stack.dir, check=False)
        assert done.returncode == 1
        assert "BOINC_USER" in done.stderr and "down --volumes" in done.stderr
        assert "Traceback" not in done.stderr
        assert (stack.dir / ".env").read_text() == env_before
    finally:
        settings.write_text(original)
    # The plain Compose path is guarded too: the makeproject job refuses.
    done = compose(stack.dir, "run", "--rm", "-e", "PROJECT=renamed", "makeproject", check=False)
    assert done.returncode != 0 and "cannot change" in (done.stdout + done.stderr)
    assert get(f"{stack.local}/{stack.project}/")[0] == 200


def test_down_then_up_keeps_database_files_and_secrets(stack: Stack):
    # Data of this test's own, in the database and in the project volume.
    insert_workunit(stack, "kept_probe", "<workunit/>")
    apache_sh(stack.dir, "echo made-by-project > $PROJECT_ROOT/upload/kept_probe.txt")
    try:
        secret_before = compose(stack.dir, "run", "--rm", "--no-deps", "--entrypoint", "cat", "makeproject",
                                "/run/boincserver/secrets/db_password").stdout
        assert secret_before.strip()
        keys_before = apache_sh(stack.dir, "md5sum /run/boincserver/secrets/keys/upload_public")
        run_cli("down", cwd=stack.dir)
        assert compose(stack.dir, "ps", "-q").stdout.strip() == ""
        run_cli("up", cwd=stack.dir)
        assert "kept_probe" in sql(stack.dir, stack.project, "SELECT name FROM workunit").split()
        assert apache_sh(stack.dir, "cat $PROJECT_ROOT/upload/kept_probe.txt").strip() == "made-by-project"
        assert compose(stack.dir, "run", "--rm", "--no-deps", "--entrypoint", "cat", "makeproject",
                       "/run/boincserver/secrets/db_password").stdout == secret_before
        assert apache_sh(stack.dir, "md5sum /run/boincserver/secrets/keys/upload_public") == keys_before
    finally:
        run_cli("up", cwd=stack.dir)  # serving again, even when the test failed while it was down
        delete_workunit(stack, "kept_probe")
        apache_sh(stack.dir, "rm -f $PROJECT_ROOT/upload/kept_probe.txt")


def test_port_taken_is_refused_before_anything_starts(stack: Stack, tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        run_cli("init", tmp_path / "other", "--url-base", f"http://127.0.0.1:{port}", "--http-port", port)
        done = run_cli("up", cwd=tmp_path / "other", check=False)
    assert done.returncode == 1
    assert f"port {port} is already taken" in done.stderr and "--http-port" in done.stderr
    assert compose(tmp_path / "other", "ps", "-a", "-q").stdout.strip() == ""


def test_wrong_boinc_source_is_refused(stack: Stack, tmp_path):
    import tarfile
    bad = tmp_path / "boinc-other.tar.gz"
    with tarfile.open(bad, "w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": "0" * 40}) as tar:
        (tmp_path / "f").write_text("x")
        tar.add(tmp_path / "f", arcname="boinc-x/f")
    settings_before = (stack.dir / "boincserver.toml").read_text()
    done = run_cli("up", "--url-base", "http://127.0.0.9:1", "--boinc-src", bad, cwd=stack.dir, check=False)
    assert done.returncode == 1
    assert pins.BOINC_COMMIT in done.stderr and "0" * 40 in done.stderr
    assert (stack.dir / "boincserver.toml").read_text() == settings_before
    done = run_cli("build", "--boinc-src", tmp_path / "missing.tar.gz", cwd=stack.dir, check=False)
    assert done.returncode == 1 and "does not exist" in done.stderr


def test_doctor_is_happy_with_a_running_project(stack: Stack):
    done = run_cli("doctor", "--json", cwd=stack.dir)
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["docker engine"]["ok"] and checks["compose plugin"]["ok"]
    assert checks["http port"]["ok"] and "this project's" in checks["http port"]["detail"]


def test_exec_logs_and_shell_reach_the_services(stack: Stack):
    done = run_cli("exec", "apache", "sh", "-c", "whoami; pwd", cwd=stack.dir)
    assert done.stdout.split() == ["boincadm", "/home/boincadm/project"]
    assert run_cli("exec", "--root", "apache", "whoami", cwd=stack.dir).stdout.strip() == "root"
    logs = run_cli("logs", "--tail", "50", "makeproject", cwd=stack.dir).stdout
    assert "[makeproject] ready:" in logs
    done = subprocess.run([*CLI, "shell"], cwd=stack.dir,
                          input="echo inside-$(hostname)\n", capture_output=True, text=True, timeout=60)
    assert "inside-boincserver" in done.stdout


def serving_pids(stack: Stack, program: str) -> set[str]:
    return set(apache_sh(stack.dir, f"pgrep -f 'cgi-bin/{program}$' || true").split())


def test_scheduler_and_upload_handler_are_fastcgi_processes_that_serve_many_requests(stack: Stack):
    # A plain CGI exits after its reply; BOINC's FastCGI builds under mod_fcgid stay and
    # serve the next request (boinc/tuning.py).
    for _ in range(3):
        status, reply = get(f"{stack.local}/{stack.project}_cgi/cgi")
        assert status == 200 and "<scheduler_reply>" in reply
    first = serving_pids(stack, "cgi")
    assert first, "no scheduler process stayed after its requests"
    get(f"{stack.local}/{stack.project}_cgi/cgi")
    assert serving_pids(stack, "cgi") & first, "the next request was not served by a process that stayed"
    status, reply = get(f"{stack.local}/{stack.project}_cgi/file_upload_handler")
    assert status == 200 and "<data_server_reply>" in reply
    assert serving_pids(stack, "file_upload_handler")


def test_work_slots_size_the_feeders_job_array(stack: Stack):
    assert config_value(stack, "shmem_work_items") == "500"
    settings = stack.dir / "boincserver.toml"
    text = settings.read_text()
    assert "work_slots = 500" in text
    try:
        settings.write_text(text.replace("work_slots = 500", "work_slots = 640"))
        run_cli("up", cwd=stack.dir)
        assert config_value(stack, "shmem_work_items") == "640"
        assert config_value(stack, "feeder_query_size") == "1280"
        deadline = time.monotonic() + 60  # the daemons start beside Apache, a moment later
        while "Using 640 job slots" not in apache_sh(stack.dir, "cat $PROJECT_ROOT/log_*/feeder.log"):
            assert time.monotonic() < deadline, "the feeder did not start with 640 job slots"
            time.sleep(2)
        assert "<cmd>feeder -d 3 --sleep_interval 1</cmd>" in apache_sh(stack.dir, "cat $PROJECT_ROOT/config.xml")
    finally:
        settings.write_text(text)
        run_cli("up", cwd=stack.dir)
    assert config_value(stack, "shmem_work_items") == "500"
