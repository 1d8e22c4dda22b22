"""Operator notifications: one short message by e-mail (SMTP) and/or to a chat webhook.

The callers decide what goes in a message; this module only delivers it. Each configured channel
is tried (twice by default), even when another one fails; if any of them still fails, ``send``
raises ``NotificationError`` naming the channels (never the message, never a token), so a failed
alert shows in the UI instead of disappearing. The SMTP password, the webhook URL (a chat service's
incoming-webhook URL is itself a secret) and its token reach the resource as ``dg.EnvVar``
(``connectors.secrets``): the UI shows the variables' names only.

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

import dagster as dg
import requests
from pydantic import ConfigDict, Field, field_validator

from connectors.secrets import env_secret, secret_value
from settings.region import secure_url


class NotificationError(RuntimeError):
    """At least one configured channel did not accept the message."""


class Notifier(dg.ConfigurableResource):
    """Where operator alerts go. With no channel configured, ``send`` delivers nothing and returns []."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a wrong webhook URL is still a secret

    smtp_host: str | None = Field(default=None, description="SMTP relay; None: no e-mail.")
    smtp_port: int = Field(default=25, gt=0)
    smtp_from: str | None = Field(default=None, description="Sender address, e.g. pipeline@swv.example.")
    smtp_to: list[str] = Field(default_factory=list, description="Recipients, e.g. the functioneel beheerder.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS (port 587).")
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, description="The SMTP password, as dg.EnvVar.")
    webhook_url: str | None = Field(default=None, description="Incoming-webhook URL, as dg.EnvVar; None: no webhook.")
    webhook_token: str | None = Field(default=None, description="A bearer token for the webhook, as dg.EnvVar.")
    timeout_s: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=2, ge=1, description="Tries per channel: a relay or chat service can hiccup.")
    retry_delay_s: float = Field(default=2.0, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Notifier":
        """The notifier configured by ``SWV_SMTP_*`` and ``SWV_ALERT_WEBHOOK_*`` (docs/runbook.md).

        ``SWV_SMTP_TO`` is a comma-separated list; ``SWV_SMTP_PASSWORD``, ``SWV_ALERT_WEBHOOK_URL`` and
        ``SWV_ALERT_WEBHOOK_TOKEN`` are secrets: the resource holds their names, Dagster their values.
        """
        return cls(
            smtp_host=environ.get("SWV_SMTP_HOST") or None,
            smtp_port=int(environ.get("SWV_SMTP_PORT") or 25),
            smtp_from=environ.get("SWV_SMTP_FROM") or None,
            smtp_to=[a.strip() for a in environ.get("SWV_SMTP_TO", "").split(",") if a.strip()],
            smtp_starttls=environ.get("SWV_SMTP_STARTTLS", "").lower() in {"1", "true", "yes"},
            smtp_user=environ.get("SWV_SMTP_USER") or None,
            smtp_password=env_secret("SWV_SMTP_PASSWORD", environ) if environ.get("SWV_SMTP_USER") else None,
            webhook_url=env_secret("SWV_ALERT_WEBHOOK_URL", environ),
            webhook_token=env_secret("SWV_ALERT_WEBHOOK_TOKEN", environ),
        )

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        # A dg.EnvVar is checked when Dagster resolves it, as the resource starts; the URL is never repeated.
        if value is None or isinstance(value, dg.EnvVar) or secure_url(value):
            return value
        raise ValueError("the webhook goes over https (plain http only to 127.0.0.1 or localhost)")

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
                smtp.login(self.smtp_user, _secret(self.smtp_password, "SWV_SMTP_PASSWORD"))
            smtp.send_message(message)

    def _post_webhook(self, subject: str, body: str) -> None:
        headers = {"Content-Type": "application/json"}
        if self.webhook_token:
            headers["Authorization"] = f"Bearer {_secret(self.webhook_token, 'SWV_ALERT_WEBHOOK_TOKEN')}"
        response = requests.post(
            self.webhook_url,
            json={"text": f"{subject}\n\n{body}", "subject": subject, "body": body},
            headers=headers,
            timeout=self.timeout_s,
            allow_redirects=False,
        )
        if not 200 <= response.status_code < 300:
            raise NotificationError(f"webhook answered HTTP {response.status_code}")


def _secret(value: str | None, variable: str) -> str:
    secret = secret_value(value)
    if not secret:
        raise NotificationError(f"environment variable {variable} is not set")
    return secret
