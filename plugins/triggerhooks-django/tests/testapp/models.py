from __future__ import annotations

from django.db import models


class Order(models.Model):
    """Saved in the same transaction as a fire_on_commit, to see both land or neither."""

    number = models.CharField(max_length=40, unique=True)


class Question(models.Model):
    """As Caluma's: a question of a form, its slug the primary key."""

    slug = models.SlugField(max_length=150, primary_key=True)


class Answer(models.Model):
    """As Caluma's: an answer to a question; its saves are what Django signals tests receive."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="answers")
    value = models.CharField(max_length=255, blank=True)
