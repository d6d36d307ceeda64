"""Any systemd Linux with openssh and chrony: SSH on 22 as root, the network and clock as the OS sets them.

Such an OS reads no config.json, so the suites cannot point its resolver or chrony at the rig's servers
through it; the tests that need that are skipped, naming the missing feature.
"""

from __future__ import annotations

from hil.os.base import OsProfile

GENERIC = OsProfile(
    name="generic",
    login_user="root",
    login_password=None,
    ssh_user="root",
    ssh_port=22,
    mounts={"/": "rw"},
    services={"ssh": "sshd", "time": "chronyd"},
    wired_interface="",  # predictable names differ by machine: the suites take the default route's device
    resolve_command="out=$(getent ahostsv4 {name}) && echo \"$out\" | awk '{{print $1}}' | sort -u",
    download_command="curl -fsS -o {dest} {url}",
    dhcp_renew_command="networkctl renew {interface}",
    boot_log_command="journalctl -b -o short-monotonic --no-pager",
    # systemd and a distribution kernel boot slower than the reference image; bounds are generous.
    bounds={
        "boot_to_ssh": 300.0,
        "reboot": 300.0,
        "dhcp_lease": 60.0,
        "dns_answer": 10.0,
        "link_notice": 10.0,
        "link_recovery": 60.0,
        "ntp_sync": 120.0,
        "ntp_offline": 600.0,
        "ntp_resync": 300.0,
        "skew_correction": 1200.0,
        "https_time": 60.0,
        "clock_tolerance": 0.5,
        "holdover_tolerance": 1.0,
        "https_time_tolerance": 2.0,
    },
)
