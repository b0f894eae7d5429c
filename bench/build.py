#!/usr/bin/env python3
"""Build benchmarks: a second `build` with nothing changed, and one after a change to a
project file only (no BOINC recompile: the base images are untouched). Target: <= 60 s.

Run with `python bench/build.py`. It makes a throwaway project and deletes its images at the
end; the base images must be there already (`boincserver build` makes them once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from boincserver import __version__

CLI = [sys.executable, "-m", "boincserver"]
SERVICES = ("mysql", "makeproject", "apache")


def timed_build(pdir: Path) -> tuple[float, dict]:
    started = time.monotonic()
    done = subprocess.run(CLI + ["build", "--json"], cwd=pdir, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"build failed:\n{done.stdout}\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures: dict[str, object] = {"boincserver": __version__}
    with tempfile.TemporaryDirectory(prefix="boincserver-bench-") as tmp:
        project = f"bb_{os.getpid()}"
        pdir = Path(tmp) / project
        subprocess.run(CLI + ["init", str(pdir)], check=True, capture_output=True)
        try:
            first, r = timed_build(pdir)
            figures["first_build_s"] = round(first, 1)
            figures["first_build_base_built"] = r["base_built"]
            unchanged, r = timed_build(pdir)
            assert r["project_built"] == [] and r["base_built"] == [], r
            figures["unchanged_build_s"] = round(unchanged, 2)
            # A project file only: a config file the makeproject overlay copies in.
            (pdir / "config.extra.xml").write_text("<!-- a project file -->\n")
            dockerfile = pdir / "images" / "makeproject" / "Dockerfile"
            dockerfile.write_text(dockerfile.read_text() + "COPY config.extra.xml $PROJECT_ROOT/\n")
            changed, r = timed_build(pdir)
            assert r["base_built"] == [], r
            figures["project_file_change_build_s"] = round(changed, 2)
            figures["rebuilt_after_change"] = r["project_built"]
        finally:
            subprocess.run(["docker", "image", "rm", *[f"boincserver-{project}/{s}:{__version__}" for s in SERVICES]],
                           capture_output=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"boincserver {__version__} build benchmark")
    print(f"  first build of the project's images        {figures['first_build_s']:8.1f} s"
          f"  (base images built: {', '.join(figures['first_build_base_built']) or 'none'})")
    print(f"  second build, nothing changed              {figures['unchanged_build_s']:8.2f} s")
    print(f"  build after a project file change          {figures['project_file_change_build_s']:8.2f} s"
          f"  (target <= 60; rebuilt: {', '.join(figures['rebuilt_after_change'])}; no BOINC recompile)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
