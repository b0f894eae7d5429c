"""boincserver's base images: the digest of their inputs and their build contexts (no Docker)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from boincserver import __version__, images, paths, pins


def test_inputs_digest_is_stable():
    for name in pins.BASE_IMAGE_NAMES:
        d = images.inputs_digest(name)
        assert re.fullmatch(r"[0-9a-f]{64}", d)
        assert images.inputs_digest(name) == d


def test_inputs_digest_differs_between_images():
    digests = {n: images.inputs_digest(n) for n in pins.BASE_IMAGE_NAMES}
    assert digests["mysql"] != digests["makeproject"]
    assert len(set(digests.values())) == len(digests)


def test_inputs_digest_follows_the_base_os_image():
    assert images.inputs_digest("mysql", "debian:other-tag") != images.inputs_digest("mysql")


def test_inputs_digest_follows_the_pinned_commit(monkeypatch):
    before = images.inputs_digest("makeproject")
    monkeypatch.setattr(pins, "BOINC_COMMIT", "0" * 40)
    assert images.inputs_digest("makeproject") != before


def test_labels_for():
    labels = images.labels_for("apache", "abc")
    assert labels[images.INPUTS_LABEL] == "abc"
    assert labels["org.boincserver.boinc-commit"] == pins.BOINC_COMMIT
    assert labels["org.opencontainers.image.version"] == __version__


def test_make_context_makeproject(tmp_path):
    tarball = tmp_path / "boinc.tar.gz"
    tarball.write_bytes(b"fake tarball bytes")
    ctx = images.make_context("makeproject", tmp_path / "ctx", tarball)
    assert ctx == tmp_path / "ctx"
    assert (ctx / "Dockerfile").is_file()
    assert (ctx / "boinc-src.tar.gz").read_bytes() == b"fake tarball bytes"
    assert tarball.read_bytes() == b"fake tarball bytes"
    lib = ctx / "lib" / "boincserver"
    assert (lib / "boinc" / "substitution.py").is_file()
    assert (lib / "container" / "setup.py").is_file()
    assert (lib / "__init__.py").read_bytes() == (paths.PACKAGE_DIR / "__init__.py").read_bytes()
    assert (ctx / "catalogue.toml").is_file()
    assert not [p for p in ctx.rglob("__pycache__")]
    # The whole image folder is in the context, entry points still executable.
    src = paths.data_dir("images") / "makeproject"
    for f in src.rglob("*"):
        if f.is_file():
            assert (ctx / f.relative_to(src)).read_bytes() == f.read_bytes()
    assert (ctx / "project-setup").stat().st_mode & 0o111


def _context_listing(ctx: Path) -> set[str]:
    return {p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["apache", "makeproject"])
def test_the_package_is_shipped_without_the_cli(tmp_path, name):
    (tmp_path / "boinc.tar.gz").write_bytes(b"x")
    ctx = images.make_context(name, tmp_path / "ctx", tmp_path / "boinc.tar.gz" if name == "makeproject" else None)
    shipped = {p.removeprefix("lib/") for p in _context_listing(ctx) if p.startswith("lib/")}
    modules = {f"boincserver/{f.relative_to(paths.PACKAGE_DIR).as_posix()}"
               for f in paths.PACKAGE_DIR.rglob("*.py") if "__pycache__" not in f.parts}
    assert "boincserver/container/jobs.py" in shipped and "boincserver/boinc/jobs.py" in shipped
    assert shipped <= modules
    # Not the CLI nor anything that needs a third-party module.
    assert not shipped & {"boincserver/commands/cli.py", "boincserver/engine.py", "boincserver/apps.py",
                          "boincserver/secrets.py", "boincserver/render.py"}


@pytest.mark.parametrize("name", ["mysql", "apache", "makeproject"])
def test_the_digest_covers_exactly_the_context(tmp_path, name):
    """Every file in the context (but BOINC's source, which the pin names) is in the digest."""
    tarball = tmp_path / "boinc.tar.gz"
    tarball.write_bytes(b"x")
    ctx = images.make_context(name, tmp_path / "ctx", tarball if name == "makeproject" else None)
    assert _context_listing(ctx) - {"boinc-src.tar.gz"} == {path for path, _ in images.context_files(name)}


def test_a_change_to_shipped_code_changes_the_digest_of_the_images_that_ship_it(monkeypatch, tmp_path):
    before = {n: images.inputs_digest(n) for n in pins.BASE_IMAGE_NAMES}
    fake_package = tmp_path / "boincserver"
    shutil.copytree(paths.PACKAGE_DIR, fake_package, ignore=shutil.ignore_patterns("__pycache__"))
    data = {n: paths.data_dir(n) for n in ("images", "secrets")}
    monkeypatch.setattr(paths, "data_dir", data.__getitem__)
    monkeypatch.setattr(paths, "PACKAGE_DIR", fake_package)
    assert {n: images.inputs_digest(n) for n in pins.BASE_IMAGE_NAMES} == before
    jobs = fake_package / "container" / "jobs.py"
    jobs.write_text(jobs.read_text() + "\n# changed\n")
    after = {n: images.inputs_digest(n) for n in pins.BASE_IMAGE_NAMES}
    assert after["apache"] != before["apache"] and after["makeproject"] != before["makeproject"]
    assert after["mysql"] == before["mysql"]
    # The host's modules are not shipped: changing one rebuilds nothing.
    host_module = fake_package / "engine.py"
    host_module.write_text(host_module.read_text() + "\n# changed\n")
    assert {n: images.inputs_digest(n) for n in pins.BASE_IMAGE_NAMES} == after


def test_make_context_mysql_has_no_boinc(tmp_path):
    ctx = images.make_context("mysql", tmp_path / "ctx", None)
    assert (ctx / "Dockerfile").is_file()
    assert not (ctx / "boinc-src.tar.gz").exists()
    assert not (ctx / "lib").exists()


# -- debian_mirror on made-up apt configurations (addresses from RFC 5737's documentation range) --
MIRROR = "http://192.0.2.10/debian"


@pytest.fixture
def apt_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "etc/apt/sources.list.d").mkdir(parents=True)
    monkeypatch.setattr(images, "Path", lambda p: root / str(p).lstrip("/"))
    return root / "etc/apt"


def test_debian_mirror_none_without_sources(apt_root):
    assert images.debian_mirror() is None


def test_debian_mirror_from_deb822(apt_root):
    (apt_root / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://192.0.2.11/debian-security\nSuites: bookworm-security\n\n"
        f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert images.debian_mirror() == MIRROR


def test_debian_mirror_from_sources_list(apt_root):
    (apt_root / "sources.list").write_text(
        "# deb http://192.0.2.99/debian bookworm main\n"
        "deb-src http://192.0.2.98/debian bookworm main\n"
        f"deb {MIRROR}/ bookworm main\n")
    assert images.debian_mirror() == MIRROR + "/"


def test_debian_mirror_ignores_other_repositories(apt_root):
    (apt_root / "sources.list").write_text("deb http://192.0.2.12/ubuntu jammy main\n")
    (apt_root / "sources.list.d/other.sources").write_text("URIs: http://192.0.2.13/apt\n")
    assert images.debian_mirror() is None


def test_debian_mirror_from_sources_list_with_options(apt_root):
    (apt_root / "sources.list").write_text(f"deb [arch=amd64] {MIRROR} bookworm main\n")
    assert images.debian_mirror() == MIRROR


def test_debian_mirror_from_deb822_with_two_uris(apt_root):
    (apt_root / "sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {MIRROR} http://192.0.2.14/debian\nSuites: bookworm\n")
    assert images.debian_mirror() == MIRROR


# -- the volunteer's images: volunteer (the BOINC 8.2 client) and hello-world ---------------------
def test_the_volunteer_context_ships_lib_the_entry_point_and_the_client_source(tmp_path):
    tarball = tmp_path / "client.tar.gz"
    tarball.write_bytes(b"client source bytes")
    ctx = images.make_context("volunteer", tmp_path / "ctx", tarball)
    listing = _context_listing(ctx)
    assert (ctx / "boinc-client-src.tar.gz").read_bytes() == b"client source bytes"
    assert not (ctx / "boinc-src.tar.gz").exists()
    assert {"Dockerfile", "boincserver-volunteer", "lib/boincserver/container/volunteer.py",
            "lib/boincserver/boinc/client.py", "lib/boincserver/container/common.py"} <= listing
    assert (ctx / "boincserver-volunteer").stat().st_mode & 0o111
    assert not [p for p in listing if p.startswith("common/")]  # the BOINC user script is the server's
    # The same shipped package as the server's images: one list drives them all.
    assert {p for p in listing if p.startswith("lib/")} == \
        {f"lib/{path}" for path, _ in images.shipped_package_files()}
    assert listing - {"boinc-client-src.tar.gz"} == {path for path, _ in images.context_files("volunteer")}


def test_the_hello_world_context_is_its_dockerfile(tmp_path):
    ctx = images.make_context("hello-world", tmp_path / "ctx", None)
    assert _context_listing(ctx) == {"Dockerfile"}
    assert "Hello" in (ctx / "Dockerfile").read_text()


def test_the_volunteer_digest_follows_the_client_pins_not_the_server_s(monkeypatch):
    before = {n: images.inputs_digest(n) for n in (*pins.BASE_IMAGE_NAMES, *images.VOLUNTEER_IMAGE_NAMES)}
    monkeypatch.setattr(pins, "CLIENT_COMMIT", "0" * 40)
    after_commit = {n: images.inputs_digest(n) for n in before}
    assert after_commit["volunteer"] != before["volunteer"]
    assert {n: d for n, d in after_commit.items() if n != "volunteer"} == \
        {n: d for n, d in before.items() if n != "volunteer"}
    monkeypatch.setattr(pins, "DOCKER_CLI_MIN_VERSION", "27")
    volunteer = images.inputs_digest("volunteer")
    assert volunteer != after_commit["volunteer"]
    monkeypatch.setattr(pins, "BOINC_COMMIT", "1" * 40)
    assert images.inputs_digest("volunteer") == volunteer
    assert images.inputs_digest("makeproject") != before["makeproject"]
    assert images.inputs_digest("hello-world") == before["hello-world"]


def test_volunteer_labels_name_the_client_release():
    labels = images.labels_for("volunteer", "abc")
    assert labels["org.boincserver.boinc-commit"] == pins.CLIENT_COMMIT
    assert labels["org.boincserver.boinc-release"] == pins.CLIENT_RELEASE
    assert images.labels_for("makeproject", "abc")["org.boincserver.boinc-commit"] == pins.BOINC_COMMIT


def test_ensure_volunteer_images_builds_what_is_missing_then_nothing(tmp_path):
    from fakes import RecordingEngine
    engine = RecordingEngine()
    engine.images[pins.BASE_OS_IMAGE] = {}
    tarball = tmp_path / "client.tar.gz"
    tarball.write_bytes(b"x")
    asked = []

    def client_tarball():
        asked.append(1)
        return tarball
    steps = []
    built = images.ensure_volunteer_images(engine, client_tarball, lambda line: None, steps.append)
    assert built == ["volunteer", "hello-world"]
    assert asked == [1]  # only the volunteer image compiles BOINC
    volunteer, hello = engine.named("build_image")
    assert volunteer.args["tag"] == pins.volunteer_image() == f"boincserver/volunteer:{__version__}-boinc8.2.15"
    assert volunteer.args["build_args"] == {
        "BASE_IMAGE": pins.BASE_OS_IMAGE, "CLIENT_COMMIT": pins.CLIENT_COMMIT,
        "DOCKER_CLI_SUITE": pins.DOCKER_CLI_SUITE, "DOCKER_CLI_MIN_VERSION": pins.DOCKER_CLI_MIN_VERSION}
    assert volunteer.args["labels"][images.INPUTS_LABEL] == images.inputs_digest("volunteer")
    assert hello.args["tag"] == pins.HELLO_WORLD_IMAGE
    assert hello.args["build_args"] == {"BASE_IMAGE": pins.BASE_OS_IMAGE}
    assert any("compiling BOINC" in s for s in steps)
    # Current now: nothing is built and the source is not asked for.
    assert images.ensure_volunteer_images(engine, client_tarball, lambda line: None, steps.append) == []
    assert asked == [1] and len(engine.named("build_image")) == 2
    # Forced: both again.
    assert images.ensure_volunteer_images(engine, client_tarball, lambda line: None, steps.append,
                                          force=True) == ["volunteer", "hello-world"]


def test_ensure_volunteer_images_rebuilds_only_the_outdated_one(tmp_path):
    from fakes import RecordingEngine
    engine = RecordingEngine()
    engine.images[pins.BASE_OS_IMAGE] = {}
    engine.images[pins.volunteer_image()] = {images.INPUTS_LABEL: "an older digest"}
    engine.images[pins.HELLO_WORLD_IMAGE] = {images.INPUTS_LABEL: images.inputs_digest("hello-world")}
    (tmp_path / "x.tar.gz").write_bytes(b"x")
    built = images.ensure_volunteer_images(engine, lambda: tmp_path / "x.tar.gz", lambda line: None, lambda s: None)
    assert built == ["volunteer"]


def test_the_volunteer_images_are_not_base_images():
    assert not set(images.VOLUNTEER_IMAGE_NAMES) & set(pins.BASE_IMAGE_NAMES)


# -- everything a build needs is found before the first image is built ------------------------
def missing_base_images():
    from fakes import RecordingEngine
    engine = RecordingEngine()
    engine.images[pins.BASE_OS_IMAGE] = {}
    return engine


def test_a_missing_boinc_source_stops_the_build_before_the_first_image():
    from boincserver.errors import SourceError
    engine = missing_base_images()

    def no_source():
        raise SourceError("BOINC's source cannot be downloaded")

    with pytest.raises(SourceError):
        images.build_base_images(engine, no_source, lambda line: None, lambda s: None)
    assert engine.named("build_image") == []  # mysql and apache, which need no source, neither


def test_a_full_disk_stops_the_build_before_anything_is_asked_or_pulled(tmp_path):
    from boincserver.errors import EnvironmentProblem
    engine = missing_base_images()
    engine.free_disk = 1 << 30
    asked = []
    with pytest.raises(EnvironmentProblem, match="1.0 GiB free") as exc:
        images.build_base_images(engine, lambda: asked.append(1) or tmp_path, lambda line: None, lambda s: None)
    assert "docker system prune" in exc.value.advice
    assert asked == [] and engine.named("build_image", "pull") == []


def test_the_source_is_asked_once_before_the_builds_and_an_unknown_free_space_passes(tmp_path):
    engine = missing_base_images()
    engine.free_disk = None
    tarball = tmp_path / "boinc.tar.gz"
    tarball.write_bytes(b"x")
    order = []
    engine_build = engine.build_image

    def build_image(*args, **kwargs):
        order.append("build")
        return engine_build(*args, **kwargs)

    engine.build_image = build_image
    built = images.build_base_images(engine, lambda: order.append("source") or tarball, lambda line: None,
                                     lambda s: None)
    assert built == list(pins.BASE_IMAGE_NAMES)
    assert order == ["source", "build", "build", "build"]


def test_nothing_to_build_checks_nothing():
    from fakes import RecordingEngine
    engine = RecordingEngine()
    engine.base_images_current()
    engine.free_disk = 0
    assert images.build_base_images(engine, lambda: None, lambda line: None, lambda s: None) == []
    assert engine.named("free_disk_bytes", "build_image") == []
