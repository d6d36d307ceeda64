"""The OS profile: what differs between operating systems under test, as grouped, typed facts.

A profile is data (a YAML file, see hil.os.loader). Suites ask the profile, never hard-code an OS:
login and credentials, SSH, how boot finishes, services, where things live, networking and time,
host OS updates, the features the OS has, and the bounds its waits may take.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    model_validator,
)

from hil.errors import CredentialsError
from hil.os.shell import Command, Regex, template
from hil.os.vocabulary import (
    FEATURES,
    OS_FEATURES,
    DeclaredFeature,
    OsFeature,
    RefusedRole,
    RollbackKind,
)

# Where a credential is missing, a profile can still be shown; this is what stands for a secret.
MASK = "********"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Login(_Group):
    """The console login."""

    user: str = "root"
    password: SecretStr | None = Field(None, description="the password (prefer password_env)")
    password_env: str | None = Field(None, description="environment variable that holds the password")

    @model_validator(mode="after")
    def _one_password_source(self) -> Login:
        if self.password is not None and self.password_env:
            raise ValueError("give password or password_env, not both")
        return self

    def secret(self, profile: str) -> str | None:
        """The password (None: the user has none); a password_env that is not set is an error."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise CredentialsError(
                    f"OS profile {profile!r}: login.password_env names {self.password_env}, "
                    "which is not set in the environment"
                )
            return value
        return self.password.get_secret_value() if self.password is not None else None


class Ssh(_Group):
    """SSH to the DUT: where, as whom, and how hil's key gets there."""

    user: str = "root"
    port: PositiveInt = 22
    key_file: Path | None = Field(None, description="an existing private key the DUT accepts")
    # How hil's per-run public key reaches the DUT when no key_file is given: in config.json
    # (os.sshKeys, read at boot), or appended to authorized_keys after a console login.
    key_injection: Literal["config", "console"] = "console"
    server: str = Field("sshd", description="the SSH server's service, named in the diagnosis when SSH fails")


class Boot(_Group):
    """How the DUT boots, reboots and says where it booted from."""

    login_prompt: Regex = r"login:\s*$"
    wake_console: bool = Field(
        True, description="type Enter to provoke a prompt (off where a key stops boot)"
    )
    ready_command: Command | None = Field(None, description="returns once boot has finished")
    log_command: Command = "dmesg"
    reboot_command: Command = "reboot"
    # What the console shows once a reboot is really under way (the kernel prints it at emergency level),
    # so a login is never taken from the shell that is about to go down.
    restart_pattern: Regex = r"reboot: Restarting system"
    # Prints an id the kernel draws anew at every boot: a reboot shows over SSH even where the console
    # stays silent (balenaOS boots `console=null quiet`) and the board cannot count its boots.
    boot_id_command: Command = "cat /proc/sys/kernel/random/boot_id"
    # Where the bootloader, kernel and init phases begin on the console (hil.dut.boot_phases); the login
    # phase begins when the console offers a login. GRUB's greeting or U-Boot's banner, the kernel's banner,
    # and the kernel handing over to user space are printed by every image hil knows, on amd64 and arm64.
    phase_markers: dict[Literal["bootloader", "kernel", "init"], Regex] = {
        "bootloader": r"Welcome to GRUB|^U-Boot \d{4}\.\d\d",
        "kernel": r"Linux version \d",
        "init": r"Run /\S+ as init process",
    }
    root_command: Command = Field(description="prints what the root filesystem was mounted from")


class Identity(_Group):
    """How to read which image the DUT runs."""

    version_command: Command | None = None
    slug_command: Command | None = Field(None, description="prints the device type the OS is built for")
    root_partuuid_command: Command | None = Field(None, description="prints the root's PARTUUID")
    hostname_command: Command = "hostname"


class Services(_Group):
    """The OS's services: how to check one runs, which fail, and which run each role."""

    check: template("name") = Field(description="exits 0 when the service {{name}} runs")  # type: ignore[valid-type]
    failed_command: Command | None = Field(None, description="lists failed services, one a line")
    roles: dict[Literal["ssh", "time"], str] = Field(description="role -> the service that fills it")


class ImagePartition(_Group):
    """One partition of the OS's disk image, as its image is laid out."""

    number: PositiveInt = Field(description="its number in the partition table (1 is the first)")
    holds: Literal["boot", "slot", "state", "data"] = Field(
        description="boot: the bootloader and config.json; slot: a root the updater writes; state, data"
    )
    mount: str | None = Field(None, description="where the running OS mounts it (a slot: when booted)")


class Layout(_Group):
    """Where things live: on a healthy DUT, and in the OS's disk image."""

    mounts: dict[str, Literal["ro", "rw"]] = Field(default_factory=dict)
    config_path: str | None = Field(None, description="config.json as the DUT sees it")
    partitions: dict[str, ImagePartition] = Field(
        default_factory=dict, description="the image's partitions by name (rootA, rootB, boot, data, ...)"
    )

    @model_validator(mode="after")
    def _one_boot_partition(self) -> Layout:
        numbers = [p.number for p in self.partitions.values()]
        if len(set(numbers)) != len(numbers):
            raise ValueError("two partitions share a number")
        if sum(p.holds == "boot" for p in self.partitions.values()) > 1:
            raise ValueError("more than one partition holds boot")
        return self

    def boot_partition(self) -> ImagePartition | None:
        """The partition holding the bootloader and config.json, when the layout names one."""
        return next((p for p in self.partitions.values() if p.holds == "boot"), None)

    def config_on_boot_partition(self) -> str | None:
        """Where config.json lies inside the boot partition (from config_path and its mount), or None."""
        boot = self.boot_partition()
        if self.config_path is None or boot is None or boot.mount is None:
            return None
        mount = boot.mount.rstrip("/") + "/"
        if not self.config_path.startswith(mount):
            return None
        return "/" + self.config_path[len(mount) :]


class RigServer(_Group):
    """How the OS is pointed at a rig-side server: config.json at flash time, or commands over SSH."""

    via: Literal["config", "command"]
    # via config: the config.json value that names the server (e.g. balenaOS' dnsmasq wants `IP#port`).
    # {{domain}}: the domain the rig's DNS server answers for (hil.test), to route only it there.
    config_value: template("address", "host", "port", "domain") = "{{address}}"  # type: ignore[valid-type]
    apply: template("address", "host", "port", "domain") | None = None  # type: ignore[valid-type]
    revert: template("address", "host", "port", "domain") | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _commands_when_by_command(self) -> RigServer:
        if self.via == "command" and not (self.apply and self.revert):
            raise ValueError("via: command needs `apply` and `revert`")
        if self.via == "config" and (self.apply or self.revert):
            raise ValueError("via: config takes no `apply` or `revert`")
        return self


class Network(_Group):
    """Networking as the suites ask the DUT about it."""

    wired_interface: str | None = Field(None, description="None: the default route's interface")
    resolve: template("name") = Field(description="the IPv4 addresses {{name}} resolves to, one a line")  # type: ignore[valid-type]
    download: template("url", "dest") = Field(description="fetch {{url}} into {{dest}}")  # type: ignore[valid-type]
    dhcp_renew: template("interface") | None = None  # type: ignore[valid-type]
    rig_dns: RigServer | None = None


class Time(_Group):
    """The clock and how the time-sync suite reads it."""

    clock_command: Command = "date +%s.%N"
    set_command: template("epoch") = Field(  # type: ignore[valid-type]
        "date -u -s @{{epoch}} >/dev/null", description="sets the clock to {{epoch}} (a snapshot restore)"
    )
    chronyc: Command = "chronyc"
    rig_ntp: RigServer | None = None
    set_pattern: Regex | None = Field(None, description="boot-log line: the clock has been set")
    dependent_pattern: Regex | None = Field(None, description="boot-log line: a time-dependent service")
    https_pattern: Regex | None = Field(None, description="boot-log line: clock set from HTTPS")


class UpdateBounds(_Group):
    """Seconds the waits of a host OS update may take."""

    write: PositiveFloat
    reboot: PositiveFloat
    commit: PositiveFloat
    rollback_altboot: PositiveFloat
    rollback_health: PositiveFloat


def _inside(path: str) -> str:
    if path.startswith("/") or ".." in path.split("/") or not path.strip():
        raise ValueError("a path inside the unpacked bundle: relative, without `..`")
    return path


class Repack(_Group):
    """How `hil faults` rebuilds one of this updater's bundles with a changed root. The commands run on
    the host, not the DUT, in an empty working directory, with what they work on in the environment:
    HIL_BUNDLE (the bundle), HIL_CONTENT (the directory to unpack into and pack from), HIL_OUT (the
    bundle to write) and HIL_IMAGE_DIR (the image's directory, where hil keeps its own images' keys).
    The pack command signs the bundle as the release process would."""

    unpack: Command
    rootfs: Annotated[str, AfterValidator(_inside)] = Field(
        description="the root file system image (ext2/3/4) in HIL_CONTENT, e.g. rootfs.ext4"
    )
    pack: Command


class Update(_Group):
    """Host OS updates into the other root partition, with rollbacks."""

    command: template("bundle") = Field(description="installs the bundle at {{bundle}}")  # type: ignore[valid-type]
    writing_pattern: Regex | None = Field(None, description="update output: the write has begun")
    data_dir: str = Field(description="on the data partition: what an update keeps; bundles go here")
    state_dir: str | None = Field(None, description="where the rollback breadcrumbs are")
    slot_command: Command = Field(description="prints the root slot the boot environment names")
    boot_env_command: Command
    pending_command: Command = Field(description="prints 1 while an update awaits its trial or commit")
    rollback_breadcrumbs: dict[RollbackKind, str] = Field(
        default_factory=dict, description="marker files in state_dir that a rollback of each kind leaves"
    )
    rollback_checks: dict[RollbackKind, Command] = Field(
        default_factory=dict,
        description="commands that exit 0 when that rollback happened (the updater's status)",
    )
    refusals: dict[RefusedRole, Regex] = Field(
        default_factory=dict,
        description="what the update command says when it refuses each kind of bad bundle",
    )
    bounds: UpdateBounds
    repack: Literal["hil"] | Repack | None = Field(
        None,
        description="how hil faults rebuilds a bundle with a changed root: `hil` (hil's own format) or "
        "commands; null: faults in the update itself do not apply",
    )

    @model_validator(mode="after")
    def _rollbacks_show(self) -> Update:
        for kind in ("altboot", "health"):
            if kind not in self.rollback_breadcrumbs and kind not in self.rollback_checks:
                raise ValueError(f"say how a {kind} rollback shows: rollback_breadcrumbs or rollback_checks")
        if self.rollback_breadcrumbs and self.state_dir is None:
            raise ValueError("rollback_breadcrumbs need the state_dir that holds them")
        return self


class Bounds(_Group):
    """Seconds the suites' waits may take on this OS (and accuracies, in seconds)."""

    boot_to_ssh: PositiveFloat
    reboot: PositiveFloat
    dhcp_lease: PositiveFloat
    dns_answer: PositiveFloat
    link_notice: PositiveFloat
    link_recovery: PositiveFloat
    ntp_sync: PositiveFloat
    ntp_offline: PositiveFloat
    ntp_resync: PositiveFloat
    skew_correction: PositiveFloat
    https_time: PositiveFloat
    clock_tolerance: PositiveFloat
    holdover_tolerance: PositiveFloat
    https_time_tolerance: PositiveFloat


class OsProfile(_Group):
    """Facts and shell snippets about one OS."""

    name: str
    description: str = ""
    device_type: str | None = Field(None, description="the device type of this OS's images that name none")
    config_json: dict[str, Any] = Field(default_factory=dict, description="config.json every flash gets")
    login: Login | None = Field(description="null: hil has no console login on this OS")
    ssh: Ssh
    boot: Boot
    identity: Identity
    services: Services
    layout: Layout
    network: Network
    time: Time
    update: Update | None = Field(description="null: the OS has no A/B host OS updates")
    features: frozenset[DeclaredFeature] = frozenset()
    bounds: Bounds
    lineage: tuple[str, ...] = Field(
        (), description="set by the loader: this profile's name, then the profiles it extends"
    )

    def has(self, feature: OsFeature) -> bool:
        """Whether the OS has `feature` (declared, or following from what the profile states)."""
        if feature not in FEATURES:
            raise KeyError(f"unknown OS feature {feature!r}; known: {', '.join(sorted(FEATURES))}")
        derived: dict[OsFeature, bool] = {
            "console-login": self.login is not None,
            "ab-update": self.update is not None,
            "rig-dns": self.network.rig_dns is not None,
            "rig-ntp": self.time.rig_ntp is not None,
            "dhcp-renew": self.network.dhcp_renew is not None,
            "failed-units": self.services.failed_command is not None,
            "ready-check": self.boot.ready_command is not None,
            "bundle-signatures": self.update is not None and "other-key" in self.update.refusals,
            "image-identity": any(
                (
                    self.identity.slug_command,
                    self.identity.version_command,
                    self.identity.root_partuuid_command,
                )
            ),
        }
        return derived.get(feature, feature in self.features)

    def lacks(self, feature: OsFeature) -> str | None:
        """Why a test needing `feature` does not apply to this OS, or None when it does."""
        if self.has(feature):
            return None
        return f"OS profile {self.name!r} does not {FEATURES[feature]}"

    @property
    def feature_set(self) -> frozenset[OsFeature]:
        """Every feature the OS has."""
        return frozenset(f for f in OS_FEATURES if self.has(f))

    def way_in(self) -> str | None:
        """Why hil could not reach a shell on this OS with what the profile gives, or None."""
        if self.login is None and self.ssh.key_file is None and self.ssh.key_injection == "console":
            return (
                f"OS profile {self.name!r} gives hil no way in: give a console login (login.password or "
                "login.password_env) so hil can add its SSH key, or an SSH key the image accepts "
                "(ssh.key_file)"
            )
        return None

    def config(
        self, *, hostname: str, ssh_public_key: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The config.json for a flash (balenaOS' format; an OS that reads none ignores it)."""
        config: dict[str, Any] = {**self.config_json, "hostname": hostname}
        if self.ssh.key_injection == "config" and self.ssh.key_file is None:
            config["os"] = {"sshKeys": [ssh_public_key]}
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config
