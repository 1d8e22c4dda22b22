"""Two steps writing the warehouse at once, and files on disk: no raw IntegrityError, no loose modes."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading

import pandas as pd
import pytest

from connectors import private
from connectors.warehouse import Warehouse
from tests.conftest import postgres_database


def _rejects(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "source_id": "po", "delivery": "po/a.csv", "delivery_sha256": "a" * 64, "delivery_row": range(1, rows + 1),
        "row_fingerprint": [f"{i:064x}" for i in range(rows)], "column": "bsn", "rule": "bsn_elfproef",
        "message": "bsn is geen geldig BSN", "value_masked": "*** (9 tekens)",
    })


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request, tmp_path):
    if request.param == "sqlite":
        warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
        yield warehouse
        warehouse.dispose()
        return
    with postgres_database() as url:
        warehouse = Warehouse(url=url)
        yield warehouse
        warehouse.dispose()


def test_two_steps_recording_the_same_quarantine_at_once_record_it_once(warehouse):
    warehouse.ensure_schema()
    moment = dt.datetime(2026, 10, 5, 2, tzinfo=dt.UTC)
    errors, barrier = [], threading.Barrier(4)

    def record(offset: int) -> None:
        barrier.wait()
        try:
            warehouse.record_quarantine("po_transfers", _rejects(200), [("po", "po/a.csv", "a" * 64)],
                                        moment + dt.timedelta(seconds=offset))
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = warehouse.quarantine_entries("po_transfers")
    assert len(entries) == 200 and entries["delivery_row"].is_unique


def test_written_files_and_folders_are_private_and_in_the_shared_group_when_one_is_set(tmp_path, monkeypatch):
    from connectors.atomic import atomic_write_bytes

    monkeypatch.setenv("SWV_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv(private.GROUP_ENV, raising=False)
    atomic_write_bytes(tmp_path / "var" / "outbox" / "a" / "overdracht.csv", b"bsn\n")
    assert stat.S_IMODE((tmp_path / "var" / "outbox" / "a" / "overdracht.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var" / "outbox" / "a").stat().st_mode) == 0o700

    group = os.getgid()
    monkeypatch.setenv(private.GROUP_ENV, str(group))
    atomic_write_bytes(tmp_path / "var" / "outbox" / "b" / "overdracht.csv", b"bsn\n")
    written = (tmp_path / "var" / "outbox" / "b" / "overdracht.csv").stat()
    folder = (tmp_path / "var" / "outbox" / "b").stat()
    assert (stat.S_IMODE(written.st_mode), written.st_gid) == (0o640, group)
    assert (stat.S_IMODE(folder.st_mode), folder.st_gid) == (0o2750, group)

    private.secure_tree(tmp_path / "var")
    assert stat.S_IMODE((tmp_path / "var" / "outbox" / "a" / "overdracht.csv").stat().st_mode) == 0o640


def test_an_unknown_shared_group_is_named():
    with pytest.raises(ValueError, match="SWV_FILE_GROUP='geen-groep-hier' is not a group"):
        private._gid("geen-groep-hier")
