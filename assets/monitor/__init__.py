"""The support-plan monitor (Dagster group ``monitor``): the board's figures, their history and the report."""
