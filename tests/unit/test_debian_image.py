"""The plain Debian 12 image: what decides its cache entry, how its build fails, and (on QEMU) that the key
variant's root password is really locked while its baked-in key is admitted. The password and no-sshd
variants are proven through the suites themselves in tests/e2e/test_generic.py."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from hil.commands.main import main
from hil.console.engine import Console
from hil.console.ssh import HostKeyPin, SshLink
from hil.drivers.qemu.board import QemuBoard
from hil.drivers.qemu.machine import Machine
from hil.errors import HilError, ImageError, ToolMissing
from hil.images.builders import debian
from hil.images.builders.buildlog import BuildLog
from hil.images.builders.debian import (
    DEFAULT_ROOT_PASSWORD,
    DebianImage,
    Recipe,
    build_debian,
    configure,
    recipe,
)
from hil.images.builders.debs import Package
from hil.util.workdir import make_workdir
from tests.support.e2e import boards_root, leftover_disks, qemu_pids

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvWyJ7s8rW2cJbVpfs2Y4B9Vq3nX6w5RZ0m6b8h3Q5x test@host"
PACKAGES = (Package("openssh-server", "1:9.2p1-2+deb12u10"), Package("chrony", "4.3-2+deb12u3"))
BOOT_TIMEOUT = 300.0  # TCG on a shared 2-core agent: measured 32-45 s, with room for a busy host


def _key(variant: str = "password", *, password: str | None = "hil-debian", key: str | None = None) -> str:
    return Recipe(variant, PACKAGES, password, key).cache_key()


def test_cache_key_is_stable_for_the_same_recipe() -> None:
    assert _key() == _key()


def test_cache_key_changes_with_variant_password_key_and_package_versions() -> None:
    keys = {
        _key(),
        _key("no-sshd"),
        _key(password="another"),
        _key("key", password=None),
        _key("key", password=None, key=PUBLIC_KEY),
        Recipe("password", (PACKAGES[0], Package("chrony", "4.3-2+deb12u4")), "hil-debian", None).cache_key(),
    }
    assert len(keys) == 6


def test_the_password_comes_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(debian.ROOT_PASSWORD_ENV, raising=False)
    assert recipe("password").root_password == DEFAULT_ROOT_PASSWORD
    monkeypatch.setenv(debian.ROOT_PASSWORD_ENV, "from-env")
    assert recipe("no-sshd").root_password == "from-env"
    assert recipe("password", root_password="given").root_password == "given"
    assert recipe("key").root_password is None  # locked, whatever the environment says


def test_only_the_no_sshd_variant_leaves_openssh_server_out() -> None:
    assert "openssh-server" in recipe("password").include
    assert "openssh-server" in recipe("key").include
    assert "openssh-server" not in recipe("no-sshd").include


@pytest.mark.parametrize(
    ("variant", "arguments", "message"),
    [
        ("plain", {}, "unknown Debian image variant 'plain'; choose one of password, key, no-sshd"),
        ("key", {"root_password": "x"}, "the key variant locks root's password"),
        ("password", {"authorized_key": Path("/any.pub")}, "the password variant bakes in no SSH key"),
    ],
)
def test_arguments_a_variant_cannot_honour_are_refused(variant: str, arguments: dict, message: str) -> None:
    with pytest.raises(ImageError, match=re.escape(message)):
        recipe(variant, **arguments)


def test_a_private_key_passed_as_the_authorized_key_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "id_ed25519"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    with pytest.raises(ImageError, match=r"is not one OpenSSH public key line .* pass the \.pub file"):
        recipe("key", authorized_key=private)
    public = tmp_path / "id_ed25519.pub"
    public.write_text(PUBLIC_KEY + "\n")
    assert recipe("key", authorized_key=public).authorized_key == PUBLIC_KEY


def test_the_root_tree_gets_hostname_stub_resolver_empty_machine_id_and_a_strict_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for directory in ("etc", "root/.ssh"):  # Debian leaves /root/.ssh empty, mode 700
        (root / directory).mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc" / "resolv.conf").write_text("nameserver 192.0.2.1\n")  # the build host's, say
    configure(root, PUBLIC_KEY)
    assert (root / "etc" / "hostname").read_text() == "debian\n"
    assert (root / "etc" / "machine-id").read_text() == ""
    assert os.readlink(root / "etc" / "resolv.conf") == "../run/systemd/resolve/stub-resolv.conf"
    assert "Name=en* eth*" in (root / "etc" / "systemd" / "network" / "20-wired.network").read_text()
    ssh = root / "root" / ".ssh"
    assert ssh.stat().st_mode & 0o777 == 0o700
    assert (ssh / "authorized_keys").stat().st_mode & 0o777 == 0o600
    assert (ssh / "authorized_keys").read_text() == PUBLIC_KEY + "\n"


def test_the_cli_refuses_a_password_for_the_key_variant_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["image", "build-debian", "--variant", "key", "--root-password", "secret"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == (
        "hil: ImageError: the key variant locks root's password; --root-password has no meaning there"
    )


def test_a_failing_build_step_is_one_line_naming_the_log_that_keeps_the_details(tmp_path: Path) -> None:
    echoed: list[str] = []
    script = (
        "echo 'I: running apt-get update...'; echo 'E: Unable to locate package nope'; echo 'E: more'; exit 1"
    )
    log = tmp_path / "build.log"
    with (
        BuildLog(log, echoed.append) as blog,
        pytest.raises(ImageError) as raised,
        blog.failures_named("building the image"),
    ):
        blog.run(["sh", "-c", script], env=dict(os.environ), name="mmdebstrap")
    assert str(raised.value) == (
        f"building the image failed: mmdebstrap failed: Unable to locate package nope; build log: {log}"
    )
    assert echoed == ["mmdebstrap: running apt-get update..."]
    assert "mmdebstrap: E: more" in log.read_text()


def test_a_host_without_mmdebstrap_is_told_which_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(debian, "resolve", lambda names: list(PACKAGES))  # no apt needed to get there
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it; /usr/sbin and /sbin hold no mmdebstrap
    with pytest.raises(
        ToolMissing, match=r"needs `mmdebstrap`: install it with `apt-get install mmdebstrap`"
    ):
        build_debian(cache=tmp_path / "cache", log=lambda line: None)
    assert not list((tmp_path / "cache" / "images").iterdir())  # no half-built entry left behind


# --- end to end: build each variant, boot it through OVMF and its own GRUB on hil's QEMU board ----------


Booted = tuple[QemuBoard, Console]


@contextlib.contextmanager
def _booted(image: DebianImage, tmp_path: Path, record: Callable[[str, object], None]) -> Iterator[Booted]:
    """The image on a 1 GiB QEMU board, its console at the login prompt; the board is gone afterwards."""
    board = QemuBoard(
        "debian", Machine(memory=1024), make_workdir("debian", boards_root(tmp_path)), tmp_path / "art", 22
    )
    console: Console | None = None
    try:
        board.flash(image.disk, {})  # a plain Debian image ignores the config.json QEMU offers it
        start = time.monotonic()
        board.power_on(start + 60)
        console = Console(
            board.console_transport(30), tmp_path / "art" / "console.log", name="debian console",
            closed_reason=board.exit_reason,
        )  # fmt: skip
        console.expect(r"^debian login:", BOOT_TIMEOUT)  # the hostname the image sets
        record("boot_to_login_seconds", round(time.monotonic() - start, 1))
        yield board, console
    finally:
        if console is not None:
            console.close()
        board.close()


def _assert_no_board_left(tmp_path: Path) -> None:
    assert qemu_pids(tmp_path) == []
    assert leftover_disks(tmp_path) == []


@pytest.mark.qemu
@pytest.mark.slow
def test_key_variant_refuses_the_console_and_admits_the_generated_key_over_ssh(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    image = build_debian("key", log=lambda line: None)
    assert image.private_key is not None
    assert image.private_key.stat().st_mode & 0o777 == 0o600
    key = paramiko.Ed25519Key.from_private_key_file(str(image.private_key))
    with _booted(image, tmp_path, record_property) as (board, console):
        with pytest.raises(HilError, match="refused"):
            console.login("root", DEFAULT_ROOT_PASSWORD, timeout=90)
        link = SshLink(board.ssh_host, board.ssh_port, "root", key, HostKeyPin())
        try:
            link.connect(time.monotonic() + 120)
            assert link.run("systemctl is-active ssh", timeout=30).output.strip() == "active"
            assert link.run("passwd --status root", timeout=30).output.split()[:2] == ["root", "L"]
        finally:
            link.close()
    _assert_no_board_left(tmp_path)
