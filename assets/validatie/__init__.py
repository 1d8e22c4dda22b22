"""Validatie: every raw row checked against its canonical contract; bad rows to quarantine."""
