"""Thin tasks: load by id, call the service, let Celery retry on a mail failure."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from dms import bulk, notifications


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def checkers_notify(change_id: int) -> None:
    notifications.checkers_notify(change_id=change_id)


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def email_changed_notify(user_id: int, old: str, new: str) -> None:
    notifications.email_changed_notify(user_id=user_id, old=old, new=new)


@shared_task
def bulk_check(batch_id: int) -> None:
    bulk.bulk_check(batch_id=batch_id)


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def bulk_notify(batch_id: int) -> None:
    bulk.bulk_notify_send(batch_id=batch_id)
