"""Bronnen: every partner delivery as an immutable raw snapshot, mapped onto canonical names."""
