"""boinc.tuning: the job array, the feeder's sleep and the FastCGI programs."""

from __future__ import annotations

import pytest

from boincserver.boinc import configxml, tuning
from boincserver.boinc.apps import config_daemon_commands

# As make_project writes it (the feeder's command ends in a space).
CONFIG = """<?xml version="1.0" ?>
<boinc>
    <config>
        <shmem_key>0x111152fc</shmem_key>
        <max_wus_to_send>50</max_wus_to_send>
    </config>
    <daemons>
        <daemon>
            <cmd>feeder -d 3 </cmd>
        </daemon>
        <daemon>
            <cmd>transitioner -d 3 </cmd>
        </daemon>
        <daemon>
            <cmd>sample_trivial_validator --app uppercase</cmd>
            <output>sample_trivial_validator_uppercase.log</output>
        </daemon>
    </daemons>
</boinc>
"""


def test_tuned_config_sizes_the_job_array_and_the_feeders_query():
    text = tuning.tuned_config(CONFIG, 2000)
    assert configxml.get_element(text, "shmem_work_items") == "2000"
    assert configxml.get_element(text, "feeder_query_size") == "4000"
    assert configxml.get_element(text, "max_wus_to_send") == "50"


def test_only_the_feeder_gets_the_sleep_interval():
    commands = config_daemon_commands(tuning.tuned_config(CONFIG))
    assert commands == ["feeder -d 3 --sleep_interval 1", "transitioner -d 3",
                        "sample_trivial_validator --app uppercase"]


def test_tuning_twice_changes_nothing_and_a_new_size_replaces_the_old():
    once = tuning.tuned_config(CONFIG, 500)
    assert tuning.tuned_config(once, 500) == once
    resized = tuning.tuned_config(once, 800)
    assert resized.count("<shmem_work_items>") == 1
    assert configxml.get_element(resized, "shmem_work_items") == "800"
    assert resized.count("--sleep_interval") == 1


def test_a_users_feeder_sleep_is_replaced_not_doubled():
    assert tuning.feeder_command("feeder -d 3 --sleep_interval 5 --priority_order") == \
        "feeder -d 3 --priority_order --sleep_interval 1"
    assert tuning.feeder_command("feeder -sleep_interval 5", 2) == "feeder --sleep_interval 2"


@pytest.mark.parametrize("slots", [99, 10_001, 0, -5, True, 500.0])
def test_work_slots_outside_the_range_are_refused(slots):
    with pytest.raises(tuning.TuningError, match="from 100 to 10000"):
        tuning.tuned_config(CONFIG, slots)


def test_fastcgi_programs_keep_the_cgi_names_clients_use():
    assert tuning.FASTCGI_PROGRAMS == {"cgi": "fcgi", "file_upload_handler": "fcgi_file_upload_handler"}


def test_upload_certificates_on_sets_both_switches_to_zero_and_off_back():
    made = CONFIG.replace("</config>", "    <dont_generate_upload_certificates>1</dont_generate_upload_certificates>\n"
                                       "        <ignore_upload_certificates>1</ignore_upload_certificates>\n    </config>")
    on = tuning.with_upload_certificates(made)
    assert configxml.get_element(on, "dont_generate_upload_certificates") == "0"
    assert configxml.get_element(on, "ignore_upload_certificates") == "0"
    assert on.count("upload_certificates>") == 4
    assert tuning.with_upload_certificates(on, on=False) == made


def test_lost_results_resent_is_one_switch_on_and_back_off():
    on = tuning.with_lost_results_resent(CONFIG)
    assert configxml.get_element(on, "resend_lost_results") == "1"
    assert tuning.with_lost_results_resent(on) == on
    assert configxml.get_element(tuning.with_lost_results_resent(on, on=False), "resend_lost_results") == "0"
