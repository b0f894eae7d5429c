"""Outputs only to the batch's owner, through the real Apache: BOINC's get_output3.php URL and
/PROJECT/boincserver_results answered by our CGI program (images/apache/outputs.conf).

The jobs are rows made here, finished and assimilated as far as the database says, with their
outputs where sample_assimilator puts them; no daemon touches them (transition_time far ahead,
assimilate_state done, nothing to delete)."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.request
import zipfile
from urllib.parse import urlencode

import pytest

from boincserver.container import jobs

from .conftest import Stack, apache_sh, compose, run_cli, sql

RESULT_XML = ("<result><name>{name}_0</name><file_ref><file_name>{name}_0_r1_0</file_name>"
              "<open_name>out</open_name></file_ref></result>")
BATCH_ZEROS = ("logical_start_time logical_end_time est_completion_time fraction_done nerror_jobs completion_time "
               "credit_estimate credit_canonical credit_total app_id project_state expire_time").split()
WU_ZEROS = ("appid rsc_fpops_est rsc_fpops_bound rsc_memory_bound rsc_disk_bound need_validate canonical_credit "
            "delay_bound error_mask file_delete_state hr_class opaque min_quorum target_nresults max_error_results "
            "max_total_results max_success_results priority rsc_bandwidth_bound fileset_id app_version_id "
            "transitioner_flags app_version_num").split()
RESULT_ZEROS = ("client_state hostid userid report_deadline sent_time received_time cpu_time file_delete_state "
                "claimed_credit granted_credit opaque random app_version_num appid exit_status teamid priority "
                "elapsed_time flops_estimate app_version_id runtime_outlier peak_working_set_size peak_swap_size "
                "peak_disk_usage").split()


def zeros(columns: list[str]) -> str:
    return ", ".join(f"{c}=0" for c in columns)


def one(stack: Stack, statement: str) -> str:
    return sql(stack.dir, stack.project, statement).strip()


def make_batch(stack: Stack, user_id: int, name: str, jobs_: list[str]) -> int:
    """A batch of `user_id` whose jobs are done, each output in results/<batch>/."""
    sql(stack.dir, stack.project, f"INSERT INTO batch SET user_id={user_id}, create_time=UNIX_TIMESTAMP(), "
                                  f"njobs={len(jobs_)}, state=2, name='{name}', description='', {zeros(BATCH_ZEROS)}")
    batch = int(one(stack, f"SELECT id FROM batch WHERE name='{name}'"))
    for wu in jobs_:
        sql(stack.dir, stack.project,
            f"INSERT INTO workunit SET create_time=UNIX_TIMESTAMP(), name='{wu}', batch={batch}, "
            f"xml_doc='<workunit/>', result_template_file='templates/none', keywords='', "
            f"transition_time=2147483647, assimilate_state=2, "
            f"canonical_resultid=0, {zeros(WU_ZEROS)}")
        wu_id = int(one(stack, f"SELECT id FROM workunit WHERE name='{wu}'"))
        sql(stack.dir, stack.project,
            f"INSERT INTO result SET create_time=UNIX_TIMESTAMP(), workunitid={wu_id}, server_state=5, outcome=1, "
            f"validate_state=1, name='{wu}_0', batch={batch}, xml_doc_in='{RESULT_XML.format(name=wu)}', "
            f"{zeros(RESULT_ZEROS)}")
        result_id = int(one(stack, f"SELECT id FROM result WHERE name='{wu}_0'"))
        sql(stack.dir, stack.project, f"UPDATE workunit SET canonical_resultid={result_id} WHERE id={wu_id}")
        apache_sh(stack.dir, f'mkdir -p "$PROJECT_ROOT/results/{batch}" && '
                             f'printf "{wu} output\\n" > "$PROJECT_ROOT/results/{batch}/{wu}__file_out"')
    return batch


def result_of(stack: Stack, wu: str) -> int:
    return int(one(stack, f"SELECT id FROM result WHERE name='{wu}_0'"))


def account(stack: Stack, email: str) -> tuple[int, str]:
    made = json.loads(run_cli("user", "add", email, "--submit-all", "--json", cwd=stack.dir).stdout)
    return made["user_id"], made["authenticator"]


@pytest.fixture(scope="module")
def owned(stack: Stack):
    """Alice owns batch A (two jobs), Bob batch B (one)."""
    alice, alice_auth = account(stack, "alice.outputs@example.org")
    bob, bob_auth = account(stack, "bob.outputs@example.org")
    a = make_batch(stack, alice, "outputs_a", ["oa1", "oa2"])
    b = make_batch(stack, bob, "outputs_b", ["ob1"])
    return {"alice": alice_auth, "bob": bob_auth, "a": a, "b": b}


def request(url: str, data: bytes | None = None, cookie: str | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=data, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_get_output3_answers_the_owner_only(stack: Stack, owned):
    base = f"{stack.local}/{stack.project}/get_output3.php"
    query = f"?action=get_file&result_id={result_of(stack, 'oa1')}&index=0"
    assert request(base + query)[::2] == (403, b"log in first: outputs are shown to the account that submitted "
                                               b"the batch\n")
    assert request(base + query, cookie=f"auth={owned['bob']}")[::2] == (
        403, f"result {result_of(stack, 'oa1')}: batch {owned['a']} is not one of this account's batches\n".encode())
    status, headers, body = request(base + query + "&download=1", cookie=f"auth={owned['alice']}")
    assert (status, body) == (200, b"oa1 output\n")
    assert headers["Content-Disposition"] == 'attachment; filename="oa1__file_out"'
    assert request(base + "?action=get_file&result_id=999999&index=0", cookie=f"auth={owned['alice']}")[0] == 404

    status, headers, body = request(base + f"?action=get_batch&batch_id={owned['a']}", cookie=f"auth={owned['alice']}")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.namelist() == ["oa1__file_out", "oa2__file_out"]
        assert zf.read("oa2__file_out") == b"oa2 output\n"
    assert request(base + f"?action=get_batch&batch_id={owned['a']}", cookie=f"auth={owned['bob']}")[0] == 403
    # Nothing left in the project (BOINC's page zipped into results/<batch>/).
    assert apache_sh(stack.dir, f'ls "$PROJECT_ROOT/results/{owned["a"]}"').split() == ["oa1__file_out",
                                                                                       "oa2__file_out"]


def test_boincs_own_page_is_never_reached(stack: Stack, owned):
    base = f"{stack.local}/{stack.project}"
    query = f"?action=get_batch&batch_id={owned['a']}"
    assert request(f"{base}/get_output3.php/x{query}")[::2] == (404, b"no such page\n")
    # MultiViews would turn /PROJECT/get_output3 into BOINC's get_output3.php.
    status, _, body = request(f"{base}/get_output3{query}")
    assert status in (403, 404) and b"PK" not in body[:2]


def test_results_endpoint_answers_what_status_answers(stack: Stack, owned):
    url = f"{stack.local}/{stack.project}/boincserver_results"
    form = lambda **kw: urlencode(kw, doseq=True).encode()  # noqa: E731
    status, headers, body = request(url, form(authenticator=owned["alice"], batch=owned["a"]))
    assert (status, headers["Content-Type"]) == (200, "application/json")
    local = compose(stack.dir, "exec", "-T", "apache", "boincserver-jobs", "status", "--batch", str(owned["a"])).stdout
    assert json.loads(body) == json.loads(local)
    assert [(j["name"], j["state"], j["outputs"]) for j in json.loads(body)["jobs"]] == [
        ("oa1", "done", ["out"]), ("oa2", "done", ["out"])]

    status, headers, body = request(url, form(authenticator=owned["alice"], wu=["oa2"], tar=1))
    assert (status, headers["Content-Type"]) == (200, "application/x-tar")
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    assert list(members) == ["oa2/out", jobs.STATUS_MEMBER] and members["oa2/out"] == b"oa2 output\n"

    assert request(url, form(authenticator=owned["bob"], batch=owned["a"]))[::2] == (
        403, f"batch {owned['a']} is not one of this account's batches\n".encode())
    assert request(url, form(authenticator=owned["bob"], wu=["ob1", "oa1"]))[::2] == (
        403, b"job 'oa1' is not in a batch of this account's\n")
    assert request(url, form(authenticator="0" * 32, batch=owned["a"]))[::2] == (403, b"bad authenticator\n")
    assert request(url, form(batch=owned["a"]))[0] == 403
    assert request(url, form(authenticator=owned["alice"], batch=999999))[0] == 404
    assert request(url)[0] == 405  # GET
    assert request(f"{url}?authenticator={owned['alice']}&batch={owned['a']}", b"")[0] == 400
