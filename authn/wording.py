"""How the login pages word a wait: exact, in the unit a person reads, with real plurals."""

from __future__ import annotations

import datetime as dt
import math

from django.utils.translation import gettext as _
from django.utils.translation import ngettext


def seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    """Return the whole seconds from `now` to `moment`, rounded up and at least one.

    Rounded up, so that a person who waits as long as the page says is not refused again.
    """
    return max(1, math.ceil((moment - now).total_seconds()))


def _seconds(count: int) -> str:
    return ngettext("%(count)d second", "%(count)d seconds", count) % {"count": count}


def _minutes(count: int) -> str:
    return ngettext("%(count)d minute", "%(count)d minutes", count) % {"count": count}


def _hours(count: int) -> str:
    return ngettext("%(count)d hour", "%(count)d hours", count) % {"count": count}


def duration_text(seconds: int) -> str:
    """Return a wait as "8 seconds", "2 minutes", "2 minutes 8 seconds" or "3 hours 5 minutes".

    Seconds stay exact up to an hour; beyond it the minutes are rounded up.
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return _seconds(seconds)
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        if not rest:
            return _minutes(minutes)
        return _("%(minutes)s %(seconds)s") % {
            "minutes": _minutes(minutes),
            "seconds": _seconds(rest),
        }
    hours, rest = divmod(math.ceil(seconds / 60), 60)
    if not rest:
        return _hours(hours)
    return _("%(hours)s %(minutes)s") % {"hours": _hours(hours), "minutes": _minutes(rest)}


def code_wait_message(locked_until: dt.datetime, now: dt.datetime) -> str:
    """Word django-otp's refusal of a code that came too soon after a wrong one.

    After n wrong codes the device checks no code for 2^(n-1) seconds (OTP_*_THROTTLE_FACTOR
    is 1), so a right code typed a second after a wrong one is refused unchecked: say so, and
    say how long to wait, rather than calling a single slip "too many".
    """
    wait = duration_text(seconds_until(locked_until, now))
    return _(
        "That code was not checked, because it came too soon after a wrong code. "
        "Wait %(wait)s before you try another code."
    ) % {"wait": wait}
