"""Overdracht: the warm-handover files, PO → VO school and VO → MBO college."""
