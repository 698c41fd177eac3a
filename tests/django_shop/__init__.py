"""A Django app for tests/test_orm_django.py (imported only once Django is set up)."""
