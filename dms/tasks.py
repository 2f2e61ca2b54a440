"""Thin tasks: load by id, call the service. Emails go through the outbox instead."""

from __future__ import annotations

from celery import shared_task

from dms import bulk


@shared_task
def bulk_check(batch_id: int) -> None:
    bulk.bulk_check(batch_id=batch_id)
