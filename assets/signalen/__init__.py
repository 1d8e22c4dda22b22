"""Signalen: thuiszitter and outflow alerts, their lifecycle and the lists."""
