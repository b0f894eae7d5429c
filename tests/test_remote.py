"""Remote submission (boincserver/remote.py, boinc/submit_rpc.py) against a fake of BOINC's
handlers over httpx's MockTransport: what is sent, in which order, and what is refused before
anything is sent. The real handlers are exercised by tests/stack/test_remote_submit.py."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from boincserver import remote
from boincserver.boinc import submit_rpc as rpc
from boincserver.errors import InvalidInput

AUTH = "0123456789abcdef0123456789abcdef"


class FakeProject:
    """submit_rpc_handler.php and job_file.php as far as the client sees them."""

    def __init__(self, apps=("uppercase",), may_submit=("uppercase",)):
        self.apps, self.may_submit = set(apps), set(may_submit)
        self.files: dict[str, bytes] = {}
        self.batches: dict[int, dict] = {}
        self.calls: list[str] = []
        self.fail_submit: str | None = None

    def error(self, call, message):
        return httpx.Response(200, text=f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<{call}>\n<error>\n'
                                        f'    <error_num>-1</error_num>\n    <error_msg>{message}</error_msg>\n'
                                        f'</error>\n</{call}>\n')

    def ok(self, call, body):
        return httpx.Response(200, text=f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<{call}>\n{body}</{call}>\n')

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/demo/"):
            return httpx.Response(404, text="Not Found")
        form, uploads = parse_form(request)
        if path.endswith(remote.RESULTS_PATH):
            return self.results(form)
        root = ET.fromstring(form["request"][0])
        call = root.tag
        self.calls.append(call)
        if root.findtext("authenticator") != AUTH:
            return self.error(call, "bad authenticator")
        if call == "create_batch":
            app = root.findtext("app_name")
            if app not in self.apps:
                return self.error(call, f"app not found: {app}")
            if app not in self.may_submit:
                return self.error(call, "no submit access")
            bid = len(self.batches) + 1
            self.batches[bid] = {"name": root.findtext("batch_name"), "state": 0, "jobs": []}
            return self.ok(call, f"<batch_id>{bid}</batch_id>\n")
        if call == "query_files":
            names = [e.text for e in root.iter("phys_name")]
            absent = "".join(f"<file>{i}</file>\n" for i, n in enumerate(names) if n not in self.files)
            return self.ok(call, f"<absent_files>\n{absent}</absent_files>\n")
        if call == "upload_files":
            names = [e.text for e in root.iter("phys_name")]
            assert len(names) == len(uploads) <= rpc.MAX_FILES_PER_UPLOAD
            for name, data in zip(names, uploads):
                assert name == "jf_" + hashlib.md5(data).hexdigest()
                self.files[name] = data
            return self.ok(call, "<success/>\n")
        if call == "submit_batch":
            if self.fail_submit:
                return self.error(call, self.fail_submit)
            batch = self.batches[int(root.findtext("batch/batch_id"))]
            for job in root.iter("job"):
                sources = [e.text for e in job.iter("source")]
                assert all(s in self.files for s in sources)
                batch["jobs"].append({"name": job.findtext("name"), "inputs": sources,
                                      "command_line": job.findtext("command_line")})
            batch["state"] = 1
            batch["request"] = form["request"][0]
            return self.ok(call, f"<batch_id>{root.findtext('batch/batch_id')}</batch_id>\n")
        if call in ("abort_batch", "retire_batch"):
            self.batches[int(root.findtext("batch_id"))]["state"] = 3 if call == "abort_batch" else 4
            return self.ok(call, "<success>1</success>\n")
        if call == "query_batches":
            rows = "".join(f"<batch><id>{i}</id><njobs>{len(b['jobs'])}</njobs><fraction_done>0.5</fraction_done>"
                           f"<nerror_jobs>1</nerror_jobs><state>{b['state']}</state><name>{b['name']}</name>"
                           f"<app_name>uppercase</app_name><create_time>7</create_time></batch>"
                           for i, b in self.batches.items() if b["state"] != 4)
            return self.ok(call, rows)
        return self.error(call, "bad command")

    def results(self, form):
        if form.get("authenticator", [""])[0] != AUTH:
            return httpx.Response(403, text="bad authenticator")
        if form.get("batch") == ["99"]:
            return httpx.Response(404, text="no batch 99 (see `boincserver batch list`)")
        if "tar" not in form:
            return httpx.Response(200, json={"batch": int(form["batch"][0]), "jobs": [], "summary": {}})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("job_1/out", b"HELLO\n"), ("../evil", b"x"), (".status.json", b'{"batch": 1}')):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return httpx.Response(200, content=buf.getvalue())


def parse_form(request: httpx.Request) -> tuple[dict[str, list[str]], list[bytes]]:
    """The form fields and the uploaded files' contents of a POST (urlencoded or multipart)."""
    body = request.read()
    kind = request.headers["content-type"]
    if kind.startswith("application/x-www-form-urlencoded"):
        from urllib.parse import parse_qs
        return parse_qs(body.decode()), []
    boundary = kind.split("boundary=")[1].encode()
    fields: dict[str, list[str]] = {}
    files = []
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        data = data[:-2]
        name = re.search(rb'name="([^"]+)"', head).group(1).decode()
        if b"filename=" in head:
            files.append(data)
        else:
            fields.setdefault(name, []).append(data.decode())
    return fields, files


@pytest.fixture
def fake():
    return FakeProject()


@pytest.fixture
def auth_file(tmp_path):
    path = tmp_path / "auth"
    path.write_text(AUTH + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def there(fake, auth_file):
    return remote.connect("http://boinc.test/demo", auth_file, transport=httpx.MockTransport(fake))


def jobs_file(tmp_path: Path, lines: list[str], files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "jobs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_inputs_go_once_by_content_then_one_batch(tmp_path, fake, there):
    path = jobs_file(tmp_path, ["a.txt", "--wu-name named --command-line '--x 1 & <y>' b.txt", "a.txt", "c.txt"],
                     {"a.txt": b"alpha", "b.txt": b"beta", "c.txt": b"alpha"})
    fake.files["jf_" + hashlib.md5(b"beta").hexdigest()] = b"beta"  # on the project already
    result = remote.submit(there, "uppercase", path, {"delay_bound": 3600, "priority": 5}, batch_name="b & <c>")
    assert fake.calls == ["create_batch", "query_files", "upload_files", "submit_batch"]
    assert (result.batch, result.created, result.files_sent, result.bytes_sent) == (1, 4, 1, 5)
    batch = fake.batches[1]
    assert batch["name"] == "b & <c>" and batch["state"] == 1
    alpha = "jf_" + hashlib.md5(b"alpha").hexdigest()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert [(j["name"], j["inputs"]) for j in batch["jobs"]] == [
        (f"uppercase_{digest}_1", [alpha]), ("named", ["jf_" + hashlib.md5(b"beta").hexdigest()]),
        (f"uppercase_{digest}_3", [alpha]), (f"uppercase_{digest}_4", [alpha])]
    assert batch["jobs"][1]["command_line"] == "--x 1 & <y>"  # escaped in the XML, intact on arrival
    assert "<delay_bound>3600</delay_bound>" in batch["request"] and "<priority>5</priority>" in batch["request"]


def test_uploads_are_split_to_fit_phps_limits(tmp_path, fake, there):
    n = rpc.MAX_FILES_PER_UPLOAD * 2 + 1
    path = jobs_file(tmp_path, [f"f{i}" for i in range(n)], {f"f{i}": f"{i}".encode() for i in range(n)})
    result = remote.submit(there, "uppercase", path)
    assert fake.calls.count("upload_files") == 3 and result.files_sent == n == len(fake.files)


def test_a_failed_submit_batch_withdraws_the_batch(tmp_path, fake, there):
    fake.fail_submit = "create_work failed: <workunit> exists & more"
    path = jobs_file(tmp_path, ["a.txt"], {"a.txt": b"alpha"})
    with pytest.raises(remote.RemoteError, match="create_work failed: <workunit> exists & more") as caught:
        remote.submit(there, "uppercase", path)
    assert "nothing was submitted: batch 1 was aborted and retired" in str(caught.value)
    assert fake.calls[-2:] == ["abort_batch", "retire_batch"] and fake.batches[1]["state"] == 4


@pytest.mark.parametrize("lines, options, says", [
    (["a.txt", "missing.txt"], None, "line 2: input file missing.txt does not exist"),
    (['--command-line \'say "hi"\' a.txt'], None, "line 1: a remote job's command line cannot hold a double quote"),
    (["a.txt"], {"min_quorum": 2}, "--min-quorum cannot be set by remote submission"),
])
def test_bad_jobs_are_refused_before_anything_is_sent(tmp_path, fake, there, lines, options, says):
    path = jobs_file(tmp_path, lines, {"a.txt": b"alpha"})
    with pytest.raises(InvalidInput, match=re.escape(says)):
        remote.submit(there, "uppercase", path, options)
    assert fake.calls == []


@pytest.mark.parametrize("app, key, says, advice", [
    ("nosuch", AUTH, "has no app 'nosuch'", "app's name"),
    ("uppercase", "f" * 32, "refused the authenticator in", "boincserver user add"),
])
def test_refusals_name_the_problem_and_the_fix(tmp_path, fake, auth_file, app, key, says, advice):
    auth_file.write_text(key)
    there = remote.connect("http://boinc.test/demo/", auth_file, transport=httpx.MockTransport(fake))
    path = jobs_file(tmp_path, ["a.txt"], {"a.txt": b"alpha"})
    with pytest.raises(InvalidInput, match=says) as caught:
        remote.submit(there, app, path)
    assert advice in caught.value.advice and fake.batches == {}


def test_an_app_the_account_may_not_submit_to(tmp_path, fake, there):
    fake.apps.add("wordcount")
    path = jobs_file(tmp_path, ["a.txt"], {"a.txt": b"alpha"})
    with pytest.raises(InvalidInput, match="may not submit to app 'wordcount'") as caught:
        remote.submit(there, "wordcount", path)
    assert "--submit wordcount" in caught.value.advice


def test_the_authenticator_file_must_be_private_and_hold_one_word(tmp_path, auth_file):
    auth_file.chmod(0o644)
    with pytest.raises(InvalidInput, match="may be read by others") as caught:
        remote.read_authenticator(auth_file)
    assert caught.value.advice == f"chmod 600 {auth_file}"
    auth_file.chmod(0o600)
    auth_file.write_text("two words")
    with pytest.raises(InvalidInput, match="does not hold an authenticator"):
        remote.read_authenticator(auth_file)
    with pytest.raises(InvalidInput, match="does not exist"):
        remote.read_authenticator(tmp_path / "none")


def test_not_a_project_url(auth_file, fake):
    with pytest.raises(InvalidInput, match="not a project's URL"):
        remote.connect("boinc.test/demo", auth_file)
    there = remote.connect("http://boinc.test/other/", auth_file, transport=httpx.MockTransport(fake))
    with pytest.raises(remote.RemoteError, match="HTTP 404"):
        remote.batches(there)


def test_batches_abort_retire_and_results(tmp_path, fake, there):
    remote.submit(there, "uppercase", jobs_file(tmp_path, ["a.txt", "a.txt"], {"a.txt": b"alpha"}))
    assert remote.batches(there) == [{"id": 1, "name": fake.batches[1]["name"], "app": "uppercase", "created": 7,
                                      "jobs": 2, "failed": 1, "state": "in progress", "done": 0, "pending": 1}]
    assert remote.abort(there, 1) == {"batch": 1, "aborted": True} and fake.batches[1]["state"] == 3
    assert remote.retire(there, 1) == {"batch": 1, "retired": True} and remote.batches(there) == []
    assert remote.results(there, batch=1)["batch"] == 1
    got = remote.results(there, batch=1, out=tmp_path / "out")
    assert (tmp_path / "out" / "job_1" / "out").read_bytes() == b"HELLO\n"
    assert got["copied"] == [str(tmp_path / "out" / "job_1" / "out")] and not (tmp_path / "evil").exists()


def test_results_of_an_unknown_batch_or_an_older_project(fake, there, auth_file):
    with pytest.raises(InvalidInput, match="no batch 99"):
        remote.results(there, batch=99)
    older = remote.connect("http://boinc.test/demo/", auth_file, transport=httpx.MockTransport(
        lambda request: httpx.Response(404, html="<html>Not Found</html>")))
    with pytest.raises(remote.RemoteError, match="predates remote results"):
        remote.results(older, batch=1)


def test_reply_reading():
    with pytest.raises(rpc.RpcRefused) as caught:
        rpc.reply("submit_batch", b"<submit_batch>\n<error>\n<error_num>-1</error_num>\n"
                                  b"<error_msg>create_work failed: a < b & c</error_msg>\n</error>\n</submit_batch>\n")
    assert caught.value.message == "create_work failed: a < b & c"
    with pytest.raises(rpc.RpcGarbled):
        rpc.reply("query_files", b"<html>Internal Server Error</html>")
    warned = b"<br />\n<b>Deprecated</b>: something<br />\n<query_files>\n<absent_files><file>1</file></absent_files>\n</query_files>"
    assert rpc.absent_files(rpc.reply("query_files", warned)) == [1]
