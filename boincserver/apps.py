"""The use cases `app add` and `app list`: a BOINC app installed without prompts.

`add` assembles the version on this machine (files, version.xml, job.xml for a wrapper app,
templates, the project.xml entry; for a Docker app docker_wrapper and its folder's files, all
copied into the job's folder), checks that the scheduler's plan classes can serve it, signs every file with the project's code-signing key where
that key lives (a one-shot makeproject container reads it from the secrets volume; the key
never leaves it) or with an offline key given as a file, then sends it all to the apache
service in one tar stream, where `bin/xadd` and `bin/update_versions --noconfirm` register
it and the app's validator and assimilator are added to config.xml (and, for the first Docker
app, plan_class_spec.xml is written: see boinc/plan_classes.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from boincserver import paths, pins
from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import buda as bb
from boincserver.boinc import docker_wrapper, keys, plan_classes
from boincserver.context import Project, read_file
from boincserver.errors import InvalidInput, ProjectError
from boincserver.inproject import helper_answer, in_apache, jobs_helper
from boincserver.tar_entries import add_bytes

# BOINC's wrapper, built in the makeproject base image (samples/wrapper).
WRAPPER_IN_IMAGE = {"x86_64-pc-linux-gnu": "/usr/src/boinc/samples/wrapper/wrapper__x86_64-pc-linux-gnu"}
# The wrapper built there links Debian's libzip (BOINC's zip support); volunteers' machines
# rarely have it, so each wrapper version carries it. Its own needs (libbz2, libcrypto,
# zlib) are on any machine with Debian's boinc-client.
WRAPPER_LIBRARIES = {"x86_64-pc-linux-gnu": {"libzip.so.4": "/usr/lib/x86_64-linux-gnu/libzip.so.4"}}
# BOINC's docker_wrapper, built there too (samples/docker_wrapper): statically linked C++,
# so it needs only the C library. Built for this platform only (no cross toolchain there).
DOCKER_WRAPPER_IN_IMAGE = {
    "x86_64-pc-linux-gnu": "/usr/src/boinc/samples/docker_wrapper/docker_wrapper__x86_64-pc-linux-gnu"}
IMAGE_PREFIX = "image:"
GENERATED = ("wrapper:", "job.xml:", "docker_wrapper:")

def examples_dir() -> Path:
    return paths.data_dir("examples")


def example_names() -> list[str]:
    d = examples_dir()
    return sorted(p.name for p in d.iterdir() if (p / "app.toml").is_file()) if d.is_dir() else []


def load_example(example: str, name: str | None = None) -> boinc_apps.AppSpec:
    """An app of examples/: its app.toml, with files relative to its folder."""
    folder = examples_dir() / example
    if not (folder / "app.toml").is_file():
        raise InvalidInput(f"no example app {example!r}",
                           advice=f"choose one of: {', '.join(example_names()) or 'none'}")
    data = tomllib.loads((folder / "app.toml").read_text())
    local = lambda s: s if s.startswith(IMAGE_PREFIX) else str(folder / s)  # noqa: E731
    return boinc_apps.AppSpec(
        name=name or example,
        friendly_name=data.get("friendly_name", ""),
        exe=local(data["exe"]),
        extra_files={k: local(v) for k, v in data.get("files", {}).items()},
        inputs=list(data.get("inputs", ["in"])), outputs=list(data.get("outputs", ["out"])),
        wrapper=bool(data.get("wrapper", False)),
        wrapper_command_line=data.get("wrapper_command_line", ""),
        wrapper_stdin=data.get("wrapper_stdin"), wrapper_stdout=data.get("wrapper_stdout"))


@dataclass
class AddResult:
    app: str
    version: str
    platform: str
    files: list[str]
    daemons_added: list[str] = field(default_factory=list)
    signed_with: str = ""
    seconds: float = 0.0
    # Classes written into plan_class_spec.xml by this install (the first Docker app's).
    plan_classes_added: list[str] = field(default_factory=list)


def _is_local(source: str) -> bool:
    """A file of this machine, not one of the image or one generated here."""
    return not (source.startswith(IMAGE_PREFIX) or source in GENERATED)


def invalid(exc: boinc_apps.AppError) -> InvalidInput:
    return InvalidInput(exc.message, advice=exc.advice)


def docker_spec(name: str, folder: Path | None, platform: str = boinc_apps.DEFAULT_PLATFORM,
                inputs: list[str] | None = None, outputs: list[str] | None = None) -> boinc_apps.AppSpec:
    """A Docker app: docker_wrapper runs the image built from the folder's Dockerfile.

    Every top-level file of the folder becomes a version file of that name (its executable bit
    kept), copied into the job's folder, which is the image's build context. job.toml, if
    there, is docker_wrapper's and is checked against what it reads. folder None: a version of
    docker_wrapper alone, whose jobs each bring their Dockerfile as an input (default inputs
    then: Dockerfile). Checked here, before the project is touched."""
    platform, _, plan_class = platform.partition("__")
    if platform not in DOCKER_WRAPPER_IN_IMAGE or plan_class not in ("", plan_classes.DOCKER):
        raise InvalidInput(f"Docker apps are built here for {', '.join(DOCKER_WRAPPER_IN_IMAGE)} only, not "
                           f"{platform!r} (docker_wrapper is compiled in the makeproject image for that platform)",
                           advice=f"leave out --platform (the default is {boinc_apps.DEFAULT_PLATFORM}); the "
                                  "plan class is always docker")
    spec = boinc_apps.AppSpec(name=name, platform=f"{platform}__{plan_classes.DOCKER}", docker=True)
    if folder is not None:
        spec.extra_files, spec.executables = _docker_folder_files(Path(folder))
    spec.inputs = list(inputs or (["in"] if folder is not None else [docker_wrapper.DOCKERFILE]))
    spec.outputs = list(outputs or ["out"])
    return spec


def _docker_folder_files(folder: Path) -> tuple[dict[str, str], set[str]]:
    """The files of a Docker app's folder (name -> path) and the executable ones, checked."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", advice="give the folder that holds the app's Dockerfile")
    files: dict[str, str] = {}
    executables: set[str] = set()
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() or entry.is_dir() or not entry.is_file():
            kind = "a symbolic link" if entry.is_symlink() else "a folder" if entry.is_dir() else "not a regular file"
            raise InvalidInput(f"{entry} is {kind}: a Docker app's files are the regular files at the top of its "
                               "folder, each copied into the job's folder",
                               advice="replace it by a regular file in the folder (an archive for a tree of "
                                      "files, unpacked by the Dockerfile), or move it out of the folder")
        try:
            boinc_apps.check_version_file_name(entry.name)
        except boinc_apps.AppError as exc:
            raise InvalidInput(f"{entry}: {exc.message}", advice=exc.advice or "rename it") from None
        files[entry.name] = str(entry)
        if entry.stat().st_mode & stat.S_IXUSR:  # update_versions reads the owner's x bit
            executables.add(entry.name)
    if docker_wrapper.DOCKERFILE not in files:
        raise InvalidInput(f"{folder} has no Dockerfile",
                           advice=f"write {folder / docker_wrapper.DOCKERFILE}: FROM an image, "
                                  f"WORKDIR {docker_wrapper.DEFAULT_WORKDIR}, then the program as CMD")
    workdir = docker_wrapper.DEFAULT_WORKDIR
    try:
        if docker_wrapper.JOB_TOML in files:
            try:
                config = tomllib.loads(Path(files[docker_wrapper.JOB_TOML]).read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise boinc_apps.AppError(f"{files[docker_wrapper.JOB_TOML]} is not valid TOML: {exc}",
                                          advice="correct it (docker_wrapper reads it as TOML)") from None
            workdir = docker_wrapper.check_job_config(config)
        try:
            dockerfile = Path(files[docker_wrapper.DOCKERFILE]).read_text()
        except UnicodeDecodeError:
            raise boinc_apps.AppError(f"{files[docker_wrapper.DOCKERFILE]} is not text",
                                      advice="give a Dockerfile") from None
        docker_wrapper.check_workdir(dockerfile, workdir)
    except boinc_apps.AppError as exc:
        raise invalid(exc) from None
    return files, executables


def _source_bytes(project: Project, source: str, spec: boinc_apps.AppSpec) -> bytes:
    if source == "job.xml:":
        return boinc_apps.spec_job_xml(spec).encode()
    if source in ("wrapper:", "docker_wrapper:"):
        release = project.settings.release
        if source == "docker_wrapper:" and not release.docker_apps:
            raise InvalidInput(f"BOINC {release.version}, which this project runs, has no docker_wrapper: Docker "
                               "apps need BOINC 1.6 or newer; nothing was changed",
                               advice=f"`boincserver upgrade` moves the project to BOINC {pins.BOINC_VERSION}")
        built = WRAPPER_IN_IMAGE if source == "wrapper:" else DOCKER_WRAPPER_IN_IMAGE
        path = built.get(spec.platform.split("__")[0])
        if path and source == "wrapper:" and not release.wrapper_suffix:
            path = path.rsplit("__", 1)[0]
        if not path:
            raise InvalidInput(f"BOINC's {source[:-1]} is built here for {', '.join(built)} only, "
                               f"not {spec.platform!r}", advice="use --platform x86_64-pc-linux-gnu")
        source = IMAGE_PREFIX + path
    if source.startswith(IMAGE_PREFIX):
        base = pins.base_image("makeproject", project.settings.release.version)
        data = read_file(project, base, source[len(IMAGE_PREFIX):])
        if data is None:
            raise ProjectError(f"{source[len(IMAGE_PREFIX):]} is not in {base}",
                               advice="`boincserver build` makes the base images")
        return data
    path = Path(source)
    if not path.is_file():
        raise InvalidInput(f"file {source} does not exist; nothing was installed",
                           advice="give the path of the app's executable with --exe")
    return path.read_bytes()


def sign(project: Project, md5s: list[str], sign_key: Path | None) -> tuple[dict[str, str], str]:
    """Signatures of the MD5s: with an offline key file, or the key in the secrets volume."""
    if sign_key is not None:
        try:
            private = keys.parse_private_key(Path(sign_key).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot use {sign_key} as the code-signing key: {exc}",
                               advice="give the project's code_sign_private (BOINC key format)") from None
        return keys.sign_md5s(md5s, private), f"key file {sign_key}"
    # The makeproject job's program signs with the key in the secrets volume (JSON: {md5: sig}, or
    # null when the key is kept offline); the private key never leaves that container.
    out = project.engine.run(["boincserver-project-setup", "sign-md5", *md5s], service="makeproject").out
    sigs = json.loads(out.decode().strip().splitlines()[-1])
    if sigs is None:
        raise ProjectError("the project's code-signing private key is not on the server (kept offline)",
                           advice=("sign on this machine: give the same command `--keys-dir DIR` (the folder "
                                   "holding code_sign_private; `app add` and `create-work --image` take it)"))
    return sigs, "the project's code-signing key (secrets volume)"


def _sign_files(project: Project, files: dict[str, tuple[bytes, bool]], sign_key: Path | None) -> tuple[dict[str, str], str]:
    """A signature for each file (by name), and what signed them."""
    md5 = {name: hashlib.md5(data).hexdigest() for name, (data, _) in files.items()}
    sigs, signed_with = sign(project, sorted(set(md5.values())), sign_key)
    return {name: sigs[m] for name, m in md5.items()}, signed_with


def _add_version_files(tar: tarfile.TarFile, vdir: str, files: dict[str, tuple[bytes, bool]],
                       signatures: dict[str, str]) -> None:
    """A version folder's files (executable or not), each signed one with NAME.sig beside it."""
    for name, (data, exe) in files.items():
        add_bytes(tar, f"{vdir}/{name}", data, 0o755 if exe else 0o644)
        if name in signatures:
            add_bytes(tar, f"{vdir}/{name}.sig", signatures[name].encode())


def add(project: Project, spec: boinc_apps.AppSpec, sign_key: Path | None = None) -> AddResult:
    """Install a new version of an app (creating the app the first time)."""
    started = time.monotonic()
    try:
        spec.check()
    except boinc_apps.AppError as exc:
        raise invalid(exc) from None
    if spec.wrapper:
        libs = WRAPPER_LIBRARIES.get(spec.platform, {})
        spec.libraries = {**{k: IMAGE_PREFIX + v for k, v in libs.items()}, **spec.libraries}
        spec.wrapper_stdin = spec.wrapper_stdin or spec.inputs[0]
        spec.wrapper_stdout = spec.wrapper_stdout or spec.outputs[0]
    # Local files first: a typo fails before anything touches the project.
    layout, entries = boinc_apps.version_layout(spec, 0)
    for _, source, _ in layout:
        if _is_local(source) and not Path(source).is_file():
            raise InvalidInput(f"file {source} does not exist; nothing was installed",
                               advice="give the path of the app's executable with --exe")
    state = jobs_helper(project, ["app-state", spec.name])
    check_plan_classes(state, boinc_apps.plan_class_of(spec.platform))
    num = boinc_apps.next_version(state["version_dirs"])
    layout, entries = boinc_apps.version_layout(spec, num)
    contents = {phys: (_source_bytes(project, src, spec), exe) for phys, src, exe in layout}
    main = next(e.physical_name for e in entries if e.main_program)
    api = boinc_apps.api_version(contents[main][0])
    signatures, signed_with = _sign_files(project, contents, sign_key)
    vdir = f"apps/{spec.name}/{boinc_apps.version_dir(num)}/{spec.platform}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_version_files(tar, vdir, contents, signatures)
        add_bytes(tar, f"{vdir}/version.xml", boinc_apps.version_xml(entries, spec.wrapper or spec.docker, api).encode())
        add_bytes(tar, f"templates/{spec.name}_in", boinc_apps.input_template(spec.inputs).encode())
        add_bytes(tar, f"templates/{spec.name}_out", boinc_apps.output_template(spec.outputs).encode())
        try:
            project_xml = boinc_apps.project_xml_with_app(state["project_xml"], spec.name,
                                                          spec.friendly_name or spec.name)
        except boinc_apps.AppError as exc:
            raise ProjectError(exc.message, advice=exc.advice) from None
        add_bytes(tar, "project.xml", project_xml.encode())
    daemons = [{"cmd": d.cmd, "xml": d.xml()}
               for d in boinc_apps.app_daemons(spec.name, spec.validator, spec.assimilator)]
    result = _install(project, spec.name, vdir, buf.getvalue(), daemons)
    return AddResult(spec.name, boinc_apps.version_dir(num), spec.platform, sorted(contents),
                     result.get("daemons_added", []), signed_with, time.monotonic() - started,
                     result.get("plan_classes_added", []))


def check_plan_classes(state: dict, plan_class: str) -> None:
    """That the scheduler can serve a new version of this plan class beside the project's
    others (state: app-state's answer): the plan_class_spec.xml the install will write can be
    made. Refused before anything is sent."""
    if "plan_classes" not in state:  # an apache image older than Docker apps
        if plan_class == plan_classes.DOCKER:
            raise ProjectError("the project's apache image predates Docker apps (it cannot write "
                               "plan_class_spec.xml)", advice="`boincserver up` rebuilds it")
        return
    try:
        plan_classes.spec_file([*state["plan_classes"], plan_class], state["plan_class_spec"])
    except boinc_apps.AppError as exc:
        raise invalid(exc) from None


def check_docker_plan_class(state: dict) -> None:
    """That the project's scheduler has the `docker` plan class (state: the answer of
    app-state or plan-classes): ProjectError with the fix otherwise."""
    text = state.get("plan_class_spec")
    try:
        served = plan_classes.has_class(text, plan_classes.DOCKER)
    except boinc_apps.AppError as exc:
        raise ProjectError(exc.message, advice=exc.advice) from None
    if not served:
        where = "has no plan_class_spec.xml" if text is None else "has a plan_class_spec.xml without `docker`"
        raise ProjectError(f"the project's scheduler has no `docker` plan class ({where}): it would send "
                           "no Docker job",
                           advice="`boincserver app add NAME --docker DIR` writes it; or add "
                                  "<plan_class><name>docker</name><docker/></plan_class> to the project's "
                                  "plan_class_spec.xml (`boincserver shell`)")


def docker_plan_class(project: Project) -> None:
    """The check above, asked of the running project."""
    check_docker_plan_class(jobs_helper(project, ["plan-classes"]))


def ensure_docker_app(project: Project, name: str, inputs: list[str] | None = None,
                      outputs: list[str] | None = None, sign_key: Path | None = None,
                      friendly_name: str = "") -> AddResult | None:
    """A Docker app of docker_wrapper alone (each job brings its Dockerfile as an input),
    installed if the project has no app of that name; None if it had one. Either way the
    project's scheduler then has the `docker` plan class, or ProjectError says how to fix it."""
    state = jobs_helper(project, ["app-state", name])
    if state.get("registered"):
        check_docker_plan_class(state)
        return None
    spec = docker_spec(name, None, inputs=inputs, outputs=outputs)
    spec.friendly_name = friendly_name
    return add(project, spec, sign_key)


BUDA_FRIENDLY_NAME = "BUDA (Docker science apps)"


def buda_app(name: str, inputs: list[str] | None, outputs: list[str] | None, submitters: list[int] = (),
             user_id: int = 0, create_time: int | None = None) -> bb.BudaApp:
    """A BUDA science app's description (default files: in, out), checked."""
    try:
        return bb.make_app(name, list(inputs or ["in"]), list(outputs or ["out"]), user_id=user_id,
                           create_time=int(time.time()) if create_time is None else create_time,
                           submitters=submitters)
    except bb.BudaError as exc:
        raise invalid(exc) from None


def _buda_files(folder: Path) -> dict[str, bytes]:
    files, _ = _docker_folder_files(Path(folder))  # a folder, regular files, Dockerfile with WORKDIR /app
    return {name: Path(path).read_bytes() for name, path in files.items()}


def add_buda(project: Project, name: str, folder: Path, inputs: list[str] | None = None,
             outputs: list[str] | None = None, sign_key: Path | None = None) -> dict:
    """`app add NAME --docker DIR --buda`: NAME as a BUDA science app, run by the BOINC app
    `buda` (docker_wrapper alone, plan class docker; installed the first time) and submitted
    from BOINC's web pages (buda_submit.php). Its files are laid out as BOINC's buda.php does
    (boinc/buda.py app_layout: desc.json, templates, the variant intel_cpu, the staged copies in
    download/) and unpacked in PROJECT_ROOT by the BOINC user; the variant is replaced when
    NAME was there (its submitters kept). Everything is checked before the project is touched."""
    started = time.monotonic()
    desc = buda_app(name, inputs, outputs)
    files = _buda_files(folder)
    try:
        bb.app_layout(desc, files, "http://checked.invalid/download")  # the file names, before any change
    except bb.BudaError as exc:
        raise invalid(exc) from None
    state = jobs_helper(project, ["buda-state", name])
    if state["boinc_app"]:
        raise InvalidInput(f"{name!r} is the name of a BOINC app of this project: `user add --submit {name}` "
                           "could not tell them apart", advice="give the BUDA app another name")
    installed = ensure_docker_app(project, bb.BOINC_APP, sign_key=sign_key, friendly_name=BUDA_FRIENDLY_NAME)
    state = jobs_helper(project, ["buda-state", name]) if installed else state
    if state["desc"] is not None:
        try:
            before = bb.parse_desc_json(state["desc"])
        except bb.BudaError:
            before = None
        if before is not None:
            desc = buda_app(name, inputs, outputs, list(before.submitters), before.user_id, before.create_time)
    try:
        layout = bb.app_layout(desc, files, state["download_url"], state["fanout"])
    except bb.BudaError as exc:
        raise ProjectError(exc.message, advice=exc.advice) from None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in layout:
            add_bytes(tar, f.path, f.data, f.mode)
    variant = f"{bb.app_dir(name)}/{bb.CPU_VARIANT}"
    # As buda.php does: the variant's folder goes, then is made again (the staged files keep their md5 names).
    script = 'rm -rf -- "$1" && tar -x -f - --no-same-owner && exec boincserver-jobs buda-install "$0"'
    answer = helper_answer(in_apache(project, ["sh", "-c", script, name, variant], stdin=buf.getvalue()))
    return {**answer, "variant": bb.CPU_VARIANT, "files": sorted(files), "replaced": state["desc"] is not None,
            "buda_app_installed": installed is not None, "download_url": state["download_url"],
            "seconds": time.monotonic() - started}


def list_buda_apps(project: Project) -> list[dict]:
    return jobs_helper(project, ["buda-apps"])


def _install(project: Project, app: str, vdir: str, tar_bytes: bytes, daemons: list[dict]) -> dict:
    """Unpack a version's tar in PROJECT_ROOT (project.xml kept for a rollback), then xadd,
    update_versions --noconfirm and the app's daemons, by the apache service's helper."""
    return helper_answer(in_apache(
        project, ["sh", "-c", 'cp -p project.xml project.xml.boincserver-old && tar -x -f - --no-same-owner '
                              '&& exec boincserver-jobs app-install "$0" "$1" "$2"',
                  app, json.dumps(daemons), vdir], stdin=tar_bytes))


def list_apps(project: Project) -> list[dict]:
    return jobs_helper(project, ["apps"])


def rerelease_all(project: Project, sign_key: Path | None = None) -> list[dict]:
    """After a code-signing key change: each app's newest version (per platform) again, under
    the next version number, its files signed with the new key.

    Registered versions keep the signatures they were made with, which clients holding the
    new key refuse; BOINC's way out is a new version, not a re-signed old one.
    """
    released = []
    for app in list_apps(project):
        newest: dict[tuple[str, str], int] = {}
        for v in app["versions"]:
            if not v["deprecated"]:
                key = (v["platform"], v["plan_class"] or "")
                newest[key] = max(newest.get(key, 0), v["version"])
        for (platform, plan_class), num in sorted(newest.items()):
            folder = platform + (f"__{plan_class}" if plan_class else "")
            old_dir = f"apps/{app['name']}/{boinc_apps.version_dir(num)}/{folder}"
            tar_bytes = _fetch_dir(project, old_dir)
            state = jobs_helper(project, ["app-state", app["name"]])
            new_num = boinc_apps.next_version(state["version_dirs"])
            files = {}
            with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
                for m in tar.getmembers():
                    if m.isfile() and not m.name.endswith(".sig"):
                        files[m.name.removeprefix("./")] = (tar.extractfile(m).read(), bool(m.mode & 0o111))
            # BOINC's files are immutable by name: the new version's files get new names
            # (this tool's names carry the version), and version.xml follows.
            old_v, new_v = boinc_apps.version_dir(num), boinc_apps.version_dir(new_num)
            renamed = {n: n.replace(f"_{old_v}_", f"_{new_v}_", 1) if n != "version.xml" else n for n in files}
            if "version.xml" in files:
                text = files["version.xml"][0].decode()
                for o, n in renamed.items():
                    text = text.replace(f">{o}<", f">{n}<")
                files["version.xml"] = (text.encode(), False)
            files = {renamed[n]: v for n, v in files.items()}
            signatures, _ = _sign_files(project, {n: f for n, f in files.items() if n != "version.xml"},
                                        sign_key)
            new_dir = f"apps/{app['name']}/{boinc_apps.version_dir(new_num)}/{folder}"
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                _add_version_files(tar, new_dir, files, signatures)
                add_bytes(tar, "project.xml", state["project_xml"].encode())
            _install(project, app["name"], new_dir, buf.getvalue(), [])
            released.append({"app": app["name"], "platform": folder, "from": boinc_apps.version_dir(num),
                             "to": boinc_apps.version_dir(new_num)})
    return released


def _fetch_dir(project: Project, folder: str) -> bytes:
    """A folder of the project volume as a tar (from the apache service)."""
    ran = in_apache(project, ["tar", "-c", "-f", "-", "-C", folder, "."])
    if ran.code != 0:
        raise ProjectError(f"cannot read {folder} on the server: {ran.err.strip()[-300:]}")
    return ran.out
