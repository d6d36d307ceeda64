"""The DUT state machine on a fake board, in seconds: fail fast after a failed boot, recovery by reflash,
console logins with credentials that never reach the transcript, a wrong password named in one line,
an OS without a console login, SSH failures that leave the console usable, and capabilities."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.capabilities import LinkControl
from hil.dut.dut import Dut, State
from hil.errors import BootTimeout, DutBroken, HilError, LoginRefused, SshError, Unsupported
from hil.lab.rig import load_rig
from tests.support.disk_images import make_disk
from tests.support.fakes.board import FakeBoard

SECRET = "pa55-w0rd-never-logged"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    manifest = json.dumps({"slug": "qemux86-64", "version": "1.0.0"}).encode()
    return make_disk(tmp_path / "os.img", boot_files={"device-type.json": manifest})


def _dut(tmp_path: Path, os_section: str, board: FakeBoard, boot: float = 20) -> Dut:
    rig_file = tmp_path / "fake.yaml"
    rig_file.write_text(
        f"kind: qemu\ndevice_type: qemux86-64\n{os_section}\n"
        f"timeouts:\n  boot: {boot}\n  ssh: 1\n  command: 10\n  shutdown: 1\n"
    )
    return Dut(load_rig(rig_file), board, tmp_path / "art")


def _logged_in(tmp_path: Path, image: Path, board: FakeBoard, monkeypatch: pytest.MonkeyPatch) -> Dut:
    """A generic-profile DUT whose console password comes from the environment, booted to its shell."""
    monkeypatch.setenv("FAKE_PW", SECRET)
    dut = _dut(tmp_path, "os: generic\ncredentials:\n  password_env: FAKE_PW", board)
    dut.flash(image, device_type="qemux86-64")
    dut.transition(State.BOOTED)
    return dut


@pytest.fixture
def board(tmp_path: Path) -> Iterator[FakeBoard]:
    fake = FakeBoard(tmp_path / "board", password=SECRET)
    yield fake
    fake.close()


def test_a_failed_boot_breaks_the_dut_and_later_tests_fail_fast(tmp_path: Path, image: Path) -> None:
    board = FakeBoard(tmp_path / "board", boots=False)
    dut = _dut(tmp_path, "os: reference", board)
    dut.flash(image)
    with pytest.raises(HilError, match="does not boot"):
        dut.boot()
    start = time.monotonic()
    with pytest.raises(
        DutBroken, match="broken since an earlier failure: HilError: the fake board does not boot"
    ):
        dut.boot()
    assert board.power_ons == 1 and time.monotonic() - start < 5  # no second attempt, no timeout waited out
    dut.flash(image)  # an image that never booted: a reflash does not pretend to mend the DUT
    with pytest.raises(DutBroken):
        dut.transition(State.BOOTED)


def test_a_reflash_recovers_a_dut_that_broke_after_its_image_had_booted(
    tmp_path: Path, image: Path, board: FakeBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    dut = _logged_in(tmp_path, image, board, monkeypatch)
    board.boots = False
    with pytest.raises(HilError):
        dut.power_cycle(0)
    with pytest.raises(DutBroken):
        dut.transition(State.BOOTED)
    board.boots = True
    dut.flash(image, device_type="qemux86-64")
    dut.transition(State.BOOTED)
    assert dut.console_run("echo back").output.strip() == "back"


def test_a_password_from_the_environment_logs_in_and_never_reaches_the_transcript(
    tmp_path: Path, image: Path, board: FakeBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    dut = _logged_in(tmp_path, image, board, monkeypatch)
    assert dut.console_run("echo in").output.strip() == "in"
    dut.close()
    assert SECRET not in dut.transcript.read_text(errors="replace")


def test_a_wrong_password_is_one_line_naming_the_user_and_the_rig(
    tmp_path: Path, image: Path, board: FakeBoard
) -> None:
    dut = _dut(tmp_path, "os: generic\ncredentials:\n  password: not-it", board)
    dut.flash(image, device_type="qemux86-64")
    with pytest.raises(LoginRefused) as refused:
        dut.transition(State.BOOTED)
    first = str(refused.value).splitlines()[0]
    assert "console of fake refused the login as 'root'" in first and "check login.password" in first
    assert "not-it" not in str(refused.value)


def test_an_image_that_names_no_device_type_is_not_flashed_unless_stated(
    tmp_path: Path, board: FakeBoard
) -> None:
    plain = make_disk(tmp_path / "plain.img", boot_files={"EFI.txt": b"x"})
    dut = _dut(tmp_path, "os: reference", board)
    with pytest.raises(HilError, match="does not say which device type"):
        dut.flash(plain)
    assert board.flashed == []
    dut.flash(plain, device_type="qemux86-64")
    assert dut.device_type_source == "asserted"


def test_an_os_without_a_console_login_boots_to_its_prompt_and_skips_console_commands(
    tmp_path: Path, image: Path, board: FakeBoard
) -> None:
    key = tmp_path / "id_ed25519"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ))  # fmt: skip
    dut = _dut(tmp_path, f"os: generic\ncredentials:\n  key_file: {key}", board)
    dut.flash(image, device_type="qemux86-64")
    dut.transition(State.BOOTED)
    assert not dut.logged_in
    with pytest.raises(Unsupported, match="does not offer hil a console login") as missing:
        dut.console_run("true")
    assert missing.value.feature == "console-login"
    assert board.console is not None and SECRET.encode() not in board.console.sent


def test_a_failed_ssh_leaves_the_console_usable_and_fails_later_ssh_fast(
    tmp_path: Path, image: Path, board: FakeBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PW", SECRET)
    profile = (
        "os:\n  extends: generic\n  ssh:\n    key_injection: config\ncredentials:\n  password_env: FAKE_PW"
    )
    dut = _dut(tmp_path, profile, board)
    dut.flash(image, device_type="qemux86-64")
    with pytest.raises(SshError) as failed:
        dut.boot()
    # The console says why: the fake board runs no sshd, and `systemctl is-active` fails there too.
    assert "no SSH server: 'sshd' is not running on the DUT" in str(failed.value)
    assert dut.console_run("echo still-here").output.strip() == "still-here"
    with pytest.raises(DutBroken, match="no SSH on fake since an earlier failure"):
        dut.boot()


def test_a_capability_the_board_lacks_is_unsupported_naming_it(tmp_path: Path, board: FakeBoard) -> None:
    dut = _dut(tmp_path, "os: reference", board)
    assert dut.capability(LinkControl) is None
    with pytest.raises(Unsupported, match=r"rig fake \(qemu\) has no link-control") as missing:
        dut.require(LinkControl)
    assert missing.value.capability == "link-control"
    with pytest.raises(Unsupported, match="does not have A/B root partitions") as lacking:
        _dut(tmp_path, "os: generic", board).require_os("ab-update")
    assert lacking.value.feature == "ab-update"


def test_a_boot_that_never_shows_a_login_is_a_boot_timeout_with_the_last_lines(
    tmp_path: Path, image: Path, board: FakeBoard
) -> None:
    dut = _dut(
        tmp_path, "os:\n  extends: reference\n  boot:\n    login_prompt: 'never shown:$'", board, boot=3
    )
    dut.flash(image)
    with pytest.raises(BootTimeout, match=r"no login within 3 s after power-on on fake") as timeout:
        dut.boot()
    assert "last console lines" in str(timeout.value)


def test_each_boot_records_its_phases_adding_up_to_the_boot(
    tmp_path: Path, image: Path, board: FakeBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PW", SECRET)
    dut = _dut(tmp_path, "os: generic\ncredentials:\n  password_env: FAKE_PW", board)
    dut.flash(image, device_type="qemux86-64")
    dut.transition(State.BOOTED)
    dut.flash(image, device_type="qemux86-64")
    dut.transition(State.BOOTED)
    assert len(dut.boots) == 2
    for phases in dut.boots:
        assert next(iter(phases)) == "firmware" and list(phases)[-1] == "login"
        assert all(seconds >= 0 for seconds in phases.values())
    assert sum(dut.boots[-1].values()) == pytest.approx(dut.boot_seconds, abs=0.5)
