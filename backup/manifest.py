"""The signed manifest: what the backup holds and the SHA-256 of every member before it.

It is written last (sizes and hashes are known only at the end of the stream) and signed
(see signing.py); a verifier hashes members as they stream past and checks the lot against
the manifest once the signature over it has been checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from backup.archive import KEYSTORE, SUMS, TOP, ArchiveError, Entry

FORMAT = "cryptdb-backup"
VERSION = 1

README_TEXT = f"""\
This is a cryptdb-proxy backup ({FORMAT} v{VERSION}). See docs/backup-format.md.

Without cryptdb (stock tools only):
  age -d -i IDENTITY FILE.age | zstd -d | tar -x      # gzip -d, or nothing, per --compress
  cd {TOP}
  ssh-keygen -Y verify -f ALLOWED_SIGNERS -I backup -n cryptdb-backup \\
      -s manifest.json.sig < manifest.json              # is the manifest ours?
  sha256sum -c SHA256SUMS                             # do the members match?
  grep -F "$(sha256sum SHA256SUMS | cut -d' ' -f1)" manifest.json   # and SHA256SUMS itself?
  cat dump/DB/*.sql | mariadb --defaults-file=CNF NEW_EMPTY_DB
  keystore: the proxy's keystore file, as it was at backup time (keep it 0600)

The dumps hold the database as the backend stores it: the protected columns stay encrypted.
"""


@dataclass
class Manifest:
    data: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)

    @property
    def databases(self) -> list[dict[str, Any]]:
        return list(self.data.get("databases", []))

    @property
    def keystore(self) -> dict[str, Any] | None:
        ks = self.data.get("keystore")
        return dict(ks) if ks else None

    def to_bytes(self) -> bytes:
        doc = dict(self.data)
        doc["entries"] = [e.to_json() for e in self.entries]
        return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArchiveError(f"manifest.json is not valid JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ArchiveError("manifest.json is not a cryptdb-backup manifest")
        if doc.get("version") != VERSION:
            raise ArchiveError(f"unsupported backup format version {doc.get('version')!r}")
        raw_entries = doc.pop("entries", None)
        if not isinstance(raw_entries, list):
            raise ArchiveError("manifest.json lists no entries")
        entries = [Entry.from_json(e) for e in raw_entries]
        dbs = doc.get("databases")
        if not isinstance(dbs, list) or not all(
            isinstance(d, dict)
            and isinstance(d.get("name"), str)
            and isinstance(d.get("parts"), list)
            and isinstance(d.get("tables"), list)
            for d in dbs
        ):
            raise ArchiveError("manifest.json: malformed database list")
        return cls(doc, entries)


def sha256sums(entries: list[Entry]) -> bytes:
    """`sha256sum -c` input, paths relative to the archive's top directory."""
    strip = len(TOP) + 1
    lines = [f"{e.sha256}  {e.name[strip:]}\n" for e in entries if e.type == "file"]
    return "".join(lines).encode()


def check_entries(manifest: Manifest, seen: list[Entry]) -> None:
    """The archive must hold exactly the manifest's entries, in order, with their hashes."""
    expected = {e.name: e for e in manifest.entries}
    for got in seen:
        want = expected.get(got.name)
        if want is None:
            raise ArchiveError(f"{got.name} is in the archive but not in the signed manifest")
        if want != got:
            raise ArchiveError(
                f"{got.name} does not match the signed manifest "
                f"(sha256 {got.sha256}, size {got.size}; "
                f"manifest says sha256 {want.sha256}, size {want.size})"
            )
    names = [e.name for e in seen]
    missing = [n for n in expected if n not in set(names)]
    if missing:
        raise ArchiveError(f"backup incomplete: {missing[0]} (and {len(missing) - 1} more) missing")
    if names != [e.name for e in manifest.entries]:
        raise ArchiveError("archive members are not in the order the signed manifest lists")
    ks = manifest.keystore
    if ks and (ks.get("member") != KEYSTORE or expected.get(KEYSTORE) is None):
        raise ArchiveError("manifest names a keystore the archive does not hold")
    for db in manifest.databases:
        for part in db["parts"]:
            if part not in expected:
                raise ArchiveError(f"manifest database {db['name']!r} names missing part {part}")
    sums = expected.get(SUMS)
    if sums is None:
        raise ArchiveError("backup has no SHA256SUMS member")
