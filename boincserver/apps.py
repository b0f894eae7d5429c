"""The use cases `app add` and `app list`: a BOINC app installed without prompts.

`add` assembles the version on this machine (files, version.xml, job.xml for a wrapper app,
templates, the project.xml entry), signs every file with the project's code-signing key where
that key lives (a one-shot makeproject container reads it from the secrets volume; the key
never leaves it) or with an offline key given as a file, then sends it all to the apache
service in one tar stream, where `bin/xadd` and `bin/update_versions --noconfirm` register
it and the app's validator and assimilator are added to config.xml.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from boincserver import paths, pins
from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import keys
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
IMAGE_PREFIX = "image:"

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


def _is_local(source: str) -> bool:
    """A file of this machine, not one of the image or one generated here."""
    return not (source.startswith(IMAGE_PREFIX) or source in ("wrapper:", "job.xml:"))


def _source_bytes(project: Project, source: str, spec: boinc_apps.AppSpec) -> bytes:
    if source == "job.xml:":
        return boinc_apps.spec_job_xml(spec).encode()
    if source == "wrapper:":
        path = WRAPPER_IN_IMAGE.get(spec.platform)
        if not path:
            raise InvalidInput(f"BOINC's wrapper is built here for {', '.join(WRAPPER_IN_IMAGE)} only, "
                               f"not {spec.platform!r}", advice="use --platform x86_64-pc-linux-gnu")
        source = IMAGE_PREFIX + path
    if source.startswith(IMAGE_PREFIX):
        data = read_file(project, pins.base_image("makeproject"), source[len(IMAGE_PREFIX):])
        if data is None:
            raise ProjectError(f"{source[len(IMAGE_PREFIX):]} is not in {pins.base_image('makeproject')}",
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
                           advice=("sign on this machine: `boincserver app add ... --keys-dir DIR` "
                                   "(the folder holding code_sign_private)"))
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
        raise InvalidInput(str(exc)) from None
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
        add_bytes(tar, f"{vdir}/version.xml", boinc_apps.version_xml(entries, spec.wrapper, api).encode())
        add_bytes(tar, f"templates/{spec.name}_in", boinc_apps.input_template(spec.inputs).encode())
        add_bytes(tar, f"templates/{spec.name}_out", boinc_apps.output_template(spec.outputs).encode())
        try:
            project_xml = boinc_apps.project_xml_with_app(state["project_xml"], spec.name,
                                                          spec.friendly_name or spec.name)
        except boinc_apps.AppError as exc:
            raise ProjectError(str(exc)) from None
        add_bytes(tar, "project.xml", project_xml.encode())
    daemons = [{"cmd": d.cmd, "xml": d.xml()}
               for d in boinc_apps.app_daemons(spec.name, spec.validator, spec.assimilator)]
    result = _install(project, spec.name, vdir, buf.getvalue(), daemons)
    return AddResult(spec.name, boinc_apps.version_dir(num), spec.platform, sorted(contents),
                     result.get("daemons_added", []), signed_with, time.monotonic() - started)


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
