"""A failed run reaches the operator by e-mail and webhook: run id, job, step, error class, UI link, no data.

A job that fails on purpose runs in process on a temporary instance; the failure sensor is then
evaluated for that run and delivers to a real SMTP receiver and a real HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from connectors.notify import NotificationError, Notifier
from pipelines.sensors import FAILURE_SENSOR, run_failure_notification

PLANTED_BSN = "123456782"  # passes the elfproef; the kind of value an error message might quote
BSN_LIKE = re.compile(r"(?<!\d)\d{9}(?!\d)")


# --------------------------------------------------------------------------- receivers


class _SmtpSession(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: greeting, EHLO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 127.0.0.1 test receiver")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.reply("250 127.0.0.1")
            elif verb == b"DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                self.server.messages.append(email.message_from_bytes(self._data(), policy=email.policy.default))
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                self.reply("250 OK")

    def _data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)  # undo dot-stuffing
        return b"".join(lines)


class SmtpReceiver(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SmtpSession)
        self.messages: list[email.message.EmailMessage] = []


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
        self.send_response(self.server.statuses.pop(0) if self.server.statuses else 204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class WebhookReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.posts: list[dict] = []
        self.statuses: list[int] = []  # answers to the next posts; then 204


def _serving(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


@pytest.fixture
def smtp():
    server = _serving(SmtpReceiver())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook():
    server = _serving(WebhookReceiver())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def notifier(smtp, webhook) -> Notifier:
    return Notifier(
        smtp_host="127.0.0.1",
        smtp_port=smtp.server_address[1],
        smtp_from="pipeline@swv.example",
        smtp_to=["beheer@swv.example"],
        webhook_url=f"http://127.0.0.1:{webhook.server_address[1]}/hooks/swv",
        webhook_token="test-token",
        timeout_s=5,
    )


# --------------------------------------------------------------------------- a run that fails


@dg.asset
def pupil_lookup() -> None:
    raise ValueError(f"pupil with BSN {PLANTED_BSN} not found in the enrolment of 01-10-2026")


@dg.asset(deps=[pupil_lookup])
def pupil_report() -> None:
    """Never runs: its upstream fails."""


@pytest.fixture(scope="module")
def failed_run():
    """One failed run on a temporary instance, shared by the tests (the instance is what the sensor reads)."""
    job = dg.define_asset_job("lookup", selection=[pupil_lookup, pupil_report], executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[pupil_lookup, pupil_report], jobs=[job])
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("lookup").execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        yield instance, result


def _notify(failed_run, notifier: Notifier) -> str:
    instance, result = failed_run
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"notifier": notifier},
    ).for_run_failure()
    run_failure_notification(context)
    return result.run_id


# --------------------------------------------------------------------------- behaviour


def test_a_failed_run_sends_one_email_and_one_webhook_post(failed_run, notifier, smtp, webhook):
    _notify(failed_run, notifier)
    assert len(smtp.messages) == 1
    assert len(webhook.posts) == 1


def test_the_email_names_the_run_job_failed_step_and_error_class_and_links_to_the_ui(failed_run, notifier, smtp, monkeypatch):
    monkeypatch.delenv("SWV_UI_URL", raising=False)
    run_id = _notify(failed_run, notifier)
    message = smtp.messages[0]
    body = message.get_content()
    assert message["To"] == "beheer@swv.example"
    assert "lookup" in message["Subject"]
    assert f"Run id: {run_id}" in body
    assert "  - pupil_lookup: ValueError" in body
    assert f"http://127.0.0.1:3000/runs/{run_id}" in body


def test_the_webhook_carries_the_same_message_with_the_bearer_token(failed_run, notifier, webhook):
    run_id = _notify(failed_run, notifier)
    post = webhook.posts[0]
    assert post["path"] == "/hooks/swv"
    assert post["headers"]["Authorization"] == "Bearer test-token"
    assert run_id in post["json"]["text"]
    assert "pupil_lookup: ValueError" in post["json"]["body"]


def test_no_bsn_like_number_leaves_even_when_the_error_message_contained_one(failed_run, notifier, smtp, webhook):
    run_id = _notify(failed_run, notifier)
    mail = f"{smtp.messages[0]['Subject']}\n{smtp.messages[0].get_content()}"
    post = json.dumps(webhook.posts[0]["json"])
    for sent in (mail, post):
        assert PLANTED_BSN not in sent
        # The run id is random hex: nine of its digits in a row would look like a BSN.
        assert not BSN_LIKE.search(sent.replace(run_id, "<run id>"))
        assert "not found" not in sent  # the error text as a whole stays out, not only the number


def test_the_link_uses_swv_ui_url(failed_run, notifier, smtp, monkeypatch):
    monkeypatch.setenv("SWV_UI_URL", "https://dagster.swv.example/")
    run_id = _notify(failed_run, notifier)
    assert f"https://dagster.swv.example/runs/{run_id}" in smtp.messages[0].get_content()


def test_the_failure_sensor_runs_by_default_for_every_job():
    assert run_failure_notification.default_status == dg.DefaultSensorStatus.RUNNING
    assert not run_failure_notification.targets  # no monitored_jobs: every job in the code location


def test_a_channel_that_is_down_is_reported_and_the_other_still_delivers(smtp):
    closed = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # a port on which nothing listens
    notifier = Notifier(smtp_host="127.0.0.1", smtp_port=smtp.server_address[1], smtp_from="pipeline@swv.example",
                        smtp_to=["beheer@swv.example"], webhook_url=f"http://127.0.0.1:{port}/", timeout_s=2,
                        retry_delay_s=0)
    with pytest.raises(NotificationError, match=r"webhook \(ConnectionError\); delivered by \['smtp'\]"):
        notifier.send("subject", "body")
    assert len(smtp.messages) == 1


def test_a_webhook_that_hiccups_is_tried_again(webhook):
    webhook.statuses = [503]
    notifier = Notifier(webhook_url=f"http://127.0.0.1:{webhook.server_address[1]}/", retry_delay_s=0)
    assert notifier.send("subject", "body") == ["webhook"]
    assert len(webhook.posts) == 2


def test_without_a_configured_channel_nothing_is_sent_and_nothing_fails():
    assert Notifier().send("subject", "body") == []


def test_a_webhook_must_use_https_unless_it_is_local():
    with pytest.raises(ValueError, match="https"):
        Notifier(webhook_url="http://chat.example/hook")


def test_the_notifier_is_configured_from_the_environment_without_its_secrets():
    notifier = Notifier.from_env({
        "SWV_SMTP_HOST": "smtp.swv.example", "SWV_SMTP_PORT": "587", "SWV_SMTP_STARTTLS": "true",
        "SWV_SMTP_FROM": "pipeline@swv.example", "SWV_SMTP_TO": "beheer@swv.example, coordinator@swv.example",
        "SWV_SMTP_USER": "pipeline", "SWV_SMTP_PASSWORD": "smtp-secret",
        "SWV_ALERT_WEBHOOK_URL": "https://chat.swv.example/hooks/secret", "SWV_ALERT_WEBHOOK_TOKEN": "webhook-secret",
    })
    assert notifier.channels == ["smtp", "webhook"]
    assert notifier.smtp_to == ["beheer@swv.example", "coordinator@swv.example"]
    assert (notifier.smtp_port, notifier.smtp_starttls) == (587, True)
    secrets = (notifier.smtp_password, notifier.webhook_url, notifier.webhook_token)
    assert all(isinstance(secret, dg.EnvVar) for secret in secrets)  # Dagster reads them when a run starts
    assert [secret.env_var_name for secret in secrets] == [
        "SWV_SMTP_PASSWORD", "SWV_ALERT_WEBHOOK_URL", "SWV_ALERT_WEBHOOK_TOKEN"]
    assert Notifier.from_env({}).channels == []


def test_a_webhook_url_from_the_environment_is_checked_when_it_is_resolved(monkeypatch):
    monkeypatch.setenv("SWV_ALERT_WEBHOOK_URL", "http://chat.example/hooks/secret")
    notifier = Notifier.from_env()
    with pytest.raises(dg.DagsterResourceFunctionError) as error:
        with dg.build_resources({"notifier": notifier}):
            pass
    assert "over https" in str(error.value.__cause__) and "hooks/secret" not in str(error.value.__cause__)
