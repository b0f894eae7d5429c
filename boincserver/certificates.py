"""The certificate use cases: what Apache serves (`tls show`), and a certificate of the
operator's own put in place (`tls set`). Obtaining and renewing by ACME is mod_md's, inside
the apache service (images/apache/tls-config); `up` waits for it (context.wait_until_certified).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from boincserver import tls
from boincserver.backup import TLS_MOUNT  # the tls volume in the makeproject service
from boincserver.context import (Project, Reporter, certificate_state, check_docker, service_running,
                                 wait_until_certified)
from boincserver.errors import InvalidInput, ProjectError

# Swap the new files in whole: Apache never reads a certificate without its key.
INSTALL_FILES = (
    'set -e; cd "$0"; rm -rf files.new; mkdir files.new; tar -x -C files.new -f -; '
    'chmod 644 files.new/fullchain.pem; chmod 600 files.new/privkey.pem; chown -R "$BOINC_USER:" files.new; '
    'rm -rf files.old; if [ -d files ]; then mv files files.old; fi; mv files.new files')
PUT_BACK_FILES = 'set -e; cd "$0"; if [ -d files.old ]; then rm -rf files; mv files.old files; fi'


def show(project: Project) -> dict:
    """How the project serves HTTPS, and the certificate Apache shows for its host right now."""
    s = project.settings
    data: dict = {"url_base": s.url_base, "https": s.serves_https,
                  "mode": s.tls if s.url_base.startswith("https://") else "off"}
    if not s.serves_https:
        return data
    data["port"] = s.published_https_port
    served = tls.served_certificate("127.0.0.1", s.published_https_port, s.host)
    data["served"] = None if served is None else {
        "serial": served.serial, "not_after": served.not_after.isoformat(), "issuer": served.issuer}
    if s.tls == "acme" and service_running(project, "apache"):
        state = certificate_state(project, s)
        if state is not None:
            data["acme"] = {"directory": s.acme_directory, "ready": state.ready, "errors": state.errors,
                            "problem": state.problem, "advice": state.advice}
    return data


def set_files(project: Project, reporter: Reporter, certificate: Path, key: Path) -> dict:
    """Serve the operator's certificate (chain first, then its key) for the project's URL.

    Checked before anything is written (parses, key matches, in date, names the URL's host);
    a running Apache already serving files switches with a graceful reload, and a
    configuration it refuses puts the old files back. From ACME, `up` with tls=files switches
    (the result says `switch`)."""
    s = project.settings
    if not s.url_base.startswith("https://"):
        raise InvalidInput(f"the project's URL {s.url_base} is not https://",
                           advice="move it first: `boincserver up --url-base https://HOST --tls files` "
                                  "after `tls set`, or give the URL now with `up`")
    chain_pem = tls.read_pem_file(certificate, "certificate file", "--cert")
    key_pem = tls.read_pem_file(key, "key file", "--key")
    facts = tls.check_certificate_files(chain_pem, key_pem, s.host)
    check_docker(project.engine)
    if project.engine.image_labels(project.image("makeproject")) is None:
        raise ProjectError("the project has no images yet; nothing was changed",
                           advice="run `boincserver up` first (with --tls files it serves plain HTTP until `tls set`)")
    reporter.step(f"installing the certificate for {', '.join(facts.names)} (until {facts.not_after:%Y-%m-%d})")
    project.engine.run(["-c", INSTALL_FILES, TLS_MOUNT], service="makeproject", entrypoint="sh",
                       stdin=_tar({"fullchain.pem": chain_pem, "privkey.pem": key_pem}))
    was_files = s.tls == "files"
    if was_files and service_running(project, "apache"):
        test = project.engine.exec("apache", ["apache2ctl", "-t"], check=False)
        if test.code != 0:
            project.engine.run(["-c", PUT_BACK_FILES, TLS_MOUNT], service="makeproject", entrypoint="sh")
            raise ProjectError(f"Apache refuses the new certificate: {test.err.strip()}",
                               advice="the old certificate is served as before; check the files")
        reporter.step("reloading Apache gracefully")
        project.engine.exec("apache", ["apache2ctl", "graceful"])
        wait_until_certified(project, s, reporter, serial=facts.serial)
    return {"names": list(facts.names), "not_after": facts.not_after.isoformat(), "days_left": facts.days_left,
            "subject": facts.subject, "serial": facts.serial, "switch": not was_files}


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
