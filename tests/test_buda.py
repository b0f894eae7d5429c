"""BUDA science apps as files (boincserver.boinc.buda): the texts html/user/buda.php writes.

The expected texts below are written out by hand from the pinned PHP (buda.php create_templates,
file_xml_elements, app_action, variant_action; submit_util.inc file_ref_in/file_info_out/
file_ref_out) and were checked once against PHP 8.2 running those functions: they are not
computed with the module under test."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from boincserver.boinc import apps as ba
from boincserver.boinc import buda

URL = "http://h:8080/proj/download"
DOCKERFILE = b"FROM debian\nWORKDIR /app\n"  # md5 4b78fbc0b599886602bd0029f637bae5, 25 bytes
MAIN_SH = b"#!/bin/sh\ntr a-z A-Z < in > out\n"  # md5 09d526138cc8752fd61839b6245138d7, 32 bytes
JOB_TOML = b"verbose = 1\n"  # md5 6189712320def245fdc6918d87b0a80b, 12 bytes
DOCKERFILE_PHYS = "buda_upper_intel_cpu_4b78fbc0b599886602bd0029f637bae5"
MAIN_SH_PHYS = "buda_upper_intel_cpu_09d526138cc8752fd61839b6245138d7"
JOB_TOML_PHYS = "buda_upper_intel_cpu_6189712320def245fdc6918d87b0a80b"


def upper(**changes) -> buda.BudaApp:
    fields = dict(user_id=3, create_time=1700000000, long_name="Upper case/ASCII \u00e9", min_nsuccess=2,
                  max_total=3, max_delay_days=7, description='Line 1\nx/y "q"', submitters=[5, 9])
    fields.update(changes)
    return buda.make_app("upper", ["in", "a.txt"], ["out", "log.txt"], **fields)


def refused(call, *args, **kwargs) -> buda.BudaError:
    with pytest.raises(buda.BudaError) as info:
        call(*args, **kwargs)
    exc = info.value
    assert exc.advice and str(exc).endswith(" Fix: " + exc.advice)
    return exc


# -- constants and names ---------------------------------------------------------------------
def test_constants_are_those_of_the_pages():
    assert (buda.BOINC_APP, buda.APPS_DIR, buda.CPU_VARIANT, buda.DOCKERFILE_OPEN_NAME) == \
        ("buda", "buda_apps", "intel_cpu", "Dockerfile")
    assert buda.variant_name("arm") == "arm_cpu" and buda.variant_name("intel", "cuda") == "intel_cuda"
    assert buda.APP_NAME_MAX == 40 and buda.LONG_NAME_MAX == 225
    assert issubclass(buda.BudaError, ValueError) and issubclass(buda.BudaError, ba.AppError)


def test_phys_name_and_download_path():
    assert buda.phys_name("upper", "intel_cpu", "4b78fbc0b599886602bd0029f637bae5") == DOCKERFILE_PHYS
    # dir_hier.inc filename_hash: md5(name)[1:8] as hex, modulo the fanout, in hex.
    assert buda.download_path(DOCKERFILE_PHYS, 1024) == f"download/106/{DOCKERFILE_PHYS}"
    assert buda.download_path(JOB_TOML_PHYS, 1024) == f"download/28e/{JOB_TOML_PHYS}"


@pytest.mark.parametrize("name", ["upper", "My-App.2", "a", "x" * 40])
def test_good_app_names(name):
    assert buda.check_app_name(name) == name


def test_app_name_fits_result_template_file_varchar_63():
    assert len(buda.result_template_path("x" * 40)) == 63
    exc = refused(buda.check_app_name, "x" * 41)
    assert "buda_apps/" + "x" * 41 + "/template_out" in str(exc) and "at most 40" in exc.advice


@pytest.mark.parametrize("name", ["with space", ".hidden", "..", "a/b", "é", "", "a;rm", None])
def test_bad_app_names(name):
    assert "choose a name" in refused(buda.check_app_name, name).advice


# -- the files a job's slot holds -------------------------------------------------------------
def test_inputs_are_sorted_as_buda_submit_hands_them_to_create_work():
    assert buda.check_input_names(["in", "a.txt", "B"]) == ["B", "a.txt", "in"]
    assert buda.check_input_names(["10", "x"]) == ["10", "x"]  # one number alone sorts as text
    assert buda.check_output_names(["out", "log.txt"]) == ["out", "log.txt"]


@pytest.mark.parametrize("names, fix", [
    (["in", "in"], "its own name"),
    (["cmdline"], "another name"),
    ([".in"], "does not start with '.'"),
    (["Dockerfile"], "another name"),
    (["job.toml"], "another name"),
    (["init_data.xml"], "another name"),
    (["a b"], "rename"),
    (["../in"], "rename"),
    (["10", "9"], "add a letter"),
    (["1e1", "2.5"], "add a letter"),
])
def test_bad_inputs(names, fix):
    assert fix in refused(buda.check_input_names, names).advice


@pytest.mark.parametrize("names", [["out", "out"], ["../out"], ["Dockerfile"], ["stderr.txt"], ["a/b"]])
def test_bad_outputs(names):
    refused(buda.check_output_names, names)


@pytest.mark.parametrize("name", ["variant.json", ".md5", ".x", "Dockerfile", "init_data.xml", "boinc_x",
                                  "fraction_done", "a b", ""])
def test_bad_app_files(name):
    refused(buda.check_app_file_name, name)


def test_job_toml_is_an_app_file():
    assert buda.check_app_file_name("job.toml") == "job.toml"


# -- numbers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("min_nsuccess, max_total, fix", [
    (0, 2, "whole number"), (1, 0, "whole number"), (True, 2, "whole number"), (1.0, 2, "whole number"),
    ("1", 2, "whole number"), (1, 2**31, "whole number"), (3, 2, "at least min_nsuccess"),
])
def test_bad_replication(min_nsuccess, max_total, fix):
    assert fix in refused(buda.check_replication, min_nsuccess, max_total).advice


def test_replication_bounds():
    assert buda.check_replication(1, 1) == (1, 1) and buda.check_replication(2, 2**31 - 1) == (2, 2**31 - 1)


@pytest.mark.parametrize("days", [0, -1, math.nan, math.inf, 1e305, "7", None, True])
def test_bad_max_delay(days):
    assert "e.g. 7" in refused(buda.check_max_delay_days, days).advice


def test_long_name():
    assert buda.check_long_name("x" * 225) == "x" * 225
    assert "at most 225" in refused(buda.check_long_name, "x" * 226).advice
    for bad in ['a "b"', "$HOME", "a`b`", "a\\b", "a<b", "a&b", "a\nb"]:
        assert "leave it out" in refused(buda.check_long_name, bad).advice


def test_only_the_empty_plan_class_and_known_cpus():
    assert buda.check_plan_class("") == ""
    exc = refused(buda.check_plan_class, "cuda")
    assert "crashes" in exc.message and "empty" in exc.advice
    assert "intel" in refused(buda.check_cpu_type, "mips").advice
    refused(buda.variant_json, "upper", [buda.VariantFile.of("Dockerfile", DOCKERFILE)], URL, plan_class="mt")


def test_md5_and_url_checks():
    refused(buda.check_md5, "4B78FBC0B599886602BD0029F637BAE5")
    refused(buda.check_md5, "abc")
    for url in ["ftp://h/d", "http://h/a b", "http://h/<x>", "", None]:
        refused(buda.check_download_url, url)


# -- JSON as PHP writes it --------------------------------------------------------------------
@pytest.mark.parametrize("value, text", [  # json_encode() of PHP 8.2
    (7.0, "7"), (0.5, "0.5"), (1 / 3, "0.3333333333333333"), (86400.5, "86400.5"),
    (1e15, "1000000000000000"), (1e16, "10000000000000000"), (12345678901234567.0, "12345678901234568"),
    (1e17, "1.0e+17"), (2.0**60, "1.152921504606847e+18"), (1e300, "1.0e+300"),
    (0.0001, "0.0001"), (0.00012, "0.00012"), (1e-5, "1.0e-5"), (5e-324, "5.0e-324"),
    (0.0, "0"), (-0.0, "-0"), (-1.5, "-1.5"),
])
def test_floats_as_php_json_encode_writes_them(value, text):
    assert buda.php_float(value) == text


def test_php_json_escapes_like_php():
    assert buda.php_json("x/y\u00e9\U0001F600\x01\\/") == '"x\\/y\\u00e9\\ud83d\\ude00\\u0001\\\\\\/"'
    assert buda.php_json({"a": [], "b": {}, "c": [1, None, True]}) == \
        '{\n    "a": [],\n    "b": {},\n    "c": [\n        1,\n        null,\n        true\n    ]\n}'
    assert json.loads(buda.php_json("x/y\\/")) == "x/y\\/"
    refused(buda.php_json, "\ud800")
    refused(buda.php_json, {1, 2})


DESC_JSON = """{
    "user_id": 3,
    "create_time": 1700000000,
    "name": "upper",
    "long_name": "Upper case\\/ASCII \\u00e9",
    "input_file_names": [
        "a.txt",
        "in"
    ],
    "output_file_names": [
        "out",
        "log.txt"
    ],
    "min_nsuccess": 2,
    "max_total": 3,
    "max_delay_days": 7,
    "description": "Line 1\\nx\\/y \\"q\\"",
    "sci_kw": [],
    "submitters": [
        5,
        9
    ]
}"""


def test_desc_json_as_app_action_writes_it():
    assert buda.desc_json(upper()) == DESC_JSON
    assert '"max_delay_days": 0.5,' in buda.desc_json(upper(max_delay_days=0.5))
    data = json.loads(DESC_JSON)
    # What sched/buda.cpp reads with get<int>, and buda_submit.php's array_merge with sci_kw.
    assert type(data["min_nsuccess"]) is int and type(data["max_total"]) is int and data["sci_kw"] == []


def test_desc_round_trip_and_defaults():
    desc = upper()
    assert buda.parse_desc_json(buda.desc_json(desc)) == desc
    plain = buda.make_app("upper", [], ["out"], user_id=0, create_time=5)
    assert (plain.long_name, plain.min_nsuccess, plain.max_total, plain.max_delay_days, plain.sci_kw) == \
        ("upper", 1, 2, 7.0, ())
    assert buda.parse_desc_json(buda.desc_json(plain)) == plain
    assert buda.make_app("a", [], [], user_id=1, create_time=0, submitters=[4, 4, 2]).submitters == (4, 2)


def test_parse_desc_json_of_a_hand_made_file():
    desc = buda.parse_desc_json('{"name": "x", "min_nsuccess": 1, "max_total": 1, "submitters": ["7"]}')
    assert (desc.name, desc.user_id, desc.input_file_names, desc.submitters, desc.sci_kw) == ("x", 0, (), (7,), ())
    assert desc.can_submit(7) and desc.can_submit(0) and not desc.can_submit(8)
    assert upper().can_submit(3) and upper().can_submit(9) and not upper().can_submit(4)


@pytest.mark.parametrize("text", ["{", "[]", '{"min_nsuccess": 1, "max_total": 1}',
                                  '{"name": "x", "min_nsuccess": "1", "max_total": 1}',
                                  '{"name": "x", "min_nsuccess": 1, "max_total": 1, "sci_kw": 3}',
                                  '{"name": "x", "min_nsuccess": 1, "max_total": 1, "input_file_names": [1]}'])
def test_parse_desc_json_refuses_what_the_scheduler_cannot_read(text):
    assert "again" in refused(buda.parse_desc_json, text).advice


def test_make_app_refuses():
    refused(buda.make_app, "upper", ["in"], [], user_id=-1, create_time=0)
    refused(buda.make_app, "upper", ["in"], [], user_id=1, create_time=0, submitters=[0])
    refused(buda.make_app, "upper", ["in"], [], user_id=1, create_time=0, sci_kw=["x"])
    refused(buda.make_app, "upper", ["in"], [], user_id=1, create_time=0, description=None)
    refused(buda.make_app, "upper", ["in"], [], user_id=1, create_time=0, long_name='say "hi"')
    unsorted = dataclasses.replace(upper(), input_file_names=("in", "a.txt"))
    assert "make_app" in refused(buda.check_app, unsorted).advice


def test_submitters_added_and_removed():
    with_7 = buda.desc_with_submitter(DESC_JSON, 7)
    assert with_7 == DESC_JSON.replace("        9\n", "        9,\n        7\n")
    assert buda.desc_with_submitter(with_7, 7) == with_7
    assert buda.desc_without_submitter(with_7, 7) == DESC_JSON
    assert buda.desc_without_submitter(DESC_JSON, 7) == DESC_JSON  # untouched: not there
    only_5 = buda.desc_without_submitter(DESC_JSON, 9)
    assert buda.parse_desc_json(only_5).submitters == (5,)
    assert only_5 == DESC_JSON.replace("        5,\n        9\n", "        5\n")
    assert buda.parse_desc_json(buda.desc_with_submitter('{"name": "x", "min_nsuccess": 1, "max_total": 1}',
                                                         2)).submitters == (2,)
    refused(buda.desc_with_submitter, DESC_JSON, 0)
    refused(buda.desc_with_submitter, "{}", 2)


# -- templates ---------------------------------------------------------------------------------
TEMPLATE_IN = """<input_template>
   <file_info>
      <no_delete/>
   </file_info>
   <file_info>
      <no_delete/>
   </file_info>
   <workunit>
      <file_ref>
         <open_name>a.txt</open_name>
         <copy_file/>
      </file_ref>
      <file_ref>
         <open_name>in</open_name>
         <copy_file/>
      </file_ref>
      <target_nresults>2</target_nresults>
      <min_quorum>2</min_quorum>
      <max_total_results>3</max_total_results>
      <max_delay>43200.000000</max_delay>
      <buda_app_name>upper</buda_app_name>
   </workunit>
</input_template>
"""

TEMPLATE_OUT = """<output_template>
    <file_info>
        <name><OUTFILE_0/></name>
        <generated_locally/>
        <upload_when_present/>
        <max_nbytes>5000000</max_nbytes>
        <url><UPLOAD_URL/></url>
    </file_info>
    <file_info>
        <name><OUTFILE_1/></name>
        <generated_locally/>
        <upload_when_present/>
        <max_nbytes>5000000</max_nbytes>
        <url><UPLOAD_URL/></url>
    </file_info>
   <result>
        <file_ref>
            <file_name><OUTFILE_0/></file_name>
            <open_name>out</open_name>
            <copy_file/>
        </file_ref>
        <file_ref>
            <file_name><OUTFILE_1/></file_name>
            <open_name>log.txt</open_name>
            <copy_file/>
        </file_ref>
   </result>
</output_template>
"""


def test_templates_as_create_templates_writes_them():
    desc = upper(max_delay_days=0.5)
    assert buda.input_template(desc) == TEMPLATE_IN
    assert buda.output_template(desc) == TEMPLATE_OUT


def test_templates_without_files():
    desc = buda.make_app("bare", [], [], user_id=1, create_time=0, max_delay_days=1e-7)
    assert buda.input_template(desc) == (
        "<input_template>\n   <workunit>\n      <target_nresults>1</target_nresults>\n"
        "      <min_quorum>1</min_quorum>\n      <max_total_results>2</max_total_results>\n"
        "      <max_delay>0.008640</max_delay>\n      <buda_app_name>bare</buda_app_name>\n"
        "   </workunit>\n</input_template>\n")
    assert buda.output_template(desc) == "<output_template>\n   <result>\n   </result>\n</output_template>\n"


# -- variant files -----------------------------------------------------------------------------
FILE_INFO = f"""<file_info>
    <sticky/>
    <no_delete/>
    <executable/>
    <name>{DOCKERFILE_PHYS}</name>
    <url>http://h:8080/proj/download/106/{DOCKERFILE_PHYS}</url>
    <md5_cksum>4b78fbc0b599886602bd0029f637bae5</md5_cksum>
    <nbytes>25</nbytes>
</file_info>
"""
FILE_REF = f"""<file_ref>
    <file_name>{DOCKERFILE_PHYS}</file_name>
    <open_name>Dockerfile</open_name>
    <copy_file/>
</file_ref>
"""


def test_file_xml_as_file_xml_elements_writes_it():
    assert buda.file_xml("Dockerfile", DOCKERFILE_PHYS, "4b78fbc0b599886602bd0029f637bae5", 25, URL, 1024) == \
        (FILE_INFO, FILE_REF)
    refused(buda.file_xml, "Dockerfile", DOCKERFILE_PHYS, "4b78", 25, URL)
    refused(buda.file_xml, "Dockerfile", DOCKERFILE_PHYS, "4b78fbc0b599886602bd0029f637bae5", -1, URL)


def _php_json_string(text: str) -> str:
    return text.replace("/", "\\/").replace("\n", "\\n")


VARIANT_ONE = f"""{{
    "dockerfile": "Dockerfile",
    "app_files": [],
    "cpu_type": "intel",
    "plan_class": "",
    "file_infos": "<file_info>\\n    <sticky\\/>\\n    <no_delete\\/>\\n    <executable\\/>\\n    \
<name>{DOCKERFILE_PHYS}<\\/name>\\n    <url>http:\\/\\/h:8080\\/proj\\/download\\/106\\/{DOCKERFILE_PHYS}\
<\\/url>\\n    <md5_cksum>4b78fbc0b599886602bd0029f637bae5<\\/md5_cksum>\\n    \
<nbytes>25<\\/nbytes>\\n<\\/file_info>\\n",
    "file_refs": "<file_ref>\\n    <file_name>{DOCKERFILE_PHYS}<\\/file_name>\\n    <open_name>Dockerfile\
<\\/open_name>\\n    <copy_file\\/>\\n<\\/file_ref>\\n",
    "dockerfile_phys": "{DOCKERFILE_PHYS}",
    "app_files_phys": []
}}"""


def test_variant_json_as_variant_action_writes_it():
    assert buda.variant_json("upper", [buda.VariantFile.of("Dockerfile", DOCKERFILE)], URL, 1024) == VARIANT_ONE
    assert _php_json_string(FILE_INFO) in VARIANT_ONE  # the same XML as file_xml's


def test_variant_json_with_app_files():
    files = [buda.VariantFile.of(n, d) for n, d in (("main.sh", MAIN_SH), ("Dockerfile", DOCKERFILE),
                                                     ("job.toml", JOB_TOML))]
    text = buda.variant_json("upper", files, URL, 1024)
    data = json.loads(text)
    assert list(data) == ["dockerfile", "app_files", "cpu_type", "plan_class", "file_infos", "file_refs",
                          "dockerfile_phys", "app_files_phys"]
    assert data["app_files"] == ["job.toml", "main.sh"]
    assert (data["dockerfile_phys"], data["app_files_phys"]) == (DOCKERFILE_PHYS, [JOB_TOML_PHYS, MAIN_SH_PHYS])
    # The four values the scheduler reads with get<string>() are strings.
    assert all(isinstance(data[k], str) for k in ("file_infos", "file_refs", "cpu_type", "plan_class"))
    assert data["file_infos"].count("<file_info>") == 3 and data["file_infos"].startswith(FILE_INFO)
    assert f"<url>{URL}/28e/{JOB_TOML_PHYS}</url>" in data["file_infos"]
    assert data["file_refs"].endswith("    <open_name>main.sh</open_name>\n    <copy_file/>\n</file_ref>\n")
    assert text.count("\n") == 15 and "\\/" in text and "/" not in text.replace("\\/", "")


def test_variant_json_refuses():
    dockerfile = buda.VariantFile.of("Dockerfile", DOCKERFILE)
    assert "Dockerfile" in refused(buda.variant_json, "upper", [buda.VariantFile.of("main.sh", MAIN_SH)],
                                   URL).advice
    refused(buda.variant_json, "upper", [dockerfile, buda.VariantFile.of("variant.json", b"{}")], URL)
    refused(buda.variant_json, "bad name", [dockerfile], URL)
    many = [dockerfile] + [buda.VariantFile.of(f"f{i:03d}", b"%d" % i) for i in range(100)]
    assert "fewer files" in refused(buda.variant_json, "upper", many, URL).advice


def test_md5_files():
    assert buda.md5_info_text("4b78fbc0b599886602bd0029f637bae5", 25) == "4b78fbc0b599886602bd0029f637bae5 25"
    assert buda.download_md5_text("4b78fbc0b599886602bd0029f637bae5", 25) == \
        "4b78fbc0b599886602bd0029f637bae5 25\n"
    for text in ("4b78fbc0b599886602bd0029f637bae5 25", "4b78fbc0b599886602bd0029f637bae5 25\n"):
        assert buda.parse_md5_text(text) == ("4b78fbc0b599886602bd0029f637bae5", 25)
    for bad in ("", "abc 25", "4b78fbc0b599886602bd0029f637bae5", "4b78fbc0b599886602bd0029f637bae5 x"):
        refused(buda.parse_md5_text, bad)


# -- a URL move --------------------------------------------------------------------------------
def test_url_move_rewrites_only_the_urls():
    moved = buda.variant_json_with_url_base(VARIANT_ONE, "http://h:8080/", "https://new.example.org/x")
    assert moved == VARIANT_ONE.replace("<url>http:\\/\\/h:8080\\/", "<url>https:\\/\\/new.example.org\\/x\\/")
    assert moved.count("new.example.org") == 1
    assert buda.variant_json_with_url_base(moved, "https://new.example.org/x", "http://h:8080") == VARIANT_ONE
    assert buda.variant_json_with_url_base(VARIANT_ONE, "http://other", "http://new") == VARIANT_ONE
    assert buda.variant_json_with_url_base(VARIANT_ONE, URL, URL) == VARIANT_ONE
    # A base that is only a prefix of a host name is not the URL's base.
    assert buda.variant_json_with_url_base(VARIANT_ONE, "http://h:80", "http://z") == VARIANT_ONE


def test_url_move_leaves_other_text_alone():
    data = json.loads(VARIANT_ONE)
    data["file_refs"] = data["file_refs"].replace("Dockerfile", "http://h:8080/Dockerfile")
    data["file_infos"] += "<note>http://h:8080/x</note>\n"
    text = buda.php_json(data)
    moved = json.loads(buda.variant_json_with_url_base(text, "http://h:8080", "http://z"))
    assert moved["file_refs"] == data["file_refs"]
    assert moved["file_infos"] == data["file_infos"].replace("<url>http://h:8080/", "<url>http://z/")
    assert "<note>http://h:8080/x</note>" in moved["file_infos"]


@pytest.mark.parametrize("text", ["{", "[]", '{"file_infos": 3}'])
def test_url_move_refuses_a_broken_variant(text):
    refused(buda.variant_json_with_url_base, text, "http://a", "http://b")


# -- a whole app -------------------------------------------------------------------------------
def test_app_layout():
    desc = upper()
    files = {"main.sh": MAIN_SH, "Dockerfile": DOCKERFILE, "job.toml": JOB_TOML}
    layout = buda.app_layout(desc, files, URL, 1024)
    assert [f.path for f in layout] == [
        "buda_apps/upper/desc.json", "buda_apps/upper/template_in", "buda_apps/upper/template_out",
        "buda_apps/upper/intel_cpu/Dockerfile", "buda_apps/upper/intel_cpu/.md5/Dockerfile",
        "buda_apps/upper/intel_cpu/job.toml", "buda_apps/upper/intel_cpu/.md5/job.toml",
        "buda_apps/upper/intel_cpu/main.sh", "buda_apps/upper/intel_cpu/.md5/main.sh",
        "buda_apps/upper/intel_cpu/variant.json",
        f"download/106/{DOCKERFILE_PHYS}", f"download/106/{DOCKERFILE_PHYS}.md5",
        f"download/28e/{JOB_TOML_PHYS}", f"download/28e/{JOB_TOML_PHYS}.md5",
        f"download/236/{MAIN_SH_PHYS}", f"download/236/{MAIN_SH_PHYS}.md5",
    ]
    by_path = {f.path: f for f in layout}
    assert {f.mode for f in layout} == {0o644}
    assert by_path["buda_apps/upper/desc.json"].data == DESC_JSON.encode()
    assert by_path["buda_apps/upper/template_in"].data.endswith(b"<buda_app_name>upper</buda_app_name>\n"
                                                                b"   </workunit>\n</input_template>\n")
    assert by_path["buda_apps/upper/intel_cpu/.md5/main.sh"].data == b"09d526138cc8752fd61839b6245138d7 32"
    assert by_path[f"download/236/{MAIN_SH_PHYS}"].data == MAIN_SH
    assert by_path[f"download/236/{MAIN_SH_PHYS}.md5"].data == b"09d526138cc8752fd61839b6245138d7 32\n"
    variant = json.loads(by_path["buda_apps/upper/intel_cpu/variant.json"].data)
    assert variant["app_files"] == ["job.toml", "main.sh"]


def test_app_layout_stages_equal_contents_once():
    layout = buda.app_layout(upper(), {"Dockerfile": DOCKERFILE, "copy": DOCKERFILE}, URL, 1024)
    paths = [f.path for f in layout]
    assert paths.count(f"download/106/{DOCKERFILE_PHYS}") == 1 and len(paths) == 10
    assert "buda_apps/upper/intel_cpu/copy" in paths


def test_app_layout_refuses():
    desc = upper()
    assert "Dockerfile" in refused(buda.app_layout, desc, {"main.sh": MAIN_SH}, URL).advice
    assert "rename" in refused(buda.app_layout, desc, {"Dockerfile": DOCKERFILE, "in": b"x"}, URL).advice
    assert "output" in refused(buda.app_layout, desc, {"Dockerfile": DOCKERFILE, "out": b"x"}, URL).message
    refused(buda.app_layout, desc, {"Dockerfile": DOCKERFILE}, URL, cpu_type="mips")
    refused(buda.app_layout, desc, {"Dockerfile": DOCKERFILE}, "not a url")
    refused(buda.app_layout, dataclasses.replace(desc, input_file_names=("in", "in")), {"Dockerfile": DOCKERFILE},
            URL)
