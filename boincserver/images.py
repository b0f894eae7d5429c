"""boincserver's images and the base OS image under them: the base images of a project (mysql,
apache, makeproject) and the volunteer's (volunteer: a BOINC 8.2 client; hello-world: what that
client runs to check Docker).

Each image carries a label with the digest of its inputs (every file of its build context,
and the pins, which name BOINC's source); a build is skipped when the image already has that
digest, so a change to a project's files never recompiles BOINC. The apache, makeproject and
volunteer images ship the part of boincserver that runs in them (boincserver.container and the
pure modules it imports) as lib/ of their context.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from boincserver import __version__, paths, pins
from boincserver.engine import Engine, LineSink
from boincserver.errors import EnvironmentProblem

INPUTS_LABEL = "org.boincserver.inputs"
# What of the package the images ship (not the CLI, nor anything that needs a third-party module).
SHIPPED_PACKAGE = ("__init__.py", "catalogue.py", "boinc", "container")
SHIPS_PACKAGE = ("apache", "makeproject", "volunteer")
# The images that compile BOINC, and the name its source tarball has in their build context.
SOURCE_TARBALL = {"makeproject": "boinc-src.tar.gz", "volunteer": "boinc-client-src.tar.gz"}
# Built by ensure_volunteer_images, not by `boincserver build`.
VOLUNTEER_IMAGE_NAMES = ("volunteer", "hello-world")


def image_tag(name: str, release: pins.ServerRelease | None = None) -> str:
    """The tag of one of our images; a base image's at `release` (the pinned one unless told)."""
    if name == "volunteer":
        return pins.volunteer_image()
    if name == "hello-world":
        return pins.HELLO_WORLD_IMAGE
    return pins.base_image(name, release.version if release else "")


def boinc_pin(name: str, release: pins.ServerRelease | None = None) -> tuple[str, str]:
    """(release, commit) of the BOINC an image is made for: the client's for the volunteer's images."""
    if name in VOLUNTEER_IMAGE_NAMES:
        return pins.CLIENT_RELEASE, pins.CLIENT_COMMIT
    release = release or pins.server_release()
    return release.tag, release.commit


def pinned_build_args(name: str, release: pins.ServerRelease | None = None) -> dict[str, str]:
    """The build arguments of an image besides BASE_IMAGE: the pins it is built from."""
    if name == "volunteer":
        return {"CLIENT_COMMIT": pins.CLIENT_COMMIT, "DOCKER_CLI_SUITE": pins.DOCKER_CLI_SUITE,
                "DOCKER_CLI_MIN_VERSION": pins.DOCKER_CLI_MIN_VERSION}
    if name == "hello-world":
        return {}
    release = release or pins.server_release()
    return {"BOINC_COMMIT": release.commit, **({} if release.fastcgi else {"BOINC_FCGI": "no"})}


def catalogue_file() -> Path:
    return paths.data_dir("secrets") / "catalogue.toml"

ADVICE_OS_IMAGE = ("`boincserver base-image ensure` (pulls it, or where no registry answers builds "
                   "it with debootstrap: needs root and `apt-get install debootstrap`)")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def shipped_package_files() -> list[tuple[str, Path]]:
    """(path under lib/, source) of each module of boincserver the images ship."""
    out = []
    for entry in SHIPPED_PACKAGE:
        source = paths.PACKAGE_DIR / entry
        modules = [source] if source.is_file() else [f for f in _files(source) if f.suffix == ".py"]
        out += [(f"boincserver/{f.relative_to(paths.PACKAGE_DIR).as_posix()}", f) for f in modules]
    return out


def context_files(name: str) -> list[tuple[str, Path]]:
    """(path in the build context, source) of every file of an image's context but BOINC's
    source tarball (the pinned commit stands for it)."""
    images_dir = paths.data_dir("images")
    files = [(f.relative_to(images_dir / name).as_posix(), f) for f in _files(images_dir / name)]
    if name in pins.BASE_IMAGE_NAMES:
        files += [(f"common/{f.relative_to(images_dir / 'common').as_posix()}", f)
                  for f in _files(images_dir / "common")]
    if name in SHIPS_PACKAGE:
        files += [(f"lib/{path}", f) for path, f in shipped_package_files()]
    if name == "makeproject":
        files.append(("catalogue.toml", catalogue_file()))
    return files


def inputs_digest(name: str, base_os_image: str = pins.BASE_OS_IMAGE, release: pins.ServerRelease | None = None) -> str:
    """The digest of exactly what an image is built from."""
    h = hashlib.sha256()
    h.update("".join(f"{v}\0" for v in (name, base_os_image, *pinned_build_args(name, release).values())).encode())
    for path, f in sorted(context_files(name)):
        h.update(path.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def labels_for(name: str, digest: str, release: pins.ServerRelease | None = None) -> dict[str, str]:
    from boincserver import registry
    # source and revision: boincserver's own checkout, where it runs from one (not from a wheel).
    facts = registry.git_facts(paths.PACKAGE_DIR.parent) if (paths.PACKAGE_DIR.parent / ".git").exists() else {}
    tag, commit = boinc_pin(name, release)
    return {
        INPUTS_LABEL: digest,
        **registry.oci_labels(__version__, commit, facts, title=f"boincserver {name}"),
        "org.boincserver.boinc-release": tag,
    }


def make_context(name: str, into: Path, boinc_tarball: Path | None) -> Path:
    """Assemble the build context of one image in `into`: the files inputs_digest covers
    (modes kept: the entry points are executable), and BOINC's source where it compiles it."""
    for path, source in context_files(name):
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    if name in SOURCE_TARBALL:
        assert boinc_tarball is not None
        target = into / SOURCE_TARBALL[name]
        try:
            os.link(boinc_tarball, target)
        except OSError:
            shutil.copyfile(boinc_tarball, target)
    return into


def image_state(engine: Engine, name: str, base_os_image: str = pins.BASE_OS_IMAGE,
                release: pins.ServerRelease | None = None) -> str:
    """'current', 'outdated' or 'missing'."""
    labels = engine.image_labels(image_tag(name, release))
    if labels is None:
        return "missing"
    return "current" if labels.get(INPUTS_LABEL) == inputs_digest(name, base_os_image, release) else "outdated"


def base_images_state(engine: Engine, base_os_image: str = pins.BASE_OS_IMAGE,
                      release: pins.ServerRelease | None = None) -> dict[str, str]:
    """For each base image at `release` (the pinned one unless told): 'current', 'outdated' or 'missing'."""
    return {name: image_state(engine, name, base_os_image, release) for name in pins.BASE_IMAGE_NAMES}


# What building needs free where Docker keeps images: the base images and their build layers
# (BOINC compiled in makeproject) take about 2 GB.
MIN_FREE_TO_BUILD = 3 << 30
ADVICE_DISK = "free space where Docker keeps its images: `docker system prune` removes unused images and build cache"


def check_free_disk(engine: Engine, needed: int = MIN_FREE_TO_BUILD) -> None:
    """Refuse to start a build that would run out of disk (an unknown free space passes)."""
    free = engine.free_disk_bytes()
    if free is not None and free < needed:
        raise EnvironmentProblem(f"only {free / (1 << 30):.1f} GiB free for Docker's images; building needs about "
                                 f"{needed / (1 << 30):.0f} GiB; nothing was built", advice=ADVICE_DISK)


def build_images(engine: Engine, names: tuple[str, ...], source_tarball: Callable[[], Path], on_line: LineSink,
                 on_step: Callable[[str], None], force: bool = False,
                 base_os_image: str = pins.BASE_OS_IMAGE, release: pins.ServerRelease | None = None) -> list[str]:
    """Build those of `names` that are missing or outdated (all with `force`); return the names
    built. `source_tarball` is asked only when an image that compiles BOINC is built; base images
    are built at `release` (the pinned one unless told).

    Everything the builds need (free disk, BOINC's source, the base OS image) is found before
    the first one starts, so a missing piece never shows up after minutes of building.
    """
    todo = [(name, state) for name in names
            if (state := image_state(engine, name, base_os_image, release)) != "current" or force]
    if not todo:
        return []
    check_free_disk(engine)
    tarball = source_tarball() if any(name in SOURCE_TARBALL for name, _ in todo) else None
    ensure_os_image(engine, base_os_image, on_step)
    built = []
    for name, state in todo:
        tag = image_tag(name, release)
        on_step(f"building {'base ' if name in pins.BASE_IMAGE_NAMES else ''}image {tag} ({state})"
                + (": compiling BOINC takes a few minutes" if name in SOURCE_TARBALL else ""))
        with tempfile.TemporaryDirectory(prefix=f"boincserver-{name}-") as tmp:
            ctx = make_context(name, Path(tmp) / "ctx", tarball if name in SOURCE_TARBALL else None)
            digest = inputs_digest(name, base_os_image, release)
            engine.build_image(ctx, tag, {"BASE_IMAGE": base_os_image, **pinned_build_args(name, release)},
                               labels_for(name, digest, release), on_line)
        built.append(name)
    return built


def build_base_images(engine: Engine, boinc_tarball: Callable[[], Path], on_line: LineSink,
                      on_step: Callable[[str], None], force: bool = False,
                      base_os_image: str = pins.BASE_OS_IMAGE, release: pins.ServerRelease | None = None) -> list[str]:
    """Build the base images at `release` (the pinned one unless told) that are missing or
    outdated; return the names built."""
    return build_images(engine, pins.BASE_IMAGE_NAMES, boinc_tarball, on_line, on_step, force, base_os_image,
                        release)


def ensure_volunteer_images(engine: Engine, client_tarball: Callable[[], Path], on_line: LineSink,
                            on_step: Callable[[str], None], force: bool = False) -> list[str]:
    """The volunteer image (the pinned BOINC client, from `client_tarball`'s source) and the
    hello-world image its client checks Docker with, each built unless current; the names built."""
    return build_images(engine, VOLUNTEER_IMAGE_NAMES, client_tarball, on_line, on_step, force)


def debian_mirror() -> str | None:
    """The Debian mirror this machine's apt is configured with (never a written-in host)."""
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:"):
                for uri in line.split(":", 1)[1].split():
                    if uri.rstrip("/").endswith("/debian"):
                        return uri
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            # deb [option=value ...] URI suite components
            words = re.sub(r"\[[^\]]*\]", " ", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[1].rstrip("/").endswith("/debian"):
                return words[1]
    return None


def ensure_os_image(engine: Engine, tag: str = pins.BASE_OS_IMAGE,
                    on_step: Callable[[str], None] = lambda s: None) -> str:
    """Have the pinned base OS image: present, pulled, or made with debootstrap."""
    if engine.image_labels(tag) is not None:
        return "present"
    on_step(f"pulling {tag}")
    if engine.pull(tag):
        return "pulled"
    if not tag.startswith("debian:"):
        raise EnvironmentProblem(f"base OS image {tag} is missing and cannot be pulled",
                                 advice=f"`docker pull {tag}` where a registry is reachable, or `docker load` it")
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise EnvironmentProblem(
            f"base OS image {tag} is missing, cannot be pulled, and debootstrap can't make it here",
            advice="as root: `apt-get install debootstrap` then `boincserver base-image ensure`")
    mirror = debian_mirror()
    on_step(f"no registry answers: making {tag} with debootstrap --variant=minbase {pins.DEBIAN_SUITE}")
    with tempfile.TemporaryDirectory(prefix="boincserver-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", pins.DEBIAN_SUITE, str(rootfs)] + ([mirror] if mirror else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise EnvironmentProblem(f"debootstrap failed: {done.stderr.strip()[-500:]}",
                                     advice="check that this machine reaches Debian's package mirror")
        slim_rootfs(rootfs)
        engine.import_rootfs(rootfs, tag)
    return "debootstrapped"


# What Debian's own -slim images leave out, and their apt settings for containers.
SLIM_DPKG_EXCLUDES = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
APT_DOCKER_CLEAN = """DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
"""


def slim_rootfs(rootfs: Path) -> None:
    """Make a debootstrapped tree like Debian's -slim image: no docs, no apt caches."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(SLIM_DPKG_EXCLUDES)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_DOCKER_CLEAN)
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
                    "usr/share/man/*", "usr/share/info/*", "var/log/*.log"):
        for path in rootfs.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
    for doc in (rootfs / "usr/share/doc").glob("*"):
        for entry in doc.iterdir() if doc.is_dir() else []:
            if entry.name != "copyright":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for locale in (rootfs / "usr/share/locale").glob("*"):
        if locale.name != "locale.alias":
            shutil.rmtree(locale) if locale.is_dir() and not locale.is_symlink() else locale.unlink()
