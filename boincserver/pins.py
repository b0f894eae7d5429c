"""Everything boincserver pins, in one place: nothing is ever `latest`."""

from boincserver import __version__

BOINC_RELEASE = "server_release/1.6/1.6.2"
BOINC_VERSION = "1.6.2"
BOINC_COMMIT = "679b7c89d0db3b0f1c190c53686dbb508a9b13be"
BOINC_ARCHIVE_URL = "https://github.com/BOINC/boinc/archive/{commit}.tar.gz"

# Debian's dated tag: a rebuild of the same tag gives the same packages' versions.
DEBIAN_SUITE = "bookworm"
BASE_OS_IMAGE = "debian:bookworm-20250811-slim"

BASE_IMAGE_REPO = "boincserver"
BASE_IMAGE_NAMES = ("mysql", "apache", "makeproject")


def base_image(name: str) -> str:
    """The tag of one of our base images, e.g. boincserver/apache:0.1.0-boinc1.6.2."""
    return f"{BASE_IMAGE_REPO}/{name}:{__version__}-boinc{BOINC_VERSION}"
