"""The numbers and texts of the municipal exports, with their documented defaults (docs/exports.md).

The monitor uses the same settings (small numbers, waiting norms), so a figure means the same in both.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Legal basis per exported dataset (domain.md §7, §9 item 14). Defaults; a region overrides them in
# ``ExportSettings.grondslag`` once its convenant names the articles.
GRONDSLAG = {
    "monitoring": "Wet passend onderwijs / Jeugdwet art. 7.4.0 convenant",
    "aggregaten": "geanonimiseerd, geen persoonsgegevens",
    "datadictionary": "beschrijving, geen persoonsgegevens",
    "manifest": "verantwoording, geen persoonsgegevens",
}


class ExportSettings(BaseModel):
    """The numbers and texts of the exports, with the documented defaults (docs/exports.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_small_count: int = Field(default=5, ge=1, description="Counts 1..this are suppressed (domain.md §7).")
    intake_norm_weeks: int = Field(default=4, gt=0, description="Aanmelding to intake (domain.md §5.3).")
    start_norm_weeks: int = Field(default=10, gt=0, description="Intake to start of care (domain.md §5.3).")
    total_norm_weeks: int = Field(default=14, gt=0, description="Aanmelding to start of care (domain.md §5.3).")
    age_bands: tuple[int, ...] = Field(default=(12, 14, 16, 18), description="Lower bounds of the age bands.")
    grondslag: dict[str, str] = Field(default_factory=lambda: dict(GRONDSLAG),
                                      description="Legal basis per dataset: monitoring, aggregaten, ...")

    @field_validator("grondslag")
    @classmethod
    def _every_dataset_has_a_basis(cls, value: dict[str, str]) -> dict[str, str]:
        missing = sorted(set(GRONDSLAG) - {k for k, v in value.items() if v.strip()})
        if missing:
            raise ValueError(f"grondslag: no legal basis for {missing}; every exported dataset needs one")
        return value
