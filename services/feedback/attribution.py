"""Who a read is attributed to, and the keyed pseudonyms a read is stored under.

A read's reader comes from the authenticated caller, never only from the request body:

- a **clinician** (a radiologist's own credentials) records reads as themself; the request's
  ``reader_pseudonym`` must be empty or the caller's own principal;
- a **reading system** vouches for the reader it names: ``reader_pseudonym`` is required, and the reader
  is recorded within that system's namespace, so one system cannot attribute reads to another's readers;
- in insecure development mode the request's ``reader_pseudonym`` is taken as given.

The stored reader and idempotency key are keyed HMAC pseudonyms (the key the gateway uses), so neither a
reader's account name nor a caller's key is kept raw; the idempotency key is scoped to the caller, so two
callers' keys never collide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from services.feedback.domain import RecordReadCommand
from services.runtime.auth import CLINICIAN, READING_SYSTEM, Caller
from services.runtime.errors import InvalidArgument, PermissionDenied
from services.runtime.pseudonyms import READ_KEY, READER, Pseudonymiser


def _scoped(scope: str, value: str) -> str:
    return f"{len(scope)}:{scope}|{value}"


#: Records a refusal: (full method name, reason, caller's role).
DenialHook = Callable[[str, str, str], None]
RECORD_READ = "/radguard.feedback.v1.Feedback/RecordRead"


def _ignore(method: str, reason: str, role: str) -> None:
    return None


@dataclass(frozen=True)
class ReadAttribution:
    """Pseudonymises reads' keys and readers for the calling principal.

    Attributes:
        pseudonymiser: The shared keyed HMAC.
        on_denied: Told of every refused attribution (the composition root counts them with the
            authentication denials).
    """

    pseudonymiser: Pseudonymiser
    on_denied: DenialHook = field(default=_ignore)

    def key(self, caller: Caller, idempotency_key: str) -> str:
        """The stored form of a caller's idempotency key."""
        return self.pseudonymiser.identifier(READ_KEY, _scoped(caller.principal, idempotency_key))

    def reader(self, caller: Caller, requested: str) -> str:
        """The stored reader of a read recorded by ``caller`` naming ``requested`` (see the module doc).

        Raises:
            PermissionDenied: A clinician names someone else.
            InvalidArgument: A reading system names nobody.
        """
        if caller.role == CLINICIAN:
            if requested and requested != caller.principal:
                self.on_denied(RECORD_READ, "reader_not_caller", caller.role)
                raise PermissionDenied("a clinician records reads as themself: leave reader_pseudonym empty")
            return self.pseudonymiser.identifier(READER, _scoped("", caller.principal))
        if caller.role == READING_SYSTEM:
            if not requested:
                raise InvalidArgument("reader_pseudonym", "is required when a reading system records a read")
            return self.pseudonymiser.identifier(READER, _scoped(caller.principal, requested))
        if caller.insecure:
            return self.pseudonymiser.identifier(READER, _scoped("", requested)) if requested else ""
        self.on_denied(RECORD_READ, "role_not_allowed", caller.role)
        raise PermissionDenied(f"the role {caller.role or 'none'} may not record reads")

    def command(self, caller: Caller, command: RecordReadCommand) -> RecordReadCommand:
        """``command`` with its key and reader replaced by their stored forms."""
        return replace(
            command,
            idempotency_key=self.key(caller, command.idempotency_key),
            reader_pseudonym=self.reader(caller, command.reader_pseudonym),
        )
