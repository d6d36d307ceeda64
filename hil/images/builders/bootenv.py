"""The A/B boot environment: a GRUB environment block on the boot partition, read by GRUB at every boot.

GRUB picks the root slot from it and loads that slot's kernel and initramfs, so a slot's kernel travels
with its root filesystem. It counts the tries of a pending update itself (`save_env`), before any kernel
runs, so an update whose kernel panics is rolled back like one whose root does not boot.

Format: GRUB's: the line `# GRUB Environment Block`, one `key=value` a line, `#` padding to 1024 bytes,
in `/mnt/boot/bootenv` on the running DUT: `active=A|B` (the slot that boots when nothing is pending),
`pending=0|1` (an update waits in the other slot), `count=N` (boots of the pending update so far),
`limit=N` (tries before GRUB rolls back, at most 9). The DUT-side shell library
`/usr/lib/hil/bootenv.sh` reads and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

PATH = "/mnt/boot/bootenv"
SIZE = 1024  # GRUB's save_env rewrites the block in place: its size never changes
HEADER = "# GRUB Environment Block\n"
STATE_DIR = "/mnt/state"
BREADCRUMBS = ("rollback-altboot-triggered", "rollback-health-triggered", "rollback-health-failed")

# Shell commands for the OS profile, run on the DUT as root.
READ_COMMAND = f"cat {PATH}"
CURRENT_SLOT_COMMAND = ". /usr/lib/hil/bootenv.sh && current_slot"
BREADCRUMBS_COMMAND = f"cd {STATE_DIR} && ls -1 {' '.join(BREADCRUMBS)} 2>/dev/null; true"


@dataclass(frozen=True)
class BootEnv:
    """Which root slot boots, and the state of a pending update."""

    active: str = "A"
    pending: bool = False
    count: int = 0
    limit: int = 2

    @property
    def trial_slot(self) -> str | None:
        """The slot the next boot tries when an update is pending, else None."""
        if not self.pending:
            return None
        return "B" if self.active == "A" else "A"

    def render(self) -> str:
        """The file's text: a GRUB environment block."""
        values = (
            f"active={self.active}\npending={int(self.pending)}\ncount={self.count}\nlimit={self.limit}\n"
        )
        body = HEADER + values
        return body + "#" * (SIZE - len(body))


def parse(text: str) -> BootEnv:
    """Read the file's text; unknown keys are ignored and missing ones take the defaults, as on the DUT."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    default = BootEnv()
    return BootEnv(
        active=values.get("active", default.active),
        pending=values.get("pending", "0") == "1",
        count=int(values.get("count", default.count)),
        limit=int(values.get("limit", default.limit)),
    )
