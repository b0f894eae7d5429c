"""plan_class_spec.xml (boincserver.boinc.plan_classes): made, completed, or refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from boincserver.boinc import plan_classes as pc
from boincserver.boinc.apps import AppError, plan_class_of

USER_FILE = """<?xml version="1.0"?>
<plan_classes>
    <!-- ours: the CUDA build -->
    <plan_class>
        <name>   cuda_big   </name>
        <gpu_type>nvidia</gpu_type>
        <cuda/>
        <min_gpu_ram_mb>4096</min_gpu_ram_mb>
    </plan_class>
    <plan_class>
        <name>mt</name>
        <min_ncpus>4</min_ncpus>
        <max_threads>8</max_threads>
    </plan_class>
</plan_classes>
"""


def classes(text: str) -> dict[str, ET.Element]:
    return {e.findtext("name").strip(): e for e in ET.fromstring(text).findall("plan_class")}


def test_a_project_without_docker_versions_keeps_no_file():
    assert pc.spec_file([], None) is None
    assert pc.spec_file(["", "mt", "cuda", "vbox64"], None) is None  # the built-ins serve them


def test_the_first_docker_version_makes_a_file_with_mt_and_docker():
    text = pc.spec_file(["", "docker"], None)
    assert pc.class_names(text) == ["mt", "docker"]
    assert text.startswith("<plan_classes>\n")  # BOINC wants it as the first tag
    spec = classes(text)
    assert spec["docker"].find("docker") is not None and len(spec["docker"]) == 2
    mt = spec["mt"]
    # sched_customize.cpp's app_plan_mt: >= 2 CPUs, up to 64 threads, --nthreads, flops x .99
    assert (mt.findtext("min_ncpus"), mt.findtext("max_threads"), mt.findtext("nthreads_cmdline"),
            mt.findtext("projected_flops_scale")) == ("2", "64", "1", ".99")


def test_every_class_in_use_is_in_the_new_file():
    text = pc.spec_file(["docker", "sse3", "nci", "wsl", ""], None)
    assert pc.class_names(text) == ["mt", "docker", "nci", "sse3", "wsl"]
    spec = classes(text)
    assert spec["sse3"].findtext("cpu_feature") == "pni"
    assert spec["nci"].findtext("avg_ncpus") == ".01"
    assert spec["wsl"].find("wsl") is not None


@pytest.mark.parametrize("name", ["cuda", "ati14", "opencl_nvidia_101", "vbox64_mt", "my_own"])
def test_a_class_without_a_spec_equivalent_is_refused_with_the_fix(name):
    with pytest.raises(AppError, match=f"plan class '{name}'") as info:
        pc.spec_file(["docker", name], None)
    assert "add a <plan_class> for it" in info.value.advice
    assert "Fix: " in str(info.value)


def test_a_users_file_is_kept_and_completed():
    merged = pc.spec_file(["docker", "cuda_big", "mt", "sse3"], USER_FILE)
    head = USER_FILE[:USER_FILE.rindex("</plan_classes>")]
    assert merged.startswith(head)  # their text, comment and all, untouched
    assert merged.endswith("</plan_classes>\n")
    assert pc.class_names(merged) == ["cuda_big", "mt", "docker", "sse3"]
    assert classes(merged)["mt"].findtext("min_ncpus") == "4"  # their mt, not ours
    # Complete already: the very same text (nothing to write).
    assert pc.spec_file(["docker", "cuda_big", "sse3"], merged) is merged


def test_a_users_file_serves_their_own_classes():
    """A class boincserver cannot write is fine when the user's file has it."""
    assert "cuda_big" in pc.class_names(pc.spec_file(["cuda_big", "docker"], USER_FILE))
    with pytest.raises(AppError, match="'cuda'"):
        pc.spec_file(["cuda", "docker"], USER_FILE)


def test_a_users_file_is_completed_even_without_docker_versions():
    """Once the file exists the scheduler reads only it: a new native mt version needs mt there."""
    only_docker = "<plan_classes><plan_class><name>docker</name><docker/></plan_class></plan_classes>"
    merged = pc.spec_file(["docker", "mt"], only_docker)
    assert pc.class_names(merged) == ["docker", "mt"]
    assert merged.startswith("<plan_classes><plan_class><name>docker</name><docker/></plan_class>")


@pytest.mark.parametrize("text, why", [
    ("<plan_classes><plan_class><name>mt</name></plan_class>", "no element found"),
    ("<plan_classes><plan_class><name>mt</plan_class></plan_classes>", "mismatched tag"),
    ("<!-- mine --><plan_classes></plan_classes>", "first tag"),
    ("<plan_class><name>mt</name></plan_class>", "first tag"),
    ("<plan_classes><plan_class><cuda/></plan_class></plan_classes>", "has no <name>"),
    ("", "first tag"),
])
def test_a_malformed_file_is_refused_with_the_fix(text, why):
    with pytest.raises(AppError, match="malformed") as info:
        pc.spec_file(["docker"], text)
    assert why in info.value.message
    assert "correct plan_class_spec.xml" in info.value.advice


def test_an_xml_declaration_may_come_first():
    assert pc.class_names('<?xml version="1.0" encoding="UTF-8"?>\n<plan_classes></plan_classes>') == []


def test_has_class():
    assert pc.has_class(pc.spec_file(["docker"], None), "docker")
    assert not pc.has_class(None, "docker")
    assert not pc.has_class(USER_FILE, "docker") and pc.has_class(USER_FILE, "cuda_big")


def test_the_plan_class_is_the_version_folders_suffix():
    assert plan_class_of("x86_64-pc-linux-gnu__docker") == "docker"
    assert plan_class_of("x86_64-pc-linux-gnu") == ""

