"""What a project needs so that BUDA (BOINC's Docker science apps, boinc/buda.py) works from
BOINC's own web pages: set up by the makeproject job at every start (container/setup.py), for
new and existing projects alike, and leaving a project that has it as it is.

Facts from the pinned server source (server_release 1.6.2):

- buda_submit.php unzips the batch file with `cd $batch_dir; unzip $sb_dir/$batch_file`
  (html/user/buda_submit.php:102-120), where $batch_dir is buda_batches/<n> and $sb_dir the
  user's sandbox, `<sandbox_dir>/<user id>` (html/inc/sandbox.inc:45-61), by default the
  relative `../../sandbox`: relative to buda_batches/<n> that names no folder and unzip fails
  ("unzip error: 9"). An absolute <sandbox_dir> in config.xml works from both places; BOINC's
  C++ parser skips the unknown tag (sched/sched_config.cpp:357-360).
- The pages write into buda_apps/ (buda.php:41-43 makes it), buda_batches/ (buda_submit.php:
  102-120) and the sandbox (sandbox.inc:45-61), as Apache's user, the BOINC user here.
- The "Job submission" menu is shown only when project.inc defines REMOTE_JOB_SUBMISSION
  (html/inc/bootstrap.inc:23-25, 187-219); the sample project.inc does not
  (boinc/makeproject.py project_inc_with_job_submission).
"""

from __future__ import annotations

import os
from pathlib import Path

from boincserver.boinc import buda as bb
from boincserver.boinc import configxml, makeproject
from boincserver.container import common

SANDBOX_DIR = "sandbox"
SANDBOX_ELEMENT = "sandbox_dir"
FOLDERS = (bb.APPS_DIR, bb.BATCHES_DIR, SANDBOX_DIR)


def config_with_sandbox_dir(text: str, project_root: str) -> str:
    """config.xml with <sandbox_dir> PROJECT_ROOT/sandbox (the path the web server sees)."""
    return configxml.set_element(text, SANDBOX_ELEMENT, f"{project_root.rstrip('/')}/{SANDBOX_DIR}")


def prepare_project(volume: Path, project_root: str, previous_url: str = "", url: str = "") -> list[str]:
    """At every start, on the project volume (mounted at `volume` here, at `project_root` in
    the web server): the absolute <sandbox_dir>, the folders the pages write to, owned as the
    project's folder is (the BOINC user's), REMOTE_JOB_SUBMISSION in project.inc, and, when the
    URL base moved, the download URLs the variants' variant.json bake in; what changed."""
    changed = []
    if previous_url and url and previous_url != url:
        for path in sorted(volume.glob(f"{bb.APPS_DIR}/*/*/{bb.VARIANT_JSON}")):
            relpath = str(path.relative_to(volume))
            try:
                moved = bb.variant_json_with_url_base(path.read_text(), previous_url, url)
            except bb.BudaError as exc:
                changed.append(f"{relpath} left as it is ({exc.message})")
                continue
            if common.replace_file(path, moved):
                changed.append(relpath)
    config = volume / "config.xml"
    if common.replace_file(config, config_with_sandbox_dir(config.read_text(), project_root)):
        changed.append(f"config.xml ({SANDBOX_ELEMENT})")
    owner = volume.stat()
    for name in FOLDERS:
        folder = volume / name
        if not folder.is_dir():
            folder.mkdir()
            changed.append(f"{name}/")
        made = folder.stat()
        if (made.st_uid, made.st_gid) != (owner.st_uid, owner.st_gid):
            os.chown(folder, owner.st_uid, owner.st_gid)
    inc = volume / makeproject.PROJECT_INC
    if inc.is_file() and common.replace_file(inc, makeproject.project_inc_with_job_submission(inc.read_text())):
        changed.append(f"{makeproject.PROJECT_INC} (REMOTE_JOB_SUBMISSION)")
    return changed
