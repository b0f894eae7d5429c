"""Everything boincserver pins, in one place: nothing is ever `latest`."""

from dataclasses import dataclass

from boincserver import __version__

BOINC_RELEASE = "server_release/1.6/1.6.2"
BOINC_VERSION = "1.6.2"
BOINC_COMMIT = "679b7c89d0db3b0f1c190c53686dbb508a9b13be"


@dataclass(frozen=True)
class ServerRelease:
    """A BOINC server release a project can run: its tag, version and commit."""

    tag: str
    version: str
    commit: str
    # Its FastCGI code compiles against bookworm's glibc (1.4.7's does not: fcgi_stdio.h meets
    # glibc 2.36's malloc attribute; fixed in BOINC's PR 5096): without it, CGI programs only.
    fastcgi: bool = True
    # samples/docker_wrapper exists (Docker apps); 1.4.7 has none.
    docker_apps: bool = True
    # samples/wrapper's make names the wrapper wrapper__PLATFORM (1.6); 1.4.7's is plain `wrapper`.
    wrapper_suffix: bool = True


# The releases a project can be created at (`init --boinc-release`): the pin above, which new
# projects get and `upgrade` moves a project to, and the older one still supported, so that a
# project made with it can be upgraded. 1.4.7 is not an ancestor of 1.6.2 (each was cut from its
# own branch), which is why the upgrade is by release, not by commit.
OLDER_SERVER_RELEASES = (
    ServerRelease("server_release/1.4/1.4.7", "1.4.7", "99de7f66f4b60b527e6c82c7dbe6c35848ca2a8b", fastcgi=False,
                  docker_apps=False, wrapper_suffix=False),
)


def server_releases() -> dict[str, ServerRelease]:
    """The supported server releases by version, the pinned one first (read when called: tests
    change the pins)."""
    pinned = ServerRelease(BOINC_RELEASE, BOINC_VERSION, BOINC_COMMIT)
    return {r.version: r for r in (pinned, *OLDER_SERVER_RELEASES)}


def server_release(name: str = "") -> ServerRelease:
    """The supported release named by its version (1.4.7) or its tag (server_release/1.4/1.4.7);
    the pinned one for "". KeyError for any other."""
    releases = server_releases()
    if not name:
        return releases[BOINC_VERSION]
    for release in releases.values():
        if name in (release.version, release.tag):
            return release
    raise KeyError(name)


BOINC_ARCHIVE_URL = "https://github.com/BOINC/boinc/archive/{commit}.tar.gz"

# The volunteer's client: BOINC's client releases are tagged apart from the server's; 8.2 is the
# first to detect Docker and run Docker apps. Built from this commit's source (no registry has it).
CLIENT_RELEASE = "client_release/8.2/8.2.15"
CLIENT_VERSION = "8.2.15"
CLIENT_COMMIT = "3422898505b74c637a4b530a94b63be90bdf025b"
# Its Docker CLI comes from Debian trixie: bookworm's (20.10) cannot bind-mount the relative
# "./" that docker_wrapper passes (CLI 23+ can). It needs no more than libc6 >= 2.34, so it
# installs on bookworm. A floor, not an exact version: a mirror keeps only a suite's newest
# build, so an exact pin would stop building at trixie's next point release (seen here: the
# 26.1.5+dfsg1-9+b11 of a month earlier was already gone). The build refuses anything older.
DOCKER_CLI_SUITE = "trixie"
DOCKER_CLI_MIN_VERSION = "23"
# What the 8.2 client runs at start-up (`docker run --rm hello-world`, wanting a line with
# "Hello"); we build it locally, so the check passes where no registry answers. Untagged as the
# client names it (Docker reads the default tag), and never pulled.
HELLO_WORLD_IMAGE = "hello-world"

# Debian's dated tag: a rebuild of the same tag gives the same packages' versions.
DEBIAN_SUITE = "bookworm"
BASE_OS_IMAGE = "debian:bookworm-20250811-slim"

BASE_IMAGE_REPO = "boincserver"
BASE_IMAGE_NAMES = ("mysql", "apache", "makeproject")


def base_image(name: str, boinc_version: str = "") -> str:
    """The tag of one of our base images at a BOINC server release (the pinned one unless told),
    e.g. boincserver/apache:0.1.0-boinc1.6.2."""
    return f"{BASE_IMAGE_REPO}/{name}:{__version__}-boinc{boinc_version or BOINC_VERSION}"


def volunteer_image() -> str:
    """The tag of the volunteer image, e.g. boincserver/volunteer:0.1.0-boinc8.2.15."""
    return f"{BASE_IMAGE_REPO}/volunteer:{__version__}-boinc{CLIENT_VERSION}"
