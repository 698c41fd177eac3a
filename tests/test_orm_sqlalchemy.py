"""SQLAlchemy 2 (ORM and Core, PyMySQL driver) through the live proxy on encrypted tables,
against the same program on a plaintext database of the same MariaDB: what an application
written for MySQL sends (its DDL, introspection, CRUD, relationships, pagination) works
unchanged, and gives the same answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")  # a dev dependency (pyproject.toml)

from sqlalchemy import (  # noqa: E402
    DECIMAL,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    create_engine,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import (  # noqa: E402
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
)

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend  # noqa: E402
from tests.conftest import ProxyProcess  # noqa: E402
from tests.rewrite_support import extra_database  # noqa: E402


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(40, collation="utf8mb4_bin"))
    email: Mapped[str] = mapped_column(String(80), unique=True)
    age: Mapped[int | None] = mapped_column(Integer, index=True)
    balance: Mapped[Decimal] = mapped_column(DECIMAL(12, 2), default=Decimal("0.00"))
    born: Mapped[dt.date | None] = mapped_column(Date)
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The server enforces the foreign key, so it must see the column: declared plain.
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), index=True, comment="cryptdb: plain"
    )
    total: Mapped[Decimal] = mapped_column(DECIMAL(10, 2))
    placed: Mapped[dt.datetime] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(String(200))
    customer: Mapped[Customer] = relationship(back_populates="orders")


def _url(host: str, port: int, db: str) -> str:
    return (
        f"mysql+pymysql://{DEMO_USER}:{DEMO_PASSWORD}@{host}:{port}/{db}"
        "?charset=utf8mb4&ssl_disabled=true"
    )


@pytest.fixture
def engines(
    encrypted_proxy: ProxyProcess, backend: DevBackend, database: str
) -> Iterator[tuple[Engine, Engine]]:
    with extra_database(backend, "orm") as plain_db:
        enc = create_engine(_url(encrypted_proxy.host, encrypted_proxy.port, database))
        plain = create_engine(_url("127.0.0.1", backend.port, plain_db))
        try:
            yield enc, plain
        finally:
            enc.dispose()
            plain.dispose()


def _program(engine: Engine) -> list[Any]:
    """An application's life: DDL, inserts, lookups, joins, updates, deletes; what it saw."""
    seen: list[Any] = []
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        people = [
            Customer(
                name=f"n{i}", email=f"p{i}@x.org", age=20 + i % 7, born=dt.date(1990, 1, 1 + i)
            )
            for i in range(12)
        ]
        s.add_all(people)
        s.flush()
        for i, c in enumerate(people):
            for j in range(i % 3):
                s.add(
                    Order(
                        customer=c,
                        total=Decimal(f"{i}.{j}5"),
                        placed=dt.datetime(2024, 1, 1 + i, 12, j),
                        note=None if j else f"first order of {c.name}",
                    )
                )
        s.commit()

    # Each read in a transaction of its own: the first query needing a lower layer peels
    # it, and a transaction that has read the table since an earlier peel holds share locks
    # the peel would wait on (refused with 7004, "COMMIT or ROLLBACK, then retry").
    def read(fn: Any) -> None:
        with Session(engine) as s:
            seen.append(fn(s))

    def customer3(s: Session) -> tuple:
        c = s.get(Customer, 3)
        return (c.name, c.email, c.age, c.balance, c.born)

    read(customer3)
    read(lambda s: s.scalars(select(Customer.id).where(Customer.email == "p5@x.org")).all())
    q1 = select(Customer.name).where(Customer.age.between(22, 24)).order_by(Customer.name)
    read(lambda s: s.scalars(q1).all())
    q2 = select(Customer).where(or_(Customer.age == 20, Customer.age.is_(None)))
    read(lambda s: sorted(x.id for x in s.scalars(q2)))
    q3 = select(Customer).order_by(Customer.id).limit(3).offset(4)
    read(lambda s: [x.email for x in s.scalars(q3)])
    read(lambda s: s.scalar(select(func.count()).select_from(Customer)))
    read(lambda s: s.scalar(select(func.sum(Order.total))))
    q4 = (
        select(Customer.name, func.count(Order.id))
        .join(Order)
        .group_by(Customer.name)
        .order_by(Customer.name)
    )
    read(lambda s: [tuple(r) for r in s.execute(q4)])
    q5 = select(Customer).options(selectinload(Customer.orders)).where(Customer.id <= 4)
    read(lambda s: sorted((x.id, sorted(str(o.total) for o in x.orders)) for x in s.scalars(q5)))
    read(lambda s: s.scalars(select(Order.note).where(Order.note.like("%order%"))).all())
    q6 = select(select(Customer.id).where(Customer.name == "n7").exists())
    read(lambda s: s.scalar(q6))  # SELECT EXISTS (...) AS anon_1
    q7 = select(Customer.id).where(Customer.orders.any(Order.total > 5)).order_by(Customer.id)
    read(lambda s: s.scalars(q7).all())  # a correlated EXISTS
    with Session(engine) as s:
        c = s.get(Customer, 2)
        c.balance = Decimal("10.50")
        c.name = "renamed"
        s.commit()
        s.execute(sqlalchemy.update(Customer).where(Customer.id == 2).values(age=Customer.age + 1))
        o = s.scalars(select(Order).where(Order.customer_id == 5)).first()
        s.delete(o)
        s.commit()
        c = s.get(Customer, 2)
        seen.append((c.name, c.age, c.balance))
        seen.append(s.scalar(select(func.count(Order.id)).where(Order.customer_id == 5)))
    with engine.connect() as conn:
        seen.append(conn.execute(text("SELECT name FROM customer WHERE id = :i"), {"i": 2}).all())
    insp = inspect(engine)
    seen.append(sorted(insp.get_table_names()))
    for table in ("customer", "orders"):
        seen.append([(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)])
        seen.append(insp.get_pk_constraint(table)["constrained_columns"])
        seen.append(insp.get_foreign_keys(table))  # parsed from SHOW CREATE TABLE
        seen.append(
            sorted(
                (i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(table)
            )
        )
    return seen


def test_sqlalchemy_application_matches_plaintext(engines) -> None:
    enc, plain = engines
    expected = _program(plain)
    got = _program(enc)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, i
