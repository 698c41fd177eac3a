"""Django's ORM (its MySQL backend over PyMySQL) through the live proxy on encrypted tables,
against the same program on a plaintext database of the same MariaDB: migrations' DDL
(CREATE TABLE, then ALTER TABLE ADD CONSTRAINT ... FOREIGN KEY), INSERT ... RETURNING,
lookups, joins, annotate() (GROUP BY the primary key, ORDER BY 1), aggregates, updates,
cascading deletes and introspection give the same answers."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pymysql
import pytest

django = pytest.importorskip("django")  # a dev dependency (pyproject.toml)

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend  # noqa: E402
from tests.conftest import ProxyProcess  # noqa: E402
from tests.rewrite_support import extra_database  # noqa: E402


def _database(host: str, port: int, name: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": name,
        "USER": DEMO_USER,
        "PASSWORD": DEMO_PASSWORD,
        "HOST": host,
        "PORT": port,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": name},
    }


@pytest.fixture(scope="module")
def orm(
    encrypted_proxy: ProxyProcess, backend: DevBackend
) -> Iterator[tuple[types.ModuleType, Any]]:
    # Django's MySQL backend wants mysqlclient; PyMySQL stands in for it (a documented shim).
    # Importing MySQLdb.err & co. loads PyMySQL's modules a second time and rebinds them as
    # attributes of the pymysql package (its module object *is* MySQLdb): pymysql.err
    # would then hold other exception classes than the ones every later test catches.
    saved = dict(vars(pymysql))
    pymysql.version_info = (2, 2, 4, "final", 0)  # type: ignore[assignment]
    pymysql.install_as_MySQLdb()
    from django.conf import settings

    with extra_database(backend, "dje") as enc_db, extra_database(backend, "djp") as plain_db:
        if not settings.configured:
            settings.configure(
                DATABASES={
                    "default": _database("127.0.0.1", backend.port, plain_db),
                    "enc": _database(encrypted_proxy.host, encrypted_proxy.port, enc_db),
                },
                INSTALLED_APPS=["tests.django_shop"],
                USE_TZ=False,
                DEFAULT_AUTO_FIELD="django.db.models.AutoField",
            )
        django.setup()
        from django.db import connections

        from tests.django_shop import models as app

        try:
            yield app, connections
        finally:
            connections.close_all()
            for name in [m for m in sys.modules if m == "MySQLdb" or m.startswith("MySQLdb.")]:
                del sys.modules[name]
            for key in set(vars(pymysql)) - set(saved):
                delattr(pymysql, key)
            for key, value in saved.items():
                setattr(pymysql, key, value)


def _program(app: Any, connections: Any, alias: str) -> list[Any]:
    from django.db import transaction
    from django.db.models import Count, Exists, F, OuterRef, Sum

    Author, Book = app.Author, app.Book  # noqa: N806
    with connections[alias].schema_editor() as editor:
        editor.create_model(Author)
        editor.create_model(Book)
    authors = Author.objects.using(alias)
    books = Book.objects.using(alias)
    ann = authors.create(name="ann", age=30)
    bob = authors.create(name="bob", age=40)
    authors.create(name="cy", age=None)
    books.create(title="x", author=ann, price=Decimal("9.50"))
    books.create(title="y", author=bob, price=Decimal("19.50"))
    books.create(title="z", author=bob, price=Decimal("1.25"))
    seen: list[Any] = [
        list(authors.filter(age__gt=25).order_by("name").values_list("name", flat=True)),
        authors.filter(name="ann").exists(),
        authors.filter(name="nobody").exists(),
        authors.count(),
        list(
            books.filter(author__name="bob").order_by("title").values_list("title", "author__name")
        ),
        books.aggregate(Sum("price")),
        list(authors.annotate(n=Count("book")).order_by("name").values_list("name", "n")),
        list(authors.filter(age__isnull=True).values_list("name", flat=True)),
        list(books.values("author").annotate(s=Sum("price")).order_by("author")),  # GROUP BY 1
        list(
            authors.filter(Exists(books.filter(author=OuterRef("pk"))))  # correlated EXISTS
            .order_by("name")
            .values_list("name", flat=True)
        ),
        list(authors.filter(~Exists(books.filter(author=OuterRef("pk")))).values_list("name")),
        list(
            books.filter(price__gte=Decimal("5")).order_by("-price").values_list("title", flat=True)
        ),
        list(authors.order_by("-age", "name")[1:3].values_list("name", flat=True)),
    ]
    seen += [
        list(authors.filter(name__startswith="b").values_list("name", flat=True)),  # LIKE BINARY
        list(authors.filter(name__contains="n").order_by("name").values_list("name", flat=True)),
        list(authors.filter(name__endswith="y").values_list("name", flat=True)),
        list(authors.filter(name__in=["ann", "cy"]).order_by("-name").values_list("id", flat=True)),
        authors.exclude(name="ann").count(),
        authors.get_or_create(name="dee", defaults={"age": 7})[1],
        authors.get_or_create(name="dee", defaults={"age": 8})[1],
    ]
    authors.filter(name="dee").update(age=F("age") + 1)
    with transaction.atomic(using=alias):
        locked = authors.select_for_update().filter(name="dee")
        seen.append([a.age for a in locked])
    authors.filter(name="bob").update(age=41)
    seen.append(authors.get(name="bob").age)
    authors.filter(name="ann").delete()  # cascades to ann's book
    seen.append(sorted(books.values_list("title", flat=True)))
    conn = connections[alias]
    with conn.cursor() as cur:
        tables = conn.introspection.get_table_list(cur)
        # information_schema.TABLES without ORDER BY: in no particular order, on either side
        seen.append(sorted((t.name, t.type) for t in tables if t.name.startswith("django_shop_")))
        constraints = conn.introspection.get_constraints(cur, "django_shop_book")
        seen.append(
            sorted((k, v["columns"], v["foreign_key"], v["index"]) for k, v in constraints.items())
        )
        desc = conn.introspection.get_table_description(cur, "django_shop_author")
        seen.append([(d.name, d.type_code, d.null_ok, d.collation) for d in desc])
    return seen


def test_django_application_matches_plaintext(orm) -> None:
    app, connections = orm
    expected = _program(app, connections, "default")
    got = _program(app, connections, "enc")
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, i
