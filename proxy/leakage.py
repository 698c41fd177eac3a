"""What the server can learn, per column: the data of `cryptdb leakage`."""

from __future__ import annotations

from proxy.schema import Schema

_LEARNS = {
    ("eq", "rnd"): "nothing",
    ("eq", "det"): "equality",
    ("ord", "rnd"): "nothing",
    ("ord", "ope"): "order",
    ("add", "hom"): "sums only",
    ("search", "search"): "word equality",
}


def leakage(schema: Schema) -> list[dict[str, str]]:
    """Per column: each onion's current layer, what the server can learn from it, and the
    policy minimum (the data of `cryptdb leakage`). NULL-ness and text lengths leak at every
    layer; OPE also reveals roughly the upper half of each value's bits (text: the order of
    8-byte prefixes); DET equality spans the join group, if any."""
    groups = {gid: name for name, gid in schema.join_groups.items()}
    rows = []
    for db in schema.databases.values():
        for t in db.tables.values():
            for c in t.columns:
                row = {"database": db.name, "table": t.name, "column": c.name}
                if c.plain:
                    why = "AUTO_INCREMENT" if c.auto_increment else "policy plain"
                    row.update(onions="-", learns=f"everything ({why})", minimum="-")
                else:
                    row["onions"] = ", ".join(
                        f"{o}={layer.upper()}" for o, layer in c.onions.items()
                    )
                    learns = [_LEARNS[(o, layer)] for o, layer in c.onions.items()]
                    worst = [
                        x
                        for x in ("order", "equality", "word equality", "sums only")
                        if x in learns
                    ]
                    text = ", ".join(worst) if worst else "nothing"
                    if c.join_group is not None and c.onions.get("eq") == "det":
                        text += f" (equality across join group {groups.get(c.join_group)})"
                    row.update(learns=text, minimum=c.min_level)
                rows.append(row)
    return rows
