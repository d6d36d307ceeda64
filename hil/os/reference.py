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
    # Measured under TCG on 2 shared cores, from the install to SSH on the new OS: update 21 s,
    # rollback-altboot 49 s (two panicking tries, then the old root), rollback-health 66 s (a 30 s health
    # window, then a reboot). The bounds leave room for a loaded host.
    bounds={
        "boot_to_ssh": 90.0,
        "reboot": 180.0,
        "update_write": 180.0,
        "update_reboot": 180.0,
        "rollback_altboot": 300.0,
        "rollback_health": 300.0,
    },
)
