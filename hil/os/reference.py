"""The reference image hil builds: busybox, dropbear on 22222, chrony, A/B roots (modelled on balenaOS)."""

from __future__ import annotations

from hil.images import bootenv
from hil.os.base import OsProfile

REFERENCE = OsProfile(
    name="reference",
    login_user="root",
    login_password=None,
    ssh_user="root",
    ssh_port=22222,
    booted_slot_command=". /usr/lib/hil/bootenv.sh && current_slot",
    env_slot_command=". /usr/lib/hil/bootenv.sh && bootenv_load && echo $active",
    mounts={"/": "ro", "/mnt/state": "rw", "/mnt/data": "rw"},
    services={"ssh": "dropbear", "time": "chronyd"},
    update_command="hostapp-update -f {bundle}",
    update_writing_pattern=r"hostapp-update: writing \S+ into root",
    data_dir="/mnt/data",
    config_path="/mnt/boot/config.json",
    boot_env_command=bootenv.READ_COMMAND,
    pending_update_command=". /usr/lib/hil/bootenv.sh && bootenv_load && echo $pending",
    state_dir=bootenv.STATE_DIR,
    rollback_breadcrumbs={
        "altboot": "rollback-altboot-triggered",
        "health": "rollback-health-triggered",
        "health_failed": "rollback-health-failed",
    },
    resolve_command=(
        "out=$(nslookup {name}) && echo \"$out\" | awk '/^Name:/ {{n = 1}} n && /^Address/ {{print $NF}}'"
    ),
    download_command="wget -q -O {dest} {url}",
    dhcp_renew_command="kill -USR1 $(pidof udhcpc)",
    # busybox date has no %N; adjtimex (read-only without options) gives the fraction: microseconds, or
    # nanoseconds once chrony has set the kernel's STA_NANO status bit (8192).
    clock_command=(
        "adjtimex | awk '/status:/ {n = int($2 / 8192) % 2} /tv_sec/ {s = $2} /tv_usec/ {u = $2} "
        'END {printf "%.6f\\n", s + (n ? u / 1e9 : u / 1e6)}\''
    ),
    time_set_pattern=r"hil-time: clock set by",
    time_dependent_pattern=r"hil-time-dependent: started",
    https_time_pattern=r"hil-time: clock set by the HTTPS Date header",
    features=frozenset({"config-dns", "config-ntp", "https-time", "persisted-clock", "time-ordering"}),
    # Measured under TCG on 2 shared cores, from the install to SSH on the new OS: update 21 s,
    # rollback-altboot 49 s (two panicking tries, then the old root), rollback-health 66 s (a 30 s health
    # window, then a reboot). The bounds leave room for a loaded host.
    bounds={
        "boot_to_ssh": 90.0,
        "reboot": 180.0,
        "update_write": 180.0,
        "update_reboot": 180.0,
        "update_commit": 90.0,  # the health check commits within seconds, or rolls back after 30 s
        "rollback_altboot": 300.0,
        "rollback_health": 300.0,
        # Networking and time, measured under TCG (see the suites): lease, renewal, link recovery and
        # HTTPS time take a few seconds, chrony's first sync about 10 s after boot.
        "dhcp_lease": 30.0,
        "dns_answer": 10.0,
        "link_notice": 10.0,
        "link_recovery": 30.0,
        "ntp_sync": 60.0,
        "ntp_offline": 120.0,
        "ntp_resync": 120.0,
        "skew_correction": 180.0,
        "https_time": 60.0,
        # Accuracy, in seconds: chrony against the rig's server; an HTTPS Date header (whole seconds).
        "clock_tolerance": 0.5,
        "holdover_tolerance": 1.0,  # while no source answers
        "https_time_tolerance": 2.0,
    },
)
