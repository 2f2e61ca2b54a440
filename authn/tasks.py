"""Thin tasks: load by id, call the service, let Celery retry on a mail failure."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from authn import activation, otp


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def email_otp_deliver(device_id: int) -> None:
    otp.email_otp_send(device_id=device_id)


@shared_task(autoretry_for=(SMTPException, OSError), retry_backoff=True, max_retries=5)
def activation_deliver(user_id: int) -> None:
    activation.activation_email_send(user_id=user_id)
