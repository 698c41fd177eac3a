"""Helpers shared by the backup tests and benchmark: keys, sample data, table comparison."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pymysql

from backup import signing
from backup.age import Identity
from backup.mysql import quote_ident
from keystore.files import private_dir, write_private


@dataclass
class Keys:
    identity: Identity
    identity_file: Path
    signing_key_file: Path
    signer_pub: Path

    @property
    def recipient(self):  # type: ignore[no-untyped-def]
        return self.identity.recipient()

    def signing_key(self) -> signing.Ed25519PrivateKey:
        return signing.load_signing_key(self.signing_key_file)

    def trusted(self) -> signing.Ed25519PublicKey:
        return signing.load_public_key(self.signer_pub)


def make_keys(directory: Path) -> Keys:
    """An age identity made by the stock `age-keygen` when present, and a signing key pair."""
    private_dir(directory)
    ident_file = directory / "identity.txt"
    if os.path.exists("/usr/bin/age-keygen"):
        out = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
    else:
        out = str(Identity.generate()) + "\n"
    write_private(ident_file, out)
    line = next(ln for ln in out.splitlines() if ln.startswith("AGE-SECRET-KEY-"))
    key_file = directory / "signing-key"
    signing.generate_signing_key(key_file)
    return Keys(Identity.parse(line), ident_file, key_file, Path(f"{key_file}.pub"))


SCHEMA = [
    """CREATE TABLE patients (
        id INT PRIMARY KEY AUTO_INCREMENT,
        name_enc VARBINARY(128) NOT NULL,  -- stands for an RND/DET onion
        name_iv BIGINT UNSIGNED NOT NULL,
        age_ope DECIMAL(40,0),
        note TEXT,
        blob_col LONGBLOB,
        created DATETIME(6)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE visits (
        id BIGINT PRIMARY KEY,
        patient_id INT NOT NULL,
        cost_hom VARBINARY(512),
        FOREIGN KEY (patient_id) REFERENCES patients(id)
    ) ENGINE=InnoDB""",
    "CREATE TABLE empty_table (id INT PRIMARY KEY) ENGINE=InnoDB",
    "CREATE VIEW patient_names AS SELECT id, name_enc FROM patients",
    """CREATE TRIGGER visits_bi BEFORE INSERT ON visits FOR EACH ROW
        SET NEW.cost_hom = COALESCE(NEW.cost_hom, X'00')""",
    "CREATE PROCEDURE count_visits(OUT n INT) SELECT COUNT(*) INTO n FROM visits",
]

TRICKY = ["plain", "it's \"quoted\"", "back\\slash", "new\nline\r\n", "tab\tzero\0byte",
          "unicode ✓ 日本語 😀", "),(", "';DROP TABLE x;--", "", None]


def fill_sample(conn: pymysql.Connection, rows: int = 2000, blob_bytes: int = 64) -> None:
    """Schema and rows resembling an encrypted deployment, with awkward values."""
    rnd = hashlib.sha256(b"seed")
    with conn.cursor() as cur:
        for stmt in SCHEMA:
            cur.execute(stmt)
        patients, visits = [], []
        for i in range(1, rows + 1):
            rnd = hashlib.sha256(rnd.digest())
            d = rnd.digest()
            blob = (d * (blob_bytes // 32 + 1))[:blob_bytes] if i % 5 else None
            patients.append((
                d[: 16 + i % 17], int.from_bytes(d[:8], "big"), int.from_bytes(d, "big") % 10**39,
                TRICKY[i % len(TRICKY)], blob,
                f"2024-01-{i % 28 + 1:02d} 12:34:56.{i:06d}",
            ))
            visits.append((i * 10, i, d * 8 if i % 3 else None))
        cur.executemany(
            "INSERT INTO patients (name_enc, name_iv, age_ope, note, blob_col, created) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            patients,
        )
        cur.executemany("INSERT INTO visits VALUES (%s, %s, %s)", visits)


def snapshot(conn: pymysql.Connection, database: str) -> dict[str, object]:
    """Every table's rows (ordered), plus definitions of views, triggers and routines."""
    out: dict[str, object] = {}
    db = quote_ident(database)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME",
            (database,),
        )
        for name, kind in cur.fetchall():
            if kind == "VIEW":
                cur.execute(
                    "SELECT VIEW_DEFINITION FROM information_schema.VIEWS "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                    (database, name),
                )
                out[f"view {name}"] = cur.fetchone()[0].replace(f"`{database}`.", "")
                continue
            cur.execute(f"SHOW CREATE TABLE {db}.{quote_ident(name)}")
            out[f"ddl {name}"] = cur.fetchone()[1]
            cur.execute(f"SELECT * FROM {db}.{quote_ident(name)} ORDER BY 1")
            out[f"rows {name}"] = cur.fetchall()
        cur.execute(
            "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA=%s ORDER BY 1",
            (database,),
        )
        out["triggers"] = cur.fetchall()
        cur.execute(
            "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA=%s ORDER BY 1",
            (database,),
        )
        out["routines"] = cur.fetchall()
    return out
