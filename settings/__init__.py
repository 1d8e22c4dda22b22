"""Configuration shared by every layer: where runtime state lives and what the region looks like."""
