"""Raw snapshots are immutable and content-addressed; the lake hands outputs on, as few columns as asked."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from connectors.lake import LakeIOManager, RawSnapshots, read_parquet, write_parquet


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"bsn": ["111222333"] * rows, "delivery_row": range(1, rows + 1)})


def test_the_same_delivery_ingested_twice_is_one_snapshot(tmp_path):
    snapshots = RawSnapshots(root=str(tmp_path))
    first = snapshots.store("wachtlijst_x", "abc123", _frame(3))
    mtime = first.stat().st_mtime_ns
    second = snapshots.store("wachtlijst_x", "abc123", _frame(3))
    assert first == second and second.stat().st_mtime_ns == mtime
    assert len(list((tmp_path / "raw" / "wachtlijst_x").glob("*.parquet"))) == 1


def test_a_source_has_one_last_good_state_whatever_its_deliveries_were_called(tmp_path):
    from connectors.lake import KeptDelivery

    snapshots = RawSnapshots(root=str(tmp_path))
    snapshots.store("po", "sha-old", _frame(2))
    snapshots.keep("po", [KeptDelivery("po/bestuur_01.csv", "sha-old", 2, "2026-10-04T02:00:00+00:00")])
    snapshots.store("po", "sha-new", _frame(5))
    snapshots.keep("po", [KeptDelivery("po/bestuur_01_v2.csv", "sha-new", 5, "2026-10-05T02:00:00+00:00")])
    assert [(k.delivery, k.rows) for k in snapshots.last_good("po")] == [("po/bestuur_01_v2.csv", 5)]
    assert len(snapshots.read("po", "sha-new")) == 5
    assert snapshots.last_good("vva") == []


def test_the_pointers_of_earlier_versions_become_the_state_with_one_pull_per_api(tmp_path):
    import os

    snapshots = RawSnapshots(root=str(tmp_path))
    pointers = tmp_path / "raw" / "vva" / "last_good"
    pointers.mkdir(parents=True)
    for number, port in enumerate((8765, 41234)):
        snapshots.store("vva", f"sha-{port}", _frame(3))
        pointer = pointers / f"http___127.0.0.1_{port}__vva.txt"
        pointer.write_text(f"sha-{port}")
        os.utime(pointer, (1_000_000 + number, 1_000_000 + number))
    assert [k.sha256 for k in snapshots.last_good("vva")] == ["sha-41234"]


def test_an_input_can_ask_for_some_columns(tmp_path):
    seen = {}

    @dg.asset(io_manager_key="lake")
    def facts() -> pd.DataFrame:
        return pd.DataFrame({"gemeente": ["GM0001", "GM0002"], "waarde": [1, 2], "geheim": ["a", "b"]})

    @dg.asset(io_manager_key="lake", ins={"facts": dg.AssetIn(metadata={"columns": ["gemeente", "waarde", "absent"]})})
    def reader(facts: pd.DataFrame) -> None:
        seen["facts"] = facts

    resources = {"lake": LakeIOManager(root=str(tmp_path))}
    assert dg.materialize([facts, reader], resources=resources).success
    assert seen["facts"].to_dict("list") == {"gemeente": ["GM0001", "GM0002"], "waarde": [1, 2]}


def test_a_lake_file_is_read_back_whole(tmp_path):
    frame = pd.DataFrame({"gemeente": pd.Series(["GM0002", None], dtype="str"), "waarde": [1, 2]})
    write_parquet(frame, tmp_path / "facts.parquet")
    assert read_parquet(tmp_path / "facts.parquet").equals(frame)
