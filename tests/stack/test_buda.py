"""BUDA end to end: a Docker science app declared with `app add NAME --docker DIR --buda`, a batch
submitted through BOINC's own web pages (sandbox.php, buda_submit.php) by a submitter of
`user add --submit NAME`, computed by the 8.2 volunteer built from source, and its outputs
fetched with `boincserver results` and compared byte for byte.

The project and the volunteer are test_docker_apps.py's fixtures (imported, so this module
gets a project of its own: no other test's queued job reaches its volunteer, none of its jobs
another test's client)."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile

import httpx

from boincserver import pins

from .conftest import Stack, apache_sh, run_cli, sql
from .test_docker_apps import docker_stack, fetched, pytestmark, volunteer, wait_ended  # noqa: F401

BASE = pins.BASE_OS_IMAGE
DOCKERFILE = f'FROM {BASE}\nWORKDIR /app\nCOPY main.sh /opt/main.sh\nCMD ["sh", "/opt/main.sh"]\n'
# docker_wrapper hands the job's command line to the container as ARGS.
MAIN_SH = 'tr a-z A-Z < in > out\nfor a in $ARGS; do echo "arg $a" >> out; done\n'
JOBS = {"j1": ("hello one\n", None), "j2": ("hello two\n", "alpha beta")}
EXPECTED = {"j1": b"HELLO ONE\n", "j2": b"HELLO TWO\narg alpha\narg beta\n"}


def batch_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for job, (text, cmdline) in JOBS.items():
            z.writestr(f"{job}/in", text)
            if cmdline:
                z.writestr(f"{job}/cmdline", cmdline)
    return buf.getvalue()


def test_a_buda_batch_submitted_on_the_web_is_computed_by_the_82_volunteer(docker_stack: Stack, volunteer,
                                                                           tmp_path):
    stack = docker_stack
    app_dir = tmp_path / "upper"
    app_dir.mkdir()
    (app_dir / "Dockerfile").write_text(DOCKERFILE)
    (app_dir / "main.sh").write_text(MAIN_SH)
    added = json.loads(run_cli("app", "add", "upper", "--docker", app_dir, "--buda", "--input", "in",
                               "--output", "out", "--json", cwd=stack.dir).stdout)
    assert added["app"] == "upper" and added["variant"] == "intel_cpu", added
    listed = json.loads(run_cli("app", "list", "--json", cwd=stack.dir).stdout)
    assert any(a.get("buda") and a["name"] == "upper" for a in listed), listed
    assert any(a["name"] == "buda" and a["versions"] for a in listed), listed
    files = apache_sh(stack.dir, "ls buda_apps/upper buda_apps/upper/intel_cpu; grep -o buda_submit.php "
                                 "html/project/remote_apps.inc; grep sandbox_dir config.xml")
    assert "desc.json" in files and "variant.json" in files and "/sandbox</sandbox_dir>" in files, files
    assert "buda_submit.php" in files, files

    made = json.loads(run_cli("user", "add", "sub@example.org", "--submit", "upper", "--json",
                              cwd=stack.dir).stdout)
    assert made["apps"] == ["buda"] and made["buda_apps"] == ["upper"], made
    auth = made["authenticator"]

    base = f"{stack.local}/{stack.project}/"
    with httpx.Client(base_url=base, cookies={"auth": auth}, timeout=120) as web:
        menu = web.get("index.php")
        assert menu.status_code == 200 and "Job submission" in menu.text  # REMOTE_JOB_SUBMISSION
        up = web.post("sandbox.php", data={"action": "upload_file"},
                      files=[("new_file[]", ("b.zip", batch_zip(), "application/zip"))])
        assert up.status_code == 200 and "Uploaded file <strong>b.zip</strong>" in up.text, up.text[-2000:]
        form = web.get("buda_submit.php", params={"action": "form", "app": "upper"})
        assert form.status_code == 200 and "b.zip" in form.text, form.text[-2000:]
        submitted = web.get("buda_submit.php", params={
            "action": "submit", "app": "upper", "batch_file": "b.zip", "cmdline": "", "max_runtime_days": "1",
            "exp_runtime_days": "0.01"})
        assert submitted.status_code == 302, submitted.text[-3000:]
        location = submitted.headers["location"]
        batch_id = int(re.fullmatch(r"submit\.php\?action=query_batch&batch_id=(\d+)", location).group(1))
        page = web.get(location)
        assert page.status_code == 200 and "Fatal error" not in page.text, page.text[-2000:]
        links = web.get("submit.php")  # the buda app's form, from remote_apps.inc
        assert links.status_code == 200 and "buda_submit.php" in links.text, links.text[-2000:]

    rows = sql(stack.dir, stack.project,
               f"SELECT b.name, a.name, u.email_addr FROM batch b JOIN app a ON a.id = b.app_id "
               f"JOIN user u ON u.id = b.user_id WHERE b.id = {batch_id}").split()
    assert rows[1:] == ["buda", "sub@example.org"] and rows[0].startswith("buda_"), rows
    wus = sql(stack.dir, stack.project, f"SELECT name, xml_doc LIKE '%<buda_app_name>upper</buda_app_name>%' "
                                        f"FROM workunit WHERE batch = {batch_id} ORDER BY name").split()
    names = [f"batch_{batch_id}__job_{job}" for job in JOBS]
    assert wus == [names[0], "1", names[1], "1"], wus

    for job, wu in zip(JOBS, names):
        ended = wait_ended(stack, wu, volunteer.nudge, volunteer.log)
        assert ended["state"] == "done", f"{ended}\n{volunteer.log()[-4000:]}"
        assert fetched(stack, wu, "out", tmp_path / "o") == EXPECTED[job], job
    # submit.php links the outputs to get_output3.php (is_assim_move of remote_apps.inc's buda
    # entry), which answers the batch's owner only.
    with httpx.Client(base_url=base, cookies={"auth": auth}, timeout=120) as web, \
            httpx.Client(base_url=base, timeout=120) as anonymous:
        page = web.get(f"submit.php?action=query_batch&batch_id={batch_id}")
        links = [html.unescape(link) for link in
                 re.findall(r"get_output3\.php\?action=get_batch&(?:amp;)?batch_id=\d+", page.text)]
        assert page.status_code == 200 and links, page.text[-3000:]
        assert anonymous.get(links[0]).status_code == 403
        outputs = web.get(links[0])
        assert outputs.status_code == 200, outputs.text[-2000:]
        with zipfile.ZipFile(io.BytesIO(outputs.content)) as z:
            got = sorted(z.read(n) for n in z.namelist() if not n.endswith("/"))
        assert got == sorted(EXPECTED.values()), z.namelist()
    log = apache_sh(stack.dir, "cat log_boincserver/scheduler.log 2>/dev/null || true")
    # sched/buda.cpp's complaints: a desc.json or variant.json it could not read, an app it does not know.
    assert "Request: " in log and not re.search(r"BUDA (app|variant):|no BUDA app|add_app_file", log), log[-3000:]
