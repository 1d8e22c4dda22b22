"""Raw snapshots are immutable and content-addressed; the lake hands every partition's last good output on."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

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


def test_an_unpartitioned_reader_gets_every_materialized_partition(tmp_path):
    gemeenten = dg.StaticPartitionsDefinition(["GM0001", "GM0002", "GM0003"])

    @dg.asset(partitions_def=gemeenten, io_manager_key="lake")
    def per_gemeente(context) -> pd.DataFrame:
        return pd.DataFrame({"gemeente": [context.partition_key] * 2})

    @dg.asset(io_manager_key="lake")
    def combined(per_gemeente: pd.DataFrame) -> pd.DataFrame:
        return per_gemeente

    resources = {"lake": LakeIOManager(root=str(tmp_path))}
    with dg.DagsterInstance.ephemeral() as instance:
        for key in ("GM0001", "GM0003"):  # GM0002 never delivered
            assert dg.materialize([per_gemeente], partition_key=key, resources=resources, instance=instance).success
        result = dg.materialize([per_gemeente, combined], selection=[combined], resources=resources, instance=instance)
    assert result.success
    out = pd.read_parquet(tmp_path / "assets" / "combined" / "_all.parquet")
    assert sorted(out["gemeente"].unique()) == ["GM0001", "GM0003"]


def test_an_input_can_ask_for_some_columns_and_for_its_partitions_rows_only(tmp_path):
    gemeenten = dg.StaticPartitionsDefinition(["GM0001", "GM0002"])
    seen = {}

    @dg.asset(io_manager_key="lake", metadata={"row_groups_by": "gemeente"})
    def facts() -> pd.DataFrame:
        return pd.DataFrame({"gemeente": ["GM0001", "GM0002", "GM0001"], "waarde": [1, 2, 3], "geheim": ["a", "b", "c"]})

    @dg.asset(partitions_def=gemeenten, io_manager_key="lake", ins={
        "facts": dg.AssetIn(metadata={"rows_of_partition": "gemeente", "columns": ["gemeente", "waarde", "absent"]}),
    })
    def per_gemeente(context, facts: pd.DataFrame) -> None:
        seen[context.partition_key] = facts

    resources = {"lake": LakeIOManager(root=str(tmp_path))}
    assert dg.materialize([facts], resources=resources).success
    for gemeente in gemeenten.get_partition_keys():
        assert dg.materialize([facts, per_gemeente], selection=[per_gemeente], partition_key=gemeente,
                              resources=resources).success
    assert pq.ParquetFile(tmp_path / "assets" / "facts" / "_all.parquet").metadata.num_row_groups == 2
    assert seen["GM0001"].to_dict("list") == {"gemeente": ["GM0001", "GM0001"], "waarde": [1, 3]}
    assert seen["GM0002"].to_dict("list") == {"gemeente": ["GM0002"], "waarde": [2]}


def test_a_file_read_per_value_has_a_row_group_per_value_with_that_columns_statistics(tmp_path):
    frame = pd.DataFrame({"gemeente": pd.Series(["GM0002", None, "GM0001", "GM0002", "GM0001"], dtype="str"),
                          "waarde": [1, 2, 3, 4, 5]})
    path = tmp_path / "facts.parquet"
    write_parquet(frame, path, row_groups_by="gemeente")
    metadata = pq.ParquetFile(path).metadata
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    assert [group.num_rows for group in groups] == [2, 2, 1]  # GM0001, GM0002, unknown
    assert [(g.column(0).statistics.min, g.column(0).statistics.max) for g in groups[:2]] == [
        ("GM0001", "GM0001"), ("GM0002", "GM0002")]
    assert not groups[0].column(1).is_stats_set  # only the grouping column has statistics
    assert read_parquet(path, filters=[("gemeente", "=", "GM0002")])["waarde"].tolist() == [1, 4]  # order kept
    assert sorted(read_parquet(path)["waarde"]) == [1, 2, 3, 4, 5]
