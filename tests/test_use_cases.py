"""What build, up, app add, submit, backup, restore and upgrade ask of Docker, without Docker.

Each use case runs against tests/fakes.py's RecordingEngine; the tests check the calls it
made: which service or image, which command, what was streamed into it, and in what order.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
from pathlib import Path

import pytest

from boincserver import __version__, apps, backup, context, jobs, pins, project, scan, sealed, upgrade
from boincserver.boinc import releases
from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import jobs as bj
from boincserver.boinc import keys
from boincserver.engine import Engine
from boincserver.errors import DockerError, EnvironmentProblem, InvalidInput, ProjectError
from boincserver.settings import Settings, load

from fakes import RecordingEngine

PASSPHRASE = "a good passphrase"
ROOT = "/home/boincadm/project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@pytest.fixture
def serving(monkeypatch):
    """The home page and the scheduler answer (wait_until_serving asks over HTTP, not Docker)."""
    asked = []

    def http_get(url, host_header, timeout=5.0):
        asked.append(url)
        return 200, "<scheduler_reply></scheduler_reply>"
    monkeypatch.setattr(context, "http_get", http_get)
    return asked


def make_project(tmp_path: Path, **settings) -> context.Project:
    folder = tmp_path / "demo"
    tmp_path.mkdir(exist_ok=True)
    project.init(folder, Settings(project="demo", http_port=free_port(), **settings))
    engine = RecordingEngine()
    engine.base_images_current()
    return context.Project(folder.absolute(), load(folder), engine)


@pytest.fixture
def demo(tmp_path) -> context.Project:
    return make_project(tmp_path)


def created(p: context.Project, **record) -> None:
    """The project volume as the makeproject job leaves it."""
    data = {"project": "demo", "boinc_user": "boincadm", "project_root": ROOT, "boinc_commit": pins.BOINC_COMMIT,
            **record}
    for volume in ("project", "secrets", "results"):
        p.engine.volumes.setdefault(p.volume(volume), {})
    p.engine.volumes[p.volume("project")][context.CREATED_RECORD] = json.dumps(data).encode()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


# -- the fake stays the Engine's double -----------------------------------------------------
def test_the_recording_engine_has_the_engines_methods_and_signatures():
    import inspect
    public = {n for n in vars(Engine) if not n.startswith("_") and callable(getattr(Engine, n))}
    assert public == {n for n in vars(RecordingEngine) if not n.startswith("_") and hasattr(getattr(
        RecordingEngine, n), "__signature__")}
    for name in public:
        assert inspect.signature(getattr(RecordingEngine, name)) == inspect.signature(getattr(Engine, name)), name
    with pytest.raises(TypeError):  # a call the real Engine would refuse is refused
        RecordingEngine().run(["true"], service="apache", no_such_option=True)


# -- build ------------------------------------------------------------------------------------
def test_build_makes_each_project_image_from_its_overlay_once(demo):
    result = project.build(demo, context.Silent())
    built = demo.engine.named("build_image")
    assert [c.args["tag"] for c in built] == [f"boincserver-demo/{s}:{__version__}" for s in project.SERVICES]
    for call, service in zip(built, project.SERVICES):
        assert call.args["context"] == demo.dir
        assert call.args["dockerfile"] == demo.dir / "images" / service / "Dockerfile"
        assert call.args["build_args"] == {"PROJECT": "demo", "BOINC_USER": "boincadm", "PROJECT_ROOT": ROOT}
        assert call.args["labels"][project.PROJECT_INPUTS_LABEL] == project.project_inputs_digest(demo, service)
    assert result.project_built == list(project.SERVICES) and result.base_built == []
    assert not demo.engine.named("pull", "push_image", "run", "exec")
    # Nothing changed: nothing is built again.
    demo.engine.calls.clear()
    assert project.build(demo, context.Silent()).project_built == []
    assert not demo.engine.named("build_image")
    # A changed overlay rebuilds the images.
    (demo.dir / "images" / "apache" / "extra.conf").write_text("# more\n")
    assert project.build(demo, context.Silent()).project_built == list(project.SERVICES)


def test_build_on_a_full_disk_builds_and_pulls_nothing(demo):
    demo.engine.free_disk = 2 << 30
    with pytest.raises(EnvironmentProblem, match="building needs about 3 GiB"):
        project.build(demo, context.Silent())
    assert not demo.engine.named("build_image", "pull")


def test_build_pushes_by_content_tag_and_another_machine_pulls_instead_of_building(tmp_path):
    p = make_project(tmp_path, registry="127.0.0.1:5000/ci")
    project.build(p, context.Silent(), tags=["v1"], push=True)
    digest = project.project_inputs_digest(p, "apache")
    content = f"127.0.0.1:5000/ci/boincserver-demo/apache:{__version__}-in{digest[:20]}"
    assert content in [c.args["tag"] for c in p.engine.named("pull")]  # looked for before building
    pushed = [c.args["reference"] for c in p.engine.named("push_image")]
    assert content in pushed and "127.0.0.1:5000/ci/boincserver-demo/apache:v1" in pushed and len(pushed) == 6
    # The same folder on a machine with nothing built: pulled by content tag, nothing built.
    other = context.Project(p.dir, p.settings, RecordingEngine(registry=dict(p.engine.registry)))
    other.engine.base_images_current()
    result = project.build(other, context.Silent())
    assert result.pulled == list(project.SERVICES) and not other.engine.named("build_image")
    assert other.engine.find("tag_image", "apache").args == {"source": content,
                                                             "target": f"boincserver-demo/apache:{__version__}"}


# -- up -----------------------------------------------------------------------------------------
def test_up_builds_then_starts_everything_and_waits(demo, serving):
    result = project.up(demo, context.Silent(), url_base="http://example.org")
    names = [c.name for c in demo.engine.calls]
    assert names.index("compose_up") > max(i for i, n in enumerate(names) if n == "build_image")
    up = demo.engine.find("compose_up")
    assert up.args["services"] is None and up.args["env"] is None
    assert load(demo.dir).url_base == "http://example.org"
    assert "URL_BASE=http://example.org" in (demo.dir / ".env").read_text()
    assert result.master_url == "http://example.org/demo/"
    assert serving[-1] == f"http://127.0.0.1:{demo.settings.http_port}/demo_cgi/cgi"
    assert not demo.engine.named("run", "exec")  # no secret, no key: nothing run in a container


def test_up_with_a_new_url_keeps_the_users_comments_and_layout(demo, serving):
    """`up --url-base` changes that one value of boincserver.toml and nothing else of the file."""
    path = demo.dir / "boincserver.toml"
    port = demo.settings.http_port
    hand_made = (f"# Our volunteer project: ask Ada before changing anything.\n\n"
                 f"[project]\n"
                 f"http_port = {port}   # the university firewall opens this one\n\n"
                 f"# public name, see DNS ticket 42\n"
                 f"url_base = 'http://127.0.0.1:8080'\n"
                 f"project = \"demo\"\n"
                 f"boincserver_version = \"{__version__}\"\n")
    path.write_text(hand_made)
    demo.settings = load(demo.dir)
    project.up(demo, context.Silent(), url_base="http://boinc.example.org")
    assert path.read_text() == hand_made.replace("'http://127.0.0.1:8080'", '"http://boinc.example.org"')
    assert load(demo.dir) == Settings(project="demo", http_port=port, url_base="http://boinc.example.org")


def moving_to_https(p: context.Project, monkeypatch, md_status: dict, certified: bool):
    """A running http:// project; mod_md answers `md_status`; what each compose up saw."""
    from boincserver import tls
    running(p)
    p.engine.on("exec", "curl", "md-status", out=md_status)
    monkeypatch.setattr(context.time, "sleep", lambda s: None)
    monkeypatch.setattr(tls, "served_certificate", lambda *a, **k: tls.Served(
        "1A25665132BFB661", None, "CN=Pebble Intermediate CA") if certified else None)
    seen = []
    up = p.engine.compose_up
    monkeypatch.setattr(p.engine, "compose_up", lambda *a, **k: (seen.append(
        ((p.dir / ".env").read_text(), (p.dir / "boincserver.toml").read_text())), up(*a, **k))[1])
    return seen


HTTPS = {"url_base": "https://boinc.test", "changes": {"acme_email": "ops@example.org",
                                                          "acme_directory": "https://pebble:14000/dir"}}


def test_up_to_an_https_url_gets_the_certificate_before_the_url_moves(demo, serving, monkeypatch):
    from test_tls import READY
    seen = moving_to_https(demo, monkeypatch, READY, certified=True)
    before = (demo.dir / "boincserver.toml").read_text()
    result = project.up(demo, context.Silent(), url_base=HTTPS["url_base"], changes=HTTPS["changes"])
    assert result.master_url == "https://boinc.test/demo/"
    (first_env, first_toml), (second_env, _) = seen
    # Phase 1: Apache asks for the certificate while the project still serves its old URL.
    assert "TLS_URL_BASE=https://boinc.test\n" in first_env and "URL_BASE=http://127.0.0.1:8080\n" in first_env
    assert first_toml == before
    # Phase 2, once the certificate is served: the URL moves.
    assert "\nURL_BASE=https://boinc.test\n" in second_env
    assert load(demo.dir).url_base == "https://boinc.test"


def test_up_to_an_https_url_the_ca_refuses_leaves_the_project_as_it_was(demo, serving, monkeypatch):
    from test_tls import UNREACHABLE_CA
    seen = moving_to_https(demo, monkeypatch, UNREACHABLE_CA, certified=False)
    before_toml = (demo.dir / "boincserver.toml").read_text()
    before_env = (demo.dir / ".env").read_text()
    with pytest.raises(ProjectError, match="no certificate for boinc.test: Unsuccessful in contacting") as err:
        project.up(demo, context.Silent(), url_base=HTTPS["url_base"], changes=HTTPS["changes"])
    assert "--acme-directory" in err.value.advice
    assert len(seen) == 2  # phase 1, then the old settings again
    assert (demo.dir / "boincserver.toml").read_text() == before_toml
    assert (demo.dir / ".env").read_text() == before_env


def test_up_refuses_https_by_acme_without_a_contact_before_touching_anything(demo, serving):
    before = (demo.dir / "boincserver.toml").read_text()
    with pytest.raises(InvalidInput, match="needs a contact address"):
        project.up(demo, context.Silent(), url_base="https://boinc.test")
    assert (demo.dir / "boincserver.toml").read_text() == before
    assert not demo.engine.named("build_image", "compose_up")


def test_up_refuses_a_changed_locked_value_before_writing_anything(demo, serving):
    created(demo, boinc_user="someone")
    before = (demo.dir / "boincserver.toml").read_text()
    with pytest.raises(ProjectError, match="BOINC_USER 'someone' -> 'boincadm'"):
        project.up(demo, context.Silent(), url_base="http://example.org")
    assert (demo.dir / "boincserver.toml").read_text() == before
    assert not demo.engine.named("build_image", "compose_up")
    read = demo.engine.find("run", context.CREATED_RECORD)
    assert read.args["volumes"] == [("boincserver-demo_project", "/v", "ro")] and read.args["network"] == "none"


def test_up_with_offline_signing_sends_the_public_key_only(tmp_path, serving):
    keys_dir = tmp_path / "keys"
    p = make_project(tmp_path, offline_signing_keys=str(keys_dir))
    p.engine.on("run", "set-public", out={"fingerprint": "ab12"})
    project.up(p, context.Silent())
    private = (keys_dir / "code_sign_private").read_text()
    sent = p.engine.find("run", "set-public")
    assert sent.args["service"] == "makeproject" and sent.args["dependencies"] is True
    assert sent.command == ["boincserver-project-setup", "secrets", "set-public", "code_sign"]
    assert sent.args["stdin"] == (keys_dir / "code_sign_public").read_text().encode()
    assert p.engine.index(sent) < p.engine.index(p.engine.find("compose_up"))
    secret_lines = scan.private_hex_lines(private)
    assert len(secret_lines) > 10
    assert not any(line in json.dumps(c.args, default=repr) for c in p.engine.calls for line in secret_lines)


# -- app add ----------------------------------------------------------------------------------
def running(p: context.Project) -> context.Project:
    created(p)
    p.engine.running |= {"mysql", "apache"}
    return p


def sign_in_makeproject(call):
    return 0, json.dumps({m: f"signature of {m}" for m in call.command[2:]}).encode(), ""


def test_app_add_signs_in_makeproject_and_streams_the_version_into_apache(demo):
    p = running(demo)
    wrapper = "/usr/src/boinc/samples/wrapper/wrapper__x86_64-pc-linux-gnu"
    p.engine.image_files[(pins.base_image("makeproject"), wrapper)] = b"\x7fELF wrapper API_VERSION_8.1.0\0"
    p.engine.image_files[(pins.base_image("makeproject"), "/usr/lib/x86_64-linux-gnu/libzip.so.4")] = b"libzip"
    p.engine.on("exec", "boincserver-jobs app-state wordcount", out={"version_dirs": ["1.00"],
                                                                        "project_xml": "<boinc>\n</boinc>\n"})
    p.engine.on("run", "sign-md5", answer=sign_in_makeproject)
    p.engine.on("exec", "app-install", out={"daemons_added": ["sample_trivial_validator -app wordcount"]})

    spec = apps.load_example("wordcount")
    result = apps.add(p, spec)

    assert (result.version, result.daemons_added) == ("1.01", ["sample_trivial_validator -app wordcount"])
    sign = p.engine.find("run", "sign-md5")
    assert (sign.args["service"], sign.args["entrypoint"]) == ("makeproject", None)
    assert sign.command[:2] == ["boincserver-project-setup", "sign-md5"] and len(sign.command) > 2
    install = p.engine.find("exec", "app-install")
    assert install.args["service"] == "apache" and install.args["user"] == "boincadm"
    assert install.args["workdir"] == ROOT
    vdir = "apps/wordcount/1.01/x86_64-pc-linux-gnu"
    assert install.command[-3:] == ["wordcount", json.dumps([{"cmd": d.cmd, "xml": d.xml()} for d in
                                                             boinc_apps.app_daemons("wordcount", spec.validator, spec.assimilator)]), vdir]
    sent = members(install.args["stdin"])
    worker = (Path(apps.examples_dir()) / "wordcount" / "worker.sh").read_bytes()
    worker_name = f"{vdir}/wordcount_1.01_x86_64-pc-linux-gnu_worker"
    assert sent[worker_name] == worker
    assert sent[worker_name + ".sig"] == f"signature of {hashlib.md5(worker).hexdigest()}".encode()
    assert any(data == b"libzip" for data in sent.values())
    assert b"<app>" in sent["project.xml"] and b"<name>wordcount</name>" in sent["project.xml"]
    assert {f"{vdir}/version.xml", "templates/wordcount_in", "templates/wordcount_out"} <= set(sent)
    # Signed before anything was sent; one signing run for all the files.
    assert p.engine.index(sign) < p.engine.index(install) and len(p.engine.named("run")) == 3


def test_app_add_with_an_offline_key_signs_here(demo, tmp_path):
    p = running(demo)
    key = Path(__file__).parent / "fixtures" / "keys" / "test_only_private_key"
    p.engine.image_files[(pins.base_image("makeproject"), "/usr/src/boinc/samples/example_app/uc2")] = b"uc2 program"
    p.engine.on("exec", "app-state", out={"version_dirs": [], "project_xml": "<boinc>\n</boinc>\n"})
    p.engine.on("exec", "app-install", out={})
    result = apps.add(p, apps.load_example("uppercase"), key)
    assert "key file" in result.signed_with
    assert not [c for c in p.engine.named("run") if c.args["service"] == "makeproject"]  # no key on the server
    sent = members(p.engine.find("exec", "app-install").args["stdin"])
    exe = next(n for n, data in sent.items() if data == b"uc2 program")
    (tmp_path / "exe").write_bytes(sent[exe])
    public = keys.public_from_private(keys.parse_private_key(key.read_text()))
    assert keys.verify_file_signature(tmp_path / "exe", sent[exe + ".sig"], public)  # as update_versions checks


def test_app_add_on_a_stopped_project_says_so(demo):
    created(demo)
    with pytest.raises(ProjectError, match="not running"):
        apps.add(demo, apps.load_example("uppercase"))


# -- submit -------------------------------------------------------------------------------------
def test_submit_streams_each_input_once_and_the_create_work_lines(demo, tmp_path):
    p = running(demo)
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")
    jobs_file = tmp_path / "jobs.txt"
    jobs_file.write_text("a.txt\n--wu-name second b.txt\na.txt\n")
    p.engine.on("exec", "boincserver-jobs submit", out={"batch": 7, "created": 3, "first": "x_1"})

    result = jobs.submit(p, "uppercase", jobs_file, {"target_nresults": 2, "max_error_results": 3}, "my batch")

    assert (result.batch, result.created, result.files_sent) == (7, 3, 2)
    call = p.engine.find("exec", "boincserver-jobs submit")
    assert call.args["service"] == "apache" and call.args["user"] == "boincadm" and call.args["workdir"] == ROOT
    folder = call.command[6]
    assert call.command[:2] == ["sh", "-c"] and call.command[3:6] == ["sh", "uppercase", "1"]
    assert call.command[7:] == ["uppercase", "my batch", "--target_nresults", "2", "--max_error_results", "3",
                                "--max_total_results", "5"]
    sent = members(call.args["stdin"])
    a, b = (bj.staged_name(hashlib.md5(data).hexdigest()) for data in (b"alpha\n", b"beta\n"))
    inputs = {n: d for n, d in sent.items() if n.startswith("download/")}
    assert inputs == {f"download/{bj.dir_hier_path(a)}": b"alpha\n", f"download/{bj.dir_hier_path(b)}": b"beta\n"}
    prefix = "uppercase_" + hashlib.sha256(jobs_file.read_bytes()).hexdigest()[:12]  # the same file, the same names
    assert sent[f"{folder}/jobs.txt"].decode().splitlines() == [
        f"--wu_name {prefix}_1 {a}", f"--wu_name second {b}", f"--wu_name {prefix}_3 {a}"]


def test_create_work_is_one_job_without_a_batch_its_priority_on_its_line(demo, tmp_path):
    p = running(demo)
    (tmp_path / "in.txt").write_text("one\n")
    p.engine.on("exec", "boincserver-jobs submit", out={"batch": 0, "created": 1, "first": "one_job"})
    result = jobs.create_work(p, "uppercase", [tmp_path / "in.txt"], "one_job", "-v",
                              {"priority": 5, "delay_bound": 3600})
    call = p.engine.find("exec", "boincserver-jobs submit")
    folder = call.command[6]
    assert call.command[7:] == ["uppercase", "-", "--delay_bound", "3600"]
    staged = bj.staged_name(hashlib.md5(b"one\n").hexdigest())
    assert members(call.args["stdin"])[f"{folder}/jobs.txt"].decode().splitlines() == [
        bj.stdin_line("one_job", [staged], "-v", 5)]
    assert (result.batch, result.first) == (0, "one_job")


def test_submit_checks_everything_before_docker(demo, tmp_path):
    p = running(demo)
    jobs_file = tmp_path / "jobs.txt"
    jobs_file.write_text("missing.txt\n")
    with pytest.raises(InvalidInput, match="line 1: input file missing.txt does not exist"):
        jobs.submit(p, "uppercase", jobs_file)
    (tmp_path / "here.txt").write_text("x")
    jobs_file.write_text("here.txt\n")
    with pytest.raises(InvalidInput, match="max-error-results"):
        jobs.submit(p, "uppercase", jobs_file, {"max_error_results": 0})
    assert p.engine.calls == []


# -- backup and restore -----------------------------------------------------------------------
def answer_backup(engine: RecordingEngine) -> None:
    engine.on("run", "-C /run/boincserver/secrets", out=b"SECRETS-TAR")
    engine.on("exec", "mariadb-dump", out=b"CREATE DATABASE demo;")
    engine.on("run", "-C /run/boincserver/project", out=b"PROJECT-TAR" * 100_000)  # over one 1 MiB piece
    engine.on("run", "-C /run/boincserver/results", out=b"RESULTS-TAR")
    engine.on("run", "-C /run/boincserver/tls", out=b"TLS-TAR")


LIVE_TAR = ["--numeric-owner", "--ignore-failed-read", *backup.TAR_QUIET]


def test_a_file_that_changes_while_read_does_not_fail_the_backup_but_a_fatal_tar_error_does(demo, tmp_path):
    """A live project changes under tar (bin/start removes stop_sched, logs grow): GNU tar's
    exit 1 keeps the archive, 2 fails the backup and leaves no file."""
    p = running(demo)
    answer_backup(p.engine)
    p.engine.on("run", "-C /run/boincserver/project", out=b"PROJECT-TAR", code=1)
    backup.backup(p, context.Silent(), tmp_path / "ok.backup", PASSPHRASE)
    assert read_backup(tmp_path / "ok.backup")["project"] == b"PROJECT-TAR"
    p.engine.on("run", "-C /run/boincserver/project", code=2, err="tar: ./upload: Cannot open: Permission denied")
    with pytest.raises(DockerError, match="Cannot open"):
        backup.backup(p, context.Silent(), tmp_path / "bad.backup", PASSPHRASE)
    assert not list(tmp_path.glob("bad.backup*"))


def read_backup(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as src:
        r = sealed.OpenedReader(src, PASSPHRASE)
        got = {}
        while (name := sealed.next_section(r)) is not None:
            got[name] = b"".join(sealed.section_chunks(r))
    return got


def test_backup_streams_the_dump_and_the_volumes_into_one_sealed_file(demo, tmp_path):
    p = running(demo)
    p.engine.running.discard("mysql")
    answer_backup(p.engine)
    result = backup.backup(p, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)

    assert p.engine.find("compose_up").args["services"] == ["mysql"]  # the dump needs MariaDB
    tars = [c for c in p.engine.named("run") if c.args["entrypoint"] == "tar"]
    assert [(c.args["service"], c.command) for c in tars] == [
        ("makeproject", ["-C", "/run/boincserver/secrets", *LIVE_TAR, "-cf", "-", "."]),
        ("makeproject", ["-C", "/run/boincserver/tls", *LIVE_TAR, "-cf", "-", "."]),
        ("makeproject", ["-C", "/run/boincserver/project", *LIVE_TAR, "-cf", "-", "."]),
        ("makeproject", ["-C", "/run/boincserver/results", *LIVE_TAR, "-cf", "-", "."])]
    assert all(c.args["dependencies"] is False for c in tars)
    dump = p.engine.find("exec", "mariadb-dump")
    assert dump.args["service"] == "mysql" and dump.command[-2:] == ["--databases", "demo"]
    got = read_backup(tmp_path / "demo.backup")
    assert list(got) == ["manifest", "secrets", "tls", "database", "project", "results"]
    assert got["secrets"] == b"SECRETS-TAR" and got["database"] == b"CREATE DATABASE demo;"
    assert got["tls"] == b"TLS-TAR"  # the certificates and mod_md's ACME account
    assert got["project"] == b"PROJECT-TAR" * 100_000 and got["results"] == b"RESULTS-TAR"
    manifest = json.loads(got["manifest"])
    assert manifest["locked"] == p.settings.locked_values() and manifest["boincserver"] == __version__
    assert result.sections["project"] == len(got["project"])
    assert ((tmp_path / "demo.backup").stat().st_mode & 0o777) == 0o600


def test_a_failed_dump_leaves_no_backup_file(demo, tmp_path):
    p = running(demo)
    answer_backup(p.engine)
    p.engine.on("exec", "mariadb-dump", code=2, err="mariadb-dump: Got error: 1045")
    with pytest.raises(DockerError, match="1045"):
        backup.backup(p, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)
    assert list(tmp_path.glob("demo.backup*")) == []


def test_restore_feeds_each_section_to_its_place_then_gives_the_database_user_its_password(demo, tmp_path):
    source = running(make_project(tmp_path / "old"))
    answer_backup(source.engine)
    backup.backup(source, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)

    p = demo  # a fresh folder, no data yet
    result = backup.restore(p, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)

    assert result["restored"] == ["secrets", "tls", "database", "project", "results"]
    fed = [(c.args.get("service"), c.command, c.args["stdin"]) for c in p.engine.commands()
           if c.args["stdin"] is not None]
    assert fed[:5] == [
        ("makeproject", ["-C", "/run/boincserver/secrets", "--numeric-owner", "-xpf", "-"], b"SECRETS-TAR"),
        ("makeproject", ["-C", "/run/boincserver/tls", "--numeric-owner", "-xpf", "-"], b"TLS-TAR"),
        ("mysql", ["mariadb"], b"CREATE DATABASE demo;"),
        ("makeproject", ["-C", "/run/boincserver/project", "--numeric-owner", "-xpf", "-"], b"PROJECT-TAR" * 100_000),
        ("makeproject", ["-C", "/run/boincserver/results", "--numeric-owner", "-xpf", "-"], b"RESULTS-TAR")]
    db_user = p.engine.commands()[-1]
    assert (db_user.args["service"], db_user.args["entrypoint"]) == ("makeproject", None)
    assert db_user.command == ["boincserver-project-setup", "db-user"] and db_user.args["stdin"] is None


def test_a_backup_from_before_the_tls_volume_still_restores(demo, tmp_path, monkeypatch):
    source = running(make_project(tmp_path / "old"))
    answer_backup(source.engine)
    monkeypatch.setattr(backup, "SECTIONS", ("secrets", "database", "project", "results"))
    backup.backup(source, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)
    monkeypatch.undo()
    result = backup.restore(demo, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)
    assert result["restored"] == ["secrets", "database", "project", "results"]
    assert not [c for c in demo.engine.named("run") if "/run/boincserver/tls" in c.text]


def test_restore_refuses_a_project_with_data_and_a_wrong_passphrase(demo, tmp_path):
    source = running(make_project(tmp_path / "old"))
    answer_backup(source.engine)
    backup.backup(source, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)
    with pytest.raises(InvalidInput, match="wrong passphrase"):
        backup.restore(demo, context.Silent(), tmp_path / "demo.backup", "not the passphrase")
    created(demo)
    with pytest.raises(ProjectError, match="already has data"):
        backup.restore(demo, context.Silent(), tmp_path / "demo.backup", PASSPHRASE)
    assert not [c for c in demo.engine.commands() if c.args["stdin"] is not None]


# -- upgrade --------------------------------------------------------------------------------
def test_upgrade_backs_up_rebuilds_restarts_then_runs_upgrade_db_and_records_the_pins(tmp_path, serving):
    p = running(make_project(tmp_path, boincserver_version="0.0.9"))
    p.engine.volumes[p.volume("project")][context.CREATED_RECORD] = json.dumps(
        {"project": "demo", "boinc_user": "boincadm", "project_root": ROOT, "boinc_commit": "0" * 40}).encode()
    answer_backup(p.engine)
    p.engine.on("exec", "php upgrade_db.php", out=b"Performing database updates\ndone\n")
    p.engine.on("exec", "cat", out=b"27030\n")

    result = upgrade.upgrade(p, context.Silent(), lambda: PASSPHRASE, tmp_path / "before.backup")

    assert result["upgraded"] is True and result["db_revision"] == "27030"
    assert read_backup(tmp_path / "before.backup")["database"] == b"CREATE DATABASE demo;"
    order = [p.engine.index(c) for c in (p.engine.find("exec", "mariadb-dump"), p.engine.named("build_image")[0],
                                         p.engine.named("compose_up")[-1], p.engine.find("exec", "upgrade_db.php"))]
    assert order == sorted(order)
    php = p.engine.find("exec", "upgrade_db.php")
    assert php.args["user"] == "boincadm" and php.args["workdir"] == f"{ROOT}/html/ops"
    assert php.args["stdin"] == b"y\n"  # its one question, answered
    record = p.engine.commands()[-1]
    assert record.args["user"] == "root" and record.command[-1] == f"{ROOT}/{upgrade.PINS_RECORD}"
    written = json.loads(record.args["stdin"])
    assert written["db_revision"] == "27030" and written["boinc_commit"] == pins.BOINC_COMMIT
    assert written["from"]["boinc_commit"] == "0" * 40
    assert load(p.dir).boincserver_version == __version__


def test_upgrade_on_the_same_pins_changes_nothing(demo, serving):
    p = running(demo)
    p.engine.volumes[p.volume("project")][upgrade.PINS_RECORD] = json.dumps(upgrade.target_pins()).encode()
    def no_question():
        raise AssertionError("a no-op upgrade asked for a passphrase")
    result = upgrade.upgrade(p, context.Silent(), no_question)
    assert result["upgraded"] is False and "nothing to do" in result["message"]
    assert not p.engine.named("build_image", "compose_up", "exec")
    assert [c.command[2] for c in p.engine.named("run")] == [
        f"/v/{context.CREATED_RECORD}",  # is there a project
        *(f"/v/{r}" for r in (releases.CREATED_RECORD, releases.PINS_RECORD, releases.RELEASE_RECORD))]


# -- your own certificate ---------------------------------------------------------------------
def own_files(tmp_path: Path, names=("boinc.test",), days=(-1, 30)) -> tuple[Path, Path]:
    from test_tls import make_certificate
    chain, key = make_certificate(names, days=days)
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    return tmp_path / "chain.pem", tmp_path / "key.pem"


def test_tls_set_checks_the_files_before_anything_runs(tmp_path):
    from boincserver import certificates
    p = running(make_project(tmp_path, url_base="https://boinc.test", acme_email="ops@example.org"))
    chain, key = own_files(tmp_path, ("other.test",))
    with pytest.raises(InvalidInput, match="is for other.test, not boinc.test"):
        certificates.set_files(p, context.Silent(), chain, key)
    with pytest.raises(InvalidInput, match="cannot read the key file"):
        certificates.set_files(p, context.Silent(), chain, tmp_path / "missing.pem")
    assert not p.engine.commands()


def test_tls_set_swaps_the_files_in_whole_and_reloads_apache_when_it_serves_files(tmp_path, monkeypatch):
    from boincserver import certificates
    p = running(make_project(tmp_path, url_base="https://boinc.test", tls="files"))
    p.engine.images[p.image("makeproject")] = {}
    monkeypatch.setattr(certificates, "wait_until_certified", lambda *a, **k: None)
    chain, key = own_files(tmp_path)
    result = certificates.set_files(p, context.Silent(), chain, key)
    install = p.engine.find("run", "files.new")
    assert install.args["service"] == "makeproject" and install.command[-1] == certificates.TLS_MOUNT
    with tarfile.open(fileobj=io.BytesIO(install.args["stdin"])) as tar:
        assert sorted(tar.getnames()) == ["fullchain.pem", "privkey.pem"]
    assert [c.command for c in p.engine.named("exec")] == [["apache2ctl", "-t"], ["apache2ctl", "graceful"]]
    assert result["switch"] is False and result["names"] == ["boinc.test"]


def test_tls_set_puts_the_old_files_back_when_apache_refuses_the_new_ones(tmp_path):
    from boincserver import certificates
    p = running(make_project(tmp_path, url_base="https://boinc.test", tls="files"))
    p.engine.images[p.image("makeproject")] = {}
    p.engine.on("exec", "apache2ctl -t", code=1, err="AH02565: Certificate and private key do not match")
    chain, key = own_files(tmp_path)
    with pytest.raises(ProjectError, match="Apache refuses the new certificate: AH02565") as err:
        certificates.set_files(p, context.Silent(), chain, key)
    assert "old certificate is served" in err.value.advice
    assert p.engine.find("run", "mv files.old files")
    assert not [c for c in p.engine.named("exec") if "graceful" in c.text]


def test_tls_set_before_the_first_up_says_to_start_the_project(tmp_path):
    from boincserver import certificates
    p = make_project(tmp_path, url_base="https://boinc.test", tls="files")
    chain, key = own_files(tmp_path)
    with pytest.raises(ProjectError, match="no images yet") as err:
        certificates.set_files(p, context.Silent(), chain, key)
    assert "boincserver up" in err.value.advice and not p.engine.commands()


# -- upgrade across BOINC releases ------------------------------------------------------------
OLD = pins.server_release("1.4.7")


def at_old_release(tmp_path: Path) -> context.Project:
    """A project made at BOINC 1.4.7 (init --boinc-release), running."""
    p = running(make_project(tmp_path, boinc_release="1.4.7"))
    created(p, boinc_commit=OLD.commit)
    return p


def test_a_project_at_an_older_release_builds_and_names_that_releases_images(tmp_path):
    p = make_project(tmp_path, boinc_release="server_release/1.4/1.4.7")
    assert load(p.dir).boinc_release == "1.4.7"
    for service in ("mysql", "apache", "makeproject"):
        assert f"FROM {pins.base_image(service, '1.4.7')}" in (p.dir / f"images/{service}/Dockerfile").read_text()
    source = tmp_path / "boinc-147.tar.gz"
    source.write_bytes(b"")
    p.engine.images[pins.BASE_OS_IMAGE] = {}
    import boincserver.boinc_source as boinc_source
    asked = []
    original = boinc_source.resolve
    try:
        boinc_source.resolve = lambda *a, **k: asked.append(k.get("release")) or source
        project.build(p, context.Silent())
    finally:
        boinc_source.resolve = original
    assert asked == [OLD]
    built = {c.args["tag"]: c.args["build_args"] for c in p.engine.named("build_image")}
    assert built[pins.base_image("makeproject", "1.4.7")]["BOINC_COMMIT"] == OLD.commit
    assert pins.base_image("makeproject") not in built


def test_upgrade_dry_run_lists_the_release_change_and_changes_nothing(tmp_path, serving):
    p = at_old_release(tmp_path)
    before = {f: f.read_text() for f in p.dir.rglob("*") if f.is_file()}

    def no_question():
        raise AssertionError("a dry run asked for a passphrase")
    result = upgrade.upgrade(p, context.Silent(), no_question, dry_run=True)

    assert result["dry_run"] is True and result["upgraded"] is False
    assert any("BOINC server 1.4.7" in c and "-> 1.6.2" in c for c in result["changes"])
    assert any("boinc_release 1.4.7 -> 1.6.2" in c for c in result["changes"])
    assert not p.engine.named("build_image", "compose_up", "compose_stop", "exec")
    assert {f: f.read_text() for f in p.dir.rglob("*") if f.is_file()} == before


def test_upgrade_across_releases_stops_apache_and_asks_the_job_to_install_the_new_one(tmp_path, serving):
    p = at_old_release(tmp_path)
    answer_backup(p.engine)
    p.engine.on("exec", "cat", out=b"27030\n")

    result = upgrade.upgrade(p, context.Silent(), lambda: PASSPHRASE, tmp_path / "before.backup")

    assert result["release"] == {"from": OLD.commit, "to": pins.BOINC_COMMIT}
    assert result["downtime_seconds"] is not None
    stop, up = p.engine.named("compose_stop")[0], p.engine.named("compose_up")[-1]
    assert stop.args["services"] == ["apache"]
    assert up.args["env"] == {"BOINC_UPGRADE": pins.BOINC_COMMIT}
    first_build = p.engine.index(p.engine.named("build_image")[0])
    assert p.engine.index(p.engine.find("exec", "mariadb-dump")) < first_build < p.engine.index(stop) \
        < p.engine.index(up)
    assert load(p.dir).boinc_release == pins.BOINC_VERSION
    assert f"FROM {pins.base_image('apache')}" in (p.dir / "images/apache/Dockerfile").read_text()
    written = json.loads(p.engine.commands()[-1].args["stdin"])
    assert written["boinc_commit"] == pins.BOINC_COMMIT and written["from"]["boinc_commit"] == OLD.commit


def test_a_failed_build_puts_the_folder_back_and_leaves_the_old_release_running(tmp_path, serving, monkeypatch):
    p = at_old_release(tmp_path)
    answer_backup(p.engine)
    before = {f: f.read_text() for f in p.dir.rglob("*") if f.is_file()}

    def failing_build(project_, reporter):
        raise DockerError(["docker", "build"], 1, "no space left on device")
    monkeypatch.setattr(upgrade.core, "build", failing_build)
    with pytest.raises(DockerError):
        upgrade.upgrade(p, context.Silent(), lambda: PASSPHRASE, tmp_path / "before.backup")

    assert {f: f.read_text() for f in p.dir.rglob("*") if f.is_file()} == before
    assert not p.engine.named("compose_stop", "compose_up")
    assert "apache" in p.engine.running


def test_a_failed_install_names_the_command_that_restores_the_backup(tmp_path, serving, monkeypatch):
    p = at_old_release(tmp_path)
    answer_backup(p.engine)
    before = {f: f.read_text() for f in p.dir.rglob("*") if f.is_file()}

    def failing_up(project_, reporter, **kwargs):
        raise DockerError(["docker", "compose", "up"], 1, "service makeproject didn't complete successfully")
    monkeypatch.setattr(upgrade.core, "up", failing_up)
    with pytest.raises(ProjectError) as failed:
        upgrade.upgrade(p, context.Silent(), lambda: PASSPHRASE, tmp_path / "before.backup")

    assert f"boincserver restore {tmp_path / 'before.backup'}" in failed.value.advice
    assert "makeproject" in str(failed.value)
    assert {f: f.read_text() for f in p.dir.rglob("*") if f.is_file()} == before
    assert not [c for c in p.engine.commands() if upgrade.PINS_RECORD in c.text and c.args["stdin"]]  # not recorded


def test_up_refuses_a_release_the_volume_does_not_run_before_building(tmp_path, serving):
    p = at_old_release(tmp_path)
    settings = load(p.dir).with_changes(boinc_release=pins.BOINC_VERSION)  # edited by hand
    project.write_settings(p, settings)
    with pytest.raises(ProjectError, match="runs BOINC 1.4.7 and boincserver.toml asks for BOINC 1.6.2") as refused:
        project.up(p, context.Silent())
    assert 'boinc_release = "1.4.7"' in refused.value.advice and "boincserver upgrade" in refused.value.advice
    assert not p.engine.named("build_image", "compose_up")


def test_up_goes_on_where_an_upgrade_installed_the_release(tmp_path, serving):
    p = at_old_release(tmp_path)
    project.write_settings(p, load(p.dir).with_changes(boinc_release=pins.BOINC_VERSION))
    p.engine.volumes[p.volume("project")][releases.RELEASE_RECORD] = json.dumps(
        {"boinc_commit": pins.BOINC_COMMIT}).encode()
    project.up(p, context.Silent())
    assert p.engine.named("compose_up")
