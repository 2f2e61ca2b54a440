"""Why a DA's action was refused; the message is for the DA."""

from __future__ import annotations


class RequestRefused(Exception):
    """A request cannot be made, approved or rejected; the message is for the DA."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestForbidden(RequestRefused):
    """The DA's role or identity does not allow the action at all."""
