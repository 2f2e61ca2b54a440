"""The connectivity test's undo as a task: beat runs it every minute."""

from __future__ import annotations

from celery import shared_task

from authn.rehearsal import sessions_undo_due


# No retry: the next minute's run undoes whatever this one did not, and a session's undo is
# claimed in the database, so a run that overlaps another does nothing twice.
@shared_task(ignore_result=True)
def connectivity_undo_task() -> int:
    """Undo the account changes of every ended session that is not carried forward; return
    the number of accounts put back."""
    return sum(counts["accounts"] for counts in sessions_undo_due())
