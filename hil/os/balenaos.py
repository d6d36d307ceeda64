"""balenaOS development images: root on the console, SSH on 22222, A/B roots under /mnt/sysroot.

Written from balenaOS' and meta-balena's documented behaviour; hil has no balenaOS board to check it on.
"""

from __future__ import annotations

from hil.os.base import OsProfile

# The partition the running root was mounted from (resin-rootA or resin-rootB), as meta-balena's own
# update tests read it.
_ACTIVE_ROOT = "findmnt --noheadings --canonicalize --output SOURCE /mnt/sysroot/active"

BALENAOS = OsProfile(
    name="balenaos",
    login_user="root",
    login_password=None,
    ssh_user="root",
    ssh_port=22222,
    booted_slot_command=_ACTIVE_ROOT,
    mounts={"/": "ro", "/mnt/state": "rw", "/mnt/data": "rw"},
    services={"ssh": "sshd", "time": "chronyd"},
    update_command="hostapp-update -f {bundle}",
    data_dir="/mnt/data",
    config_path="/mnt/boot/config.json",
    # U-Boot boards choose the root in resinOS_uEnv.txt, GRUB boards in grubenv.
    boot_env_command=(
        "cat /mnt/boot/resinOS_uEnv.txt /mnt/boot/grubenv /mnt/boot/EFI/BOOT/grubenv 2>/dev/null; true"
    ),
    # hostapp-update's rollback hook leaves these until the new OS is committed healthy.
    pending_update_command=(
        "if [ -e /mnt/state/rollback-health-breadcrumb ] || [ -e /mnt/state/rollback-altboot-breadcrumb ]; "
        "then echo 1; else echo 0; fi"
    ),
    state_dir="/mnt/state",
    rollback_breadcrumbs={
        "altboot": "rollback-altboot-triggered",
        "health": "rollback-health-triggered",
        "health_failed": "rollback-health-failed",
    },
    # A host OS update pulls and writes a container image, and rollback-health waits for the supervisor
    # and engine before it judges: minutes, not seconds.
    bounds={
        "boot_to_ssh": 300.0,
        "reboot": 300.0,
        "update_write": 1200.0,
        "update_reboot": 600.0,
        "update_commit": 1800.0,
        "rollback_altboot": 900.0,
        "rollback_health": 1800.0,
    },
)
