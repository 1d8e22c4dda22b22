"""The pseudonym of a pupil in a municipality's export (domain.md §9 item 14: per-recipient keyed pseudonyms)."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key: the manifest shows it, so a receiver sees when the key
    (and with it every pseudonym) changed, without learning anything about the key itself."""
    return hmac.new(key, b"swv-export-sleutel-id", hashlib.sha256).hexdigest()[:12]


def pseudonymise(keys: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256(key, pupil key) as 64 hex characters: stable for one key, unrelated across keys.

    Without the key the pseudonym cannot be traced back to a BSN, not even by hashing every possible
    BSN (there are only a billion), which is why a plain hash would not do.
    """
    keyed = hmac.new(key, digestmod=hashlib.sha256)  # the key's pads hashed once, copied per pupil

    def digest(message: bytes, copy=keyed.copy) -> str:
        mac = copy()
        mac.update(message)
        return mac.hexdigest()

    values = keys.to_numpy(dtype=object, na_value=None)
    digests = [None if value is None else digest(value.encode("utf-8")) for value in values]
    return pd.Series(digests, index=keys.index, dtype="str")
