"""Encrypted, signed backups of a whole deployment (backend dumps + keystore) in age format.

See docs/backup-format.md. Python API:
    create_backup(output, recipients, cnf, signing_key, ...) -> BackupResult
    verify_backup(path, identities, trusted) -> Verified
    restore_backup(path, identities, trusted, cnf, ...) -> RestoreResult
"""

from backup.age import AgeError, AgeReader, AgeWriter, Identity, Recipient
from backup.create import BackupError, BackupResult, create_backup
from backup.reader import BackupInvalid, Verified
from backup.restore import RestoreError, RestoreResult, restore_backup, verify_backup

__all__ = [
    "AgeError", "AgeReader", "AgeWriter", "BackupError", "BackupInvalid", "BackupResult",
    "Identity", "Recipient", "RestoreError", "RestoreResult", "Verified", "create_backup",
    "restore_backup", "verify_backup",
]
