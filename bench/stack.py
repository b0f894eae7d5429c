#!/usr/bin/env python3
"""Stack benchmarks: warm `up`, URL change, image sizes, and (with --cold) the cold build.

Run with `./run bench` (or `python bench/stack.py`). It makes a throwaway project on a free
port and deletes it (and its volumes) at the end. Targets from the foundation issue: warm
`up` <= 10 s, URL change <= 30 s, apache image <= 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from boincserver import __version__, pins

CLI = [sys.executable, "-m", "boincserver"]


def sh(cmd: list[str], cwd: Path | None = None) -> float:
    """Run a command; return its wall time in seconds (it must succeed)."""
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def image_size_mb(tag: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag],
                         capture_output=True, text=True, check=True).stdout
    return int(out) / 1e6


def cold_build(project_dir: Path) -> float:
    """Build everything from an empty build cache: base images (BOINC compiles) and project's."""
    tags = [pins.base_image(n) for n in pins.BASE_IMAGE_NAMES]
    subprocess.run(["docker", "image", "rm", "-f", *tags], capture_output=True)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
    return sh(CLI + ["build"], cwd=project_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a build from an empty cache (~10 min)")
    parser.add_argument("--repeat", type=int, default=3, help="warm ups and URL changes to time")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    figures: dict[str, object] = {"boincserver": __version__}
    with tempfile.TemporaryDirectory(prefix="boincserver-bench-") as tmp:
        port = free_port()
        project = f"bench_{os.getpid()}"
        pdir = Path(tmp) / project
        sh(CLI + ["init", str(pdir), "--url-base", f"http://127.0.0.1:{port}", "--http-port", str(port)])
        try:
            if args.cold:
                figures["cold_build_s"] = round(cold_build(pdir), 1)
            figures["first_up_s"] = round(sh(CLI + ["up"], cwd=pdir), 1)
            warm = [sh(CLI + ["up"], cwd=pdir) for _ in range(args.repeat)]
            figures["warm_up_s"] = {"min": round(min(warm), 2), "max": round(max(warm), 2)}
            changes = [sh(CLI + ["up", "--url-base", f"http://127.0.0.{2 + i % 2}:{port}"], cwd=pdir)
                       for i in range(args.repeat)]
            figures["url_change_s"] = {"min": round(min(changes), 2), "max": round(max(changes), 2)}
            sizes = {f"base {n}": image_size_mb(pins.base_image(n)) for n in pins.BASE_IMAGE_NAMES}
            sizes.update({f"project {s}": image_size_mb(f"boincserver-{project}/{s}:{__version__}")
                          for s in ("mysql", "makeproject", "apache")})
            figures["image_size_mb"] = {k: round(v) for k, v in sizes.items()}
        finally:
            subprocess.run(CLI + ["down", "--volumes", "--yes"], cwd=pdir, capture_output=True)
            subprocess.run(["docker", "image", "rm", *[f"boincserver-{project}/{s}:{__version__}"
                                                      for s in ("mysql", "makeproject", "apache")]],
                           capture_output=True)

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"boincserver {__version__} stack benchmark")
    if "cold_build_s" in figures:
        print(f"  cold build (BOINC compiled, all images) {figures['cold_build_s']:8.1f} s")
    print(f"  first up (project created)               {figures['first_up_s']:8.1f} s")
    w, c = figures["warm_up_s"], figures["url_change_s"]
    print(f"  warm up, nothing changed                 {w['min']:8.2f} s  (max {w['max']:.2f}; target <= 10)")
    print(f"  URL change, no rebuild                   {c['min']:8.2f} s  (max {c['max']:.2f}; target <= 30)")
    for name, mb in figures["image_size_mb"].items():
        target = "  (target <= 500)" if name.endswith("apache") else ""
        print(f"  image {name:34} {mb:6} MB{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
