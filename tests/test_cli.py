"""``swv``: the command dispatch, ``swv init``, ``swv check`` and what ``swv night`` refuses before running.

A whole night through ``swv night`` runs in tests/test_second_swv.py (another SWV) and
tests/test_swv_night_demo.py (the demo region against ``make demo``).
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from pipelines import cli
from pipelines.commands.night import LOCAL_INSTANCE, ensure_dagster_home
from schemas.region_contract import load_checked_region

CALLS: list[list[str]] = []


def _record(argv: list[str]) -> int:
    """A registered command's module function, as other developers' commands are."""
    CALLS.append(argv)
    return 3


# -- dispatch -------------------------------------------------------------------------------------------


def test_help_lists_every_registered_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"swv {command.words}" in out for command in cli.COMMANDS)


def test_the_console_script_is_installed_with_the_project():
    swv = Path(sys.executable).parent / "swv"
    result = subprocess.run([swv, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "swv night" in result.stdout


def test_a_command_of_several_words_is_registered_in_one_line_and_wins_over_a_shorter_one():
    commands = (*cli.COMMANDS, cli.Command("report", "tests.test_cli:_record", "the report"),
                cli.Command("report again", "tests.test_cli:_record", "the report's past"))
    CALLS.clear()
    assert cli.main(["report", "again", "--from", "2025-08-01"], commands) == 3
    assert cli.main(["report", "--now"], commands) == 3
    assert CALLS == [["--from", "2025-08-01"], ["--now"]]


def test_a_group_word_alone_lists_the_commands_of_that_group(capsys):
    assert cli.main(["monitor"]) == 2
    assert "swv monitor backfill" in capsys.readouterr().err


def test_an_unknown_command_exits_2_with_a_suggestion(capsys):
    assert cli.main(["chek"]) == 2
    assert "did you mean 'swv check'" in capsys.readouterr().err


# -- swv init --------------------------------------------------------------------------------------------


def test_init_writes_a_region_file_that_validates_for_an_swv_in_three_other_provinces(tmp_path, capsys):
    output = tmp_path / "vo2507.yaml"
    assert cli.main(["init", "--swv", "VO2507", "--output", str(output)]) == 0
    region = load_checked_region(output)
    assert sorted(region.gemeente_codes) == ["GM0209", "GM0225", "GM0252", "GM0268", "GM0296", "GM0668", "GM0893",
                                             "GM0907", "GM0944", "GM1945", "GM1982"]
    assert region.calendar.holiday_region == "zuid"
    assert len(region.sources_for("youth_care_waitlist")) == 11
    assert {s.dataset for s in region.sources.values()} == {"po_transfers", "youth_care_waitlist", "vo_enrolment",
                                                            "vo_absence", "mbo_outflow"}
    text = output.read_text(encoding="utf-8")
    assert "{code: GM1982, naam: \"Land van Cuijk\"}  # 2015: Boxmeer, Cuijk, Grave, Mill en Sint Hubert" in text
    assert "#   00CB00  Scholengemeenschap voor Voortgezet Vrije Schoolonderwijs (Nijmegen)" in text
    out = capsys.readouterr().out
    assert "GM1982 Land van Cuijk (Noord-Brabant): formed from Boxmeer" in out


def test_init_marks_a_municipality_only_partly_in_the_swv(tmp_path):
    output = tmp_path / "vo2501.yaml"
    assert cli.main(["init", "--swv", "VO2501", "--output", str(output)]) == 0
    line = next(line for line in output.read_text(encoding="utf-8").splitlines() if "GM1876" in line)
    assert "CHECK: only 3 of its 17 postcode areas are in VO2501, the others in VO2503" in line  # 7233, 7234, 7251


def test_init_refuses_an_unknown_code_and_lists_the_swvs_of_its_region(tmp_path, capsys):
    assert cli.main(["init", "--swv", "VO2599", "--output", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "VO2599 is not an SWV VO" in err and "VO2501" in err
    assert not (tmp_path / "x.yaml").exists()


def test_init_does_not_overwrite_a_region_file_without_force(tmp_path):
    output = tmp_path / "mine.yaml"
    output.write_text("# my work\n", encoding="utf-8")
    assert cli.main(["init", "--swv", "VO2203", "--output", str(output)]) == 2
    assert output.read_text(encoding="utf-8") == "# my work\n"
    assert cli.main(["init", "--swv", "VO2203", "--output", str(output), "--force"]) == 0


# -- swv night, before it runs ------------------------------------------------------------------------


def test_night_refuses_a_municipality_outside_the_region_before_anything_runs(var_dir, monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["night", "--gemeente", "GM0180"]) == 2
    assert "GM0180 not among the municipalities" in capsys.readouterr().err
    assert not (var_dir / "dagster").exists()


def test_night_refuses_an_invalid_region_file(tmp_path, capsys):
    bad = tmp_path / "region.yaml"
    bad.write_text("swv: {code: VO22}\n", encoding="utf-8")
    assert cli.main(["night", "--region", str(bad)]) == 2
    assert "swv.code" in capsys.readouterr().err


def test_a_missing_dagster_home_is_created_with_the_local_instance_settings(var_dir, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = ensure_dagster_home(progress=lambda message: None)
    assert home == var_dir / "dagster"
    assert (home / "dagster.yaml").read_text() == LOCAL_INSTANCE.read_text()


def test_an_existing_dagster_yaml_is_kept_and_a_relative_home_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("run_monitoring: {enabled: true}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", "home")
    home = ensure_dagster_home(progress=lambda message: None)
    assert home == tmp_path / "home" and Path(__import__("os").environ["DAGSTER_HOME"]).is_absolute()
    assert (home / "dagster.yaml").read_text() == "run_monitoring: {enabled: true}\n"


# -- swv check ----------------------------------------------------------------------------------------


class _Api(http.server.BaseHTTPRequestHandler):
    """A partner API on 127.0.0.1 that wants the bearer token 'geheim'."""

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.headers.get("Authorization") == "Bearer geheim" else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/wachtlijst"
    server.shutdown()
    server.server_close()


WAITLIST_CSV = "bsn;aanmelddatum;woongemeente_code\n111222333;2026-03-01;GM0268\n"


@pytest.fixture
def setup(tmp_path, var_dir, api, monkeypatch):
    """A two-municipality region: Nijmegen delivers a file, Wijchen an API; every secret set."""
    region = {
        "swv": {"code": "VO2507", "naam": "Test"},
        "gemeenten": [{"code": "GM0268", "naam": "Nijmegen"}, {"code": "GM0296", "naam": "Wijchen"}],
        "calendar": {"holidays": [{"name": "kerstvakantie 2026", "start": "2026-12-19", "end": "2027-01-03"}]},
        "sources": {
            "wachtlijst_nijmegen": {
                "dataset": "youth_care_waitlist", "gemeente": "GM0268", "partner": "Gemeente Nijmegen",
                "location": {"kind": "file", "path": "nijmegen/*.csv", "format": {"type": "csv"}},
                "columns": {"bsn": "bsn", "aanmelddatum": "aanmelddatum", "woongemeente_code": "woongemeente_code"},
            },
            "wachtlijst_wijchen": {
                "dataset": "youth_care_waitlist", "gemeente": "GM0296", "partner": "Gemeente Wijchen",
                "location": {"kind": "http", "url": api, "pagination": {"type": "page"},
                             "auth": {"type": "bearer", "token_env": "SWV_TOKEN_WIJCHEN"}},
                "columns": {"bsn": "bsn", "aanmelddatum": "aanmelddatum"},
            },
        },
    }
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(region), encoding="utf-8")
    (var_dir / "sources" / "nijmegen").mkdir(parents=True)
    (var_dir / "sources" / "nijmegen" / "wachtlijst.csv").write_text(WAITLIST_CSV, encoding="utf-8")
    for name, value in {"SWV_TOKEN_WIJCHEN": "geheim", "SWV_EXPORT_KEY_GM0268": "k1", "SWV_EXPORT_KEY_GM0296": "k2",
                        "SWV_ALERT_SALT": "zout"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return {"region": path, "var": var_dir, "region_data": region}


def check(setup, capsys) -> tuple[int, str]:
    code = cli.main(["check", "--region", str(setup["region"])])
    return code, capsys.readouterr().out


def test_check_passes_a_region_whose_deliveries_apis_and_secrets_are_in_place(setup, capsys):
    code, out = check(setup, capsys)
    assert code == 0, out
    assert "ok     1 file(s) readable, 1 rows; newest nijmegen/wachtlijst.csv" in out
    assert "answers (HTTP 200 to a HEAD request)" in out
    assert "0 error(s)" in out


def test_check_names_a_source_without_files(setup, capsys):
    (setup["var"] / "sources" / "nijmegen" / "wachtlijst.csv").unlink()
    code, out = check(setup, capsys)
    assert code == 1 and "ERROR  no file matches" in out and "nijmegen/*.csv" in out


def test_check_names_a_mapped_column_the_file_lacks(setup, capsys):
    (setup["var"] / "sources" / "nijmegen" / "wachtlijst.csv").write_text(
        "bsn;aanmelddatum\n111222333;2026-03-01\n", encoding="utf-8")
    code, out = check(setup, capsys)
    assert code == 1 and "nijmegen/wachtlijst.csv: lacks the mapped column(s) ['woongemeente_code']" in out


def test_check_names_a_file_the_night_cannot_read(setup, capsys):
    (setup["var"] / "sources" / "nijmegen" / "wachtlijst.csv").write_text(
        "bsn;aanmelddatum;woongemeente_code\n111222333;2026-03-01\n", encoding="utf-8")
    code, out = check(setup, capsys)
    assert code == 1 and "cannot be read" in out and "line 2" in out


def test_check_says_when_a_token_is_missing(setup, capsys, monkeypatch):
    monkeypatch.delenv("SWV_TOKEN_WIJCHEN")
    code, out = check(setup, capsys)
    assert code == 1 and "environment variable SWV_TOKEN_WIJCHEN is not set" in out


def test_check_says_when_an_api_refuses_the_token(setup, capsys, monkeypatch):
    monkeypatch.setenv("SWV_TOKEN_WIJCHEN", "fout")
    code, out = check(setup, capsys)
    assert code == 1 and "refuses the token (HTTP 401)" in out


def test_check_says_when_an_api_does_not_answer(setup, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    region = setup["region_data"]
    region["sources"]["wachtlijst_wijchen"]["location"]["url"] = f"http://127.0.0.1:{port}/wachtlijst"
    setup["region"].write_text(yaml.safe_dump(region), encoding="utf-8")
    code, out = check(setup, capsys)
    assert code == 1 and "does not answer: cannot connect" in out


def test_check_names_missing_export_keys_and_the_missing_alert_salt(setup, capsys, monkeypatch):
    monkeypatch.delenv("SWV_EXPORT_KEY_GM0296")
    monkeypatch.delenv("SWV_ALERT_SALT")
    code, out = check(setup, capsys)
    assert code == 1 and "not set: SWV_EXPORT_KEY_GM0296" in out and "ERROR  SWV_ALERT_SALT is not set" in out


def test_check_reports_an_invalid_region_file(tmp_path, capsys):
    bad = tmp_path / "region.yaml"
    bad.write_text("swv: {code: VO2507, naam: x}\ngemeenten: []\nsources: {}\n", encoding="utf-8")
    assert cli.main(["check", "--region", str(bad)]) == 1
    assert "The region file is not valid" in capsys.readouterr().err
