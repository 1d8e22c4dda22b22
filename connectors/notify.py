"""Operator notifications: one short message by e-mail (SMTP) and/or to a chat webhook.

The callers decide what goes in a message; this module only delivers it. Each configured channel
is tried (twice by default), even when another one fails; if any of them still fails, ``send``
raises ``NotificationError`` naming the channels (never the message, never a token), so a failed
alert shows in the UI instead of disappearing. Secrets never live in configuration: the webhook token and the SMTP password are
read from the environment variables the configuration names, at send time.

The webhook receives ``POST`` JSON ``{"text": "<subject>\\n\\n<body>", "subject": ..., "body": ...}``:
``text`` is what Slack, Mattermost and Teams incoming webhooks display. Redirects are refused so a
token never travels to another host, and plain ``http://`` is accepted only for 127.0.0.1/localhost.
"""

from __future__ import annotations

import os
import smtplib
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

import dagster as dg
import requests
from pydantic import Field, field_validator

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class NotificationError(RuntimeError):
    """At least one configured channel did not accept the message."""


class Notifier(dg.ConfigurableResource):
    """Where operator alerts go. With no channel configured, ``send`` delivers nothing and returns []."""

    smtp_host: str | None = Field(default=None, description="SMTP relay; None: no e-mail.")
    smtp_port: int = Field(default=25, gt=0)
    smtp_from: str | None = Field(default=None, description="Sender address, e.g. pipeline@swv.example.")
    smtp_to: list[str] = Field(default_factory=list, description="Recipients, e.g. the functioneel beheerder.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS (port 587).")
    smtp_user: str | None = None
    smtp_password_env: str | None = Field(default=None, description="Environment variable holding the SMTP password.")
    webhook_url: str | None = Field(default=None, description="Incoming-webhook URL; None: no webhook.")
    webhook_token_env: str | None = Field(
        default=None, description="Environment variable holding a bearer token for the webhook, if it needs one."
    )
    timeout_s: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=2, ge=1, description="Tries per channel: a relay or chat service can hiccup.")
    retry_delay_s: float = Field(default=2.0, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Notifier":
        """The notifier configured by ``SWV_SMTP_*`` and ``SWV_ALERT_WEBHOOK_*`` (docs/runbook.md).

        ``SWV_SMTP_TO`` is a comma-separated list; the password and the webhook token stay in
        ``SWV_SMTP_PASSWORD`` and ``SWV_ALERT_WEBHOOK_TOKEN`` and are read only when sending.
        """
        return cls(
            smtp_host=environ.get("SWV_SMTP_HOST") or None,
            smtp_port=int(environ.get("SWV_SMTP_PORT") or 25),
            smtp_from=environ.get("SWV_SMTP_FROM") or None,
            smtp_to=[a.strip() for a in environ.get("SWV_SMTP_TO", "").split(",") if a.strip()],
            smtp_starttls=environ.get("SWV_SMTP_STARTTLS", "").lower() in {"1", "true", "yes"},
            smtp_user=environ.get("SWV_SMTP_USER") or None,
            smtp_password_env="SWV_SMTP_PASSWORD" if environ.get("SWV_SMTP_USER") else None,
            webhook_url=environ.get("SWV_ALERT_WEBHOOK_URL") or None,
            webhook_token_env="SWV_ALERT_WEBHOOK_TOKEN" if "SWV_ALERT_WEBHOOK_TOKEN" in environ else None,
        )

    @field_validator("webhook_url")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS:
            return value
        raise ValueError(f"{value!r}: webhooks go over https (plain http only to 127.0.0.1 or localhost)")

    @property
    def channels(self) -> list[str]:
        """The configured channels, in the order ``send`` uses them."""
        return [name for name, on in (("smtp", self._smtp_configured), ("webhook", bool(self.webhook_url))) if on]

    @property
    def _smtp_configured(self) -> bool:
        return bool(self.smtp_host and self.smtp_from and self.smtp_to)

    def send(self, subject: str, body: str) -> list[str]:
        """Deliver to every configured channel; return the channels that accepted the message."""
        delivered, failed = [], []
        for channel, deliver in (("smtp", self._send_mail), ("webhook", self._post_webhook)):
            if channel not in self.channels:
                continue
            error = self._with_retries(deliver, subject, body)
            if error is None:
                delivered.append(channel)
            else:
                # The class only: an SMTP or HTTP error text may quote the message or the URL's token.
                failed.append(f"{channel} ({type(error).__name__})")
        if failed:
            raise NotificationError(f"notification not delivered by {', '.join(failed)}; delivered by {delivered or 'none'}")
        return delivered

    def _with_retries(self, deliver, subject: str, body: str) -> Exception | None:
        """None when delivered, else the last error."""
        error = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.retry_delay_s)
            try:
                deliver(subject, body)
                return None
            except (OSError, smtplib.SMTPException, requests.RequestException, NotificationError) as exc:
                error = exc
        return error

    def _send_mail(self, subject: str, body: str) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.smtp_from
        message["To"] = ", ".join(self.smtp_to)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=self.smtp_from.rpartition("@")[2] or None)
        message.set_content(body)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s) as smtp:
            if self.smtp_starttls:
                smtp.starttls()
            if self.smtp_user:
                smtp.login(self.smtp_user, _secret(self.smtp_password_env, "smtp_password_env"))
            smtp.send_message(message)

    def _post_webhook(self, subject: str, body: str) -> None:
        headers = {"Content-Type": "application/json"}
        if self.webhook_token_env:
            headers["Authorization"] = f"Bearer {_secret(self.webhook_token_env, 'webhook_token_env')}"
        response = requests.post(
            self.webhook_url,
            json={"text": f"{subject}\n\n{body}", "subject": subject, "body": body},
            headers=headers,
            timeout=self.timeout_s,
            allow_redirects=False,
        )
        if not 200 <= response.status_code < 300:
            raise NotificationError(f"webhook answered HTTP {response.status_code}")


def _secret(env_name: str | None, setting: str) -> str:
    value = os.environ.get(env_name or "")
    if not value:
        raise NotificationError(f"{setting} names {env_name!r}, but that environment variable is not set")
    return value
