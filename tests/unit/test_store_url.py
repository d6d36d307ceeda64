"""Where the store is: --store, else $HIL_STORE, else $HIL_RELEASE_STORE (the old name), else the cache's
sqlite file; a path or sqlite:/// is the embedded file, postgresql:// a lab's server, and a password in the
URL is never shown: not in errors, not in --help, not on the store's own description."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.commands.main import main
from hil.errors import HilError
from hil.release.sqlite_store import SqliteStore
from hil.store.url import store_url

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HIL_STORE", raising=False)
    monkeypatch.delenv("HIL_RELEASE_STORE", raising=False)


def test_the_store_flag_wins_then_hil_store_then_the_old_variable_then_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store_url().path == tmp_path / "cache" / "releases.sqlite"
    monkeypatch.setenv("HIL_RELEASE_STORE", str(tmp_path / "old.sqlite"))
    assert store_url().path == tmp_path / "old.sqlite"
    monkeypatch.setenv("HIL_STORE", f"sqlite:///{tmp_path}/new.sqlite")
    assert store_url().path == tmp_path / "new.sqlite"
    assert store_url(tmp_path / "flag.sqlite").path == tmp_path / "flag.sqlite"
    assert store_url(str(tmp_path / "flag.sqlite")).path == tmp_path / "flag.sqlite"


def test_a_postgresql_url_uses_psycopg_and_shows_no_password() -> None:
    url = store_url(f"postgresql://lab:{SECRET}@db.lab.example:5432/hil?sslmode=require&password={SECRET}")
    assert url.path is None and url.url.drivername == "postgresql+psycopg"
    assert url.url.password == SECRET  # it connects with it...
    assert SECRET not in url.shown and SECRET not in str(url) and SECRET not in repr(url)  # ...never shows it
    assert url.shown.startswith("postgresql://lab:***@db.lab.example:5432/hil?")


@pytest.mark.parametrize(
    "given", [f"mysql://root:{SECRET}@db/hil", f"postgresql://u:{SECRET}@host:notaport/db", "sqlite://"]
)
def test_a_url_hil_cannot_store_in_is_one_line_without_the_password(given: str) -> None:
    with pytest.raises(HilError) as err:
        store_url(given)
    assert SECRET not in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_server_is_an_error_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(HilError, match="is not a usable release store") as err:
        SqliteStore(f"postgresql://lab:{SECRET}@/hil?host={tmp_path}/no-server&connect_timeout=2")
    assert SECRET not in str(err.value) and "postgresql://lab:***@" in str(err.value)


def test_help_names_the_variables_never_their_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIL_STORE", f"postgresql://lab:{SECRET}@db/hil")
    for command in (["release", "list"], ["runs", "list"], ["release", "gate"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert "$HIL_STORE" in out and SECRET not in out


def test_the_cli_takes_a_store_url(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--store", store_url]) == 0
    assert main(["release", "list", "--store", store_url]) == 0
    assert "Traceback" not in capsys.readouterr().err
