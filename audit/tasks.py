"""Thin tasks: load by id, call the service."""

from __future__ import annotations

from celery import shared_task

from audit import exports


# Acknowledged only once done: a worker that dies mid-file hands the export to another,
# which writes it again from the start (the service never marks a half file done).
@shared_task(acks_late=True, reject_on_worker_lost=True)
def audit_export_write(export_id: int) -> None:
    exports.audit_export_write(export_id=export_id)
