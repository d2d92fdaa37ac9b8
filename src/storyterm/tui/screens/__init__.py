"""Modal screens: help, model switch, open draft, confirm."""
