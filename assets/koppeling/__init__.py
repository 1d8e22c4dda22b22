"""Koppeling: one identity per pupil across every source, and the pupil history."""
