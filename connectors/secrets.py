"""Secrets as Dagster resource config: the name of an environment variable, never its value.

A secret reaches a resource as ``dg.EnvVar(name)``: Dagster reads the value when a run starts, so
the definitions, the UI's resource page and the run's config hold only the name. A variable that is
not set where the code location loads is left out of the resource, and the step that needs it fails
with the variable's name; every other step of the night runs (a missing token fails one partner's
pull, a missing export key one municipality's export). A variable set or changed later counts from
the next load of the code location (``Reload`` in the UI, or a restart of the services).

There is no default for any secret, not even in the demo: ``python -m demo``, the Makefile and the
tests set demo values themselves (``demo/__main__.py``), so an installation that forgot one fails
closed instead of running with a public value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import dagster as dg

EXPORT_KEY_PREFIX = "SWV_EXPORT_KEY_"
ALERT_SALT_ENV = "SWV_ALERT_SALT"


class SecretMissing(RuntimeError):
    """A secret the step needs is not in the environment; the message names the variable."""


class ExportKeyMissing(SecretMissing):
    """The municipality's pseudonymisation key is not in the environment."""


def env_secret(name: str, environ: Mapping[str, str] = os.environ) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when the variable is set (and not empty) in this process, else None."""
    return dg.EnvVar(name) if environ.get(name, "").strip() else None


def env_secrets(names: Iterable[str]) -> dict[str, str]:
    """``{name: dg.EnvVar(name)}`` for every variable of ``names`` that is set, in name order."""
    return {name: secret for name in sorted(set(names)) if (secret := env_secret(name)) is not None}


def secret_value(value: str | None) -> str:
    """The secret as Dagster resolved it, '' when absent or blank. A ``dg.EnvVar`` that was never resolved
    (a resource used outside a run and outside ``dg.build_resources``) is refused, never taken for the value."""
    if isinstance(value, dg.EnvVar):
        raise SecretMissing(f"{value.env_var_name} was not resolved: use the resource in a run or through "
                            "dg.build_resources")
    return value if value and value.strip() else ""


def export_key_variable(gemeente: str) -> str:
    """``SWV_EXPORT_KEY_GM0118``: the environment variable that holds one municipality's key."""
    return f"{EXPORT_KEY_PREFIX}{gemeente}"


class ExportKeys(dg.ConfigurableResource):
    """The pseudonymisation key of each municipality's export (docs/exports.md, 'The pseudonym and its key')."""

    per_gemeente: dict[str, str] = {}  # GM code -> its key, as dg.EnvVar(SWV_EXPORT_KEY_<GMcode>)

    @classmethod
    def from_env(cls, gemeenten: Iterable[str]) -> ExportKeys:
        by_variable = env_secrets(export_key_variable(g) for g in gemeenten)
        return cls(per_gemeente={g: by_variable[export_key_variable(g)] for g in gemeenten
                                 if export_key_variable(g) in by_variable})

    def key(self, gemeente: str) -> bytes:
        """The municipality's key; a missing or empty one is an error that names the variable."""
        value = secret_value(self.per_gemeente.get(gemeente))
        if not value:
            name = export_key_variable(gemeente)
            raise ExportKeyMissing(
                f"{gemeente}: environment variable {name} (the pseudonymisation key of this municipality) is not "
                "set; set it to a long random secret that is the same every night (docs/exports.md, 'The pseudonym "
                "and its key') and reload the code location"
            )
        return value.encode("utf-8")


class AlertSalt(dg.ConfigurableResource):
    """The installation's secret salt of the alert ids (docs/alerts.md): without it nobody can test a BSN
    against an id. Fails closed: no night records alerts without it."""

    salt: str | None = None  # dg.EnvVar(SWV_ALERT_SALT)

    @classmethod
    def from_env(cls) -> AlertSalt:
        return cls(salt=env_secret(ALERT_SALT_ENV))

    def value(self) -> bytes:
        salt = secret_value(self.salt)
        if not salt:
            raise SecretMissing(
                f"environment variable {ALERT_SALT_ENV} (the secret salt of the alert ids) is not set; set it to a "
                "long random secret that stays the same across nights (a new salt gives every open alert a new id) "
                "and reload the code location"
            )
        return salt.encode("utf-8")
