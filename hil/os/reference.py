"""The reference image hil builds: busybox, dropbear on 22222, chrony, A/B roots (modelled on balenaOS)."""

from __future__ import annotations

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
    bounds={"boot_to_ssh": 90.0, "reboot": 180.0},
)
