"""Gemeenten: each municipality's export of its own residents, and retention."""
