"""Backups: ``flask backup create DIR`` and ``flask backup restore DIR`` (see docs/backup.md)."""
