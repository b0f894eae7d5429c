"""The programs in images/ are thin entry points over the shipped package: they import it and
hold no BOINC knowledge of their own, and what the images ship is enough to run them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boincserver import images, paths

IMAGES = paths.data_dir("images")
MAX_LINES = 15
# Signs of knowledge that belongs in boincserver/boinc/ (or of logic that belongs in
# boincserver/container/): none may appear in an entry point.
KNOWLEDGE = ("def ", "class ", "import re", "re.", "<daemon", "<file_info", "config.xml", "SELECT ", "UPDATE ",
             "INSERT ", "DELETE ", "server_state", "error_mask", "cancelled", "MySQLdb", "subprocess",
             "update_versions", "create_work", "make_project")
# The commands host code runs in the images, and the module each must start.
ENTRY_POINTS = {"apache/boincserver-jobs": ("boincserver-jobs", "boincserver.container.jobs"),
                "makeproject/project-setup": ("boincserver-project-setup", "boincserver.container.setup"),
                "volunteer/boincserver-volunteer": ("boincserver-volunteer", "boincserver.container.volunteer")}
# How each refuses an unknown command (exit 2).
REFUSALS = {"apache": "usage: boincserver-jobs", "makeproject": "[makeproject] error: unknown command",
            "volunteer": "usage: boincserver-volunteer"}


def python_files() -> list[Path]:
    out = []
    for f in sorted(IMAGES.rglob("*")):
        if f.is_file() and (f.suffix == ".py" or f.read_bytes()[:64].split(b"\n")[0].endswith(b"python3")):
            out.append(f)
    return out


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_entry_points_are_the_python_files_of_images():
    assert {f.relative_to(IMAGES).as_posix() for f in python_files()} == set(ENTRY_POINTS)


@pytest.mark.parametrize("path", python_files(), ids=lambda p: p.relative_to(IMAGES).as_posix())
def test_a_python_file_in_images_only_starts_the_shipped_package(path):
    text = path.read_text()
    lines = code_lines(text)
    assert len(lines) <= MAX_LINES, f"{path.name} has {len(lines)} lines of code: move them into boincserver/container/"
    imports = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {n.module for n in imports if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in imports if isinstance(n, ast.Import) for a in n.names}
    assert ENTRY_POINTS[path.relative_to(IMAGES).as_posix()][1] in modules
    assert modules <= {"sys", ENTRY_POINTS[path.relative_to(IMAGES).as_posix()][1]}
    found = [k for k in KNOWLEDGE if any(k in line for line in lines)]
    assert not found, f"{path.name} re-implements what boincserver.boinc or .container holds: {found}"
    assert path.stat().st_mode & 0o111


def test_the_knowledge_check_catches_a_copy(tmp_path):
    """The check above fails on a helper like the one this replaced."""
    copy = ('import re, sys\nfrom boincserver.container.jobs import main\n'
            'WU_ERRORS = {16: "cancelled"}\ndef daemons(conf):\n'
            '    return re.findall(r"<daemon>.*?<cmd>(.*?)</cmd>", conf)\nsys.exit(main())\n')
    lines = code_lines(copy)
    assert [k for k in KNOWLEDGE if any(k in line for line in lines)]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_the_dockerfile_installs_the_entry_point_and_ships_the_package(entry):
    folder, name = entry.split("/")
    dockerfile = (IMAGES / folder / "Dockerfile").read_text()
    assert f"COPY {name} /usr/local/bin/{ENTRY_POINTS[entry][0]}\n" in dockerfile
    assert "COPY lib/ /usr/local/lib/boincserver/\n" in dockerfile
    assert "PYTHONPATH=/usr/local/lib/boincserver" in dockerfile


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_what_the_image_ships_runs_the_entry_point_alone(tmp_path, entry):
    """The entry point, run with only the build context's lib/ (no site-packages, no MySQLdb,
    no cryptography), reaches its main() and refuses an unknown command its own way."""
    folder, name = entry.split("/")
    (tmp_path / "boinc.tar.gz").write_bytes(b"x")
    ctx = images.make_context(folder, tmp_path / "ctx", tmp_path / "boinc.tar.gz" if folder in images.SOURCE_TARBALL else None)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ctx / "lib"), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-S", str(ctx / name), "no-such-command"], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert REFUSALS[folder] in done.stderr
    # Every shipped module imports from lib/ alone.
    modules = [p.removeprefix("lib/").removesuffix(".py").replace("/", ".").removesuffix(".__init__")
               for p, _ in images.context_files(folder) if p.startswith("lib/")]
    probe = ("import importlib, sys\n"
             f"for m in {modules!r}:\n"
             "    importlib.import_module(m)\n"
             f"assert sys.modules['boincserver'].__file__.startswith({str(ctx / 'lib')!r})\n"
             "print(len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


ALLOWED_PACKAGE_MODULES = ("boincserver.boinc", "boincserver.catalogue", "boincserver.container")


def _imports(tree: ast.AST, top_level: bool) -> set[str]:
    nodes = tree.body if top_level else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            # `from boincserver import catalogue` imports boincserver.catalogue, not the CLI's package.
            names |= {f"boincserver.{a.name}" for a in node.names} if node.module == "boincserver" else {node.module}
    return names


@pytest.mark.parametrize("module", sorted(
    p for p in (paths.PACKAGE_DIR / "container").glob("*.py")) + sorted((paths.PACKAGE_DIR / "boinc").glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_modules_import_the_standard_library_and_each_other_only(module):
    tree = ast.parse(module.read_text())
    outside = {n for n in _imports(tree, top_level=True)
               if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}
               and not n.startswith(ALLOWED_PACKAGE_MODULES)}
    assert not outside, f"{module.name} imports {outside} at the top: the images ship the standard library only"
    if module.parent.name == "boinc":
        assert not any(n.startswith("boincserver.container") for n in _imports(tree, top_level=False))
    # Third-party modules only where one is opened (MySQLdb in the images, cryptography for new keys).
    lazy = {n.split(".")[0] for n in _imports(tree, top_level=False)} - sys.stdlib_module_names - {"boincserver"}
    assert lazy <= {"MySQLdb", "cryptography", "__future__"}
