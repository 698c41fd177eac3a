"""The test application's models: an author with an encrypted name and age, books with an
encrypted title and price and a plain foreign key (the server enforces it)."""

from __future__ import annotations

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=40, db_collation="utf8mb4_bin")
    age = models.IntegerField(null=True)

    class Meta:
        app_label = "django_shop"


class Book(models.Model):
    title = models.CharField(max_length=80)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, db_comment="cryptdb: plain")
    price = models.DecimalField(max_digits=8, decimal_places=2)

    class Meta:
        app_label = "django_shop"
