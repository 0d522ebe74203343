"""The Django project the plugin's tests run: PostgreSQL for Django, Redis for sessions.

Sessions go under a key prefix of this run (deleted at its end); pytest-django
creates its own test database next to ``test``.
"""

from __future__ import annotations

import os
import uuid

PREFIX = os.environ.setdefault("TH_DJANGO_TEST_PREFIX", f"th-django-test-{uuid.uuid4().hex[:10]}")
REDIS_URL = os.environ.get("TH_DJANGO_TEST_REDIS", "redis://127.0.0.1:6379/0")
STORAGE_URL = f"{REDIS_URL}?prefix={PREFIX}"

SECRET_KEY = "triggerhooks-django-tests"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "triggerhooks_django",
    "testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "testproject.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("TH_DJANGO_TEST_DB", "test"),
        "USER": os.environ.get("TH_DJANGO_TEST_DB_USER", "postgres"),
        "HOST": os.environ.get("TH_DJANGO_TEST_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("TH_DJANGO_TEST_DB_PORT", "5432"),
    },
    # Never connected to by the tests: a database that cannot keep sessions.
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users

TRIGGERHOOKS = {
    "storage": STORAGE_URL,
    "receiver_modules": ["testproject.receivers"],
}
