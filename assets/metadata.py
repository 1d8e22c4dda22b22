"""Metadata a data steward sees on every materialization, without personal data.

Previews drop every field the canonical model marks as personal (BSN, onderwijsnummer, names,
postcode, birth date, contact and consent-gated fields): the UI must not become a leak.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from schemas.datasets import MODELS, personal_fields

_PANDERA_TO_TABLE_TYPE = {"str": "string", "bool": "boolean", "boolean": "boolean", "int64": "integer", "Int64": "integer", "float64": "float"}


def safe_columns(frame: pd.DataFrame, dataset: str) -> list[str]:
    hidden = personal_fields(dataset)
    return [c for c in frame.columns if c not in hidden]


def preview_markdown(frame: pd.DataFrame, dataset: str, rows: int = 5) -> str:
    """The first rows, personal fields left out (their names are listed, never their values)."""
    hidden = sorted(personal_fields(dataset) & set(frame.columns))
    shown = frame.loc[:, safe_columns(frame, dataset)].head(rows)
    note = f"\n\n_Personal fields not shown: {', '.join(hidden)}._" if hidden else ""
    return shown.to_markdown(index=False) + note if len(shown.columns) else "(no columns)"


def column_schema(dataset: str) -> dg.TableSchema:
    """``dagster/column_schema`` from the Pandera model: name, type, description, personal flag."""
    columns = []
    for name, column in MODELS[dataset].to_schema().columns.items():
        dtype = str(column.dtype)
        kind = "date" if "datetime" in dtype else _PANDERA_TO_TABLE_TYPE.get(dtype, dtype)
        meta = column.metadata or {}
        tags = " [persoonsgegeven]" if meta.get("personal") else ""
        tags += " [alleen met toestemming]" if meta.get("consent_gated") else ""
        columns.append(dg.TableColumn(name=name, type=kind, description=(column.description or "") + tags,
                                      constraints=dg.TableColumnConstraints(nullable=column.nullable)))
    return dg.TableSchema(columns=columns)
