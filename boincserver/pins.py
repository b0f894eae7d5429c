"""Everything boincserver pins, in one place: nothing is ever `latest`."""

from boincserver import __version__

BOINC_RELEASE = "server_release/1.6/1.6.2"
BOINC_VERSION = "1.6.2"
BOINC_COMMIT = "679b7c89d0db3b0f1c190c53686dbb508a9b13be"
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


def base_image(name: str) -> str:
    """The tag of one of our base images, e.g. boincserver/apache:0.1.0-boinc1.6.2."""
    return f"{BASE_IMAGE_REPO}/{name}:{__version__}-boinc{BOINC_VERSION}"


def volunteer_image() -> str:
    """The tag of the volunteer image, e.g. boincserver/volunteer:0.1.0-boinc8.2.15."""
    return f"{BASE_IMAGE_REPO}/volunteer:{__version__}-boinc{CLIENT_VERSION}"
