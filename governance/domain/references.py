"""Checks on a proposed reference profile, before governance records it as a version's renewal.

A renewed reference comes from a production or shadow period of the version, so it is labelled by
radiologists' reads, as the live windows it will judge are, and its period states its dates and counts.
Errors name the request's field (``profile.sha256``, ``profile.period.reads``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from governance.domain.model import ReferencePeriod
from kernel.digest import sha256_file
from services.runtime.errors import InvalidArgument

#: How a reference may be labelled (registration accepts both; a renewal only ``reads``).
REFERENCE_LABELS = ("reads", "ground_truth")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_URI = 2048


def validate_proposal(  # noqa: PLR0912 - one check per field
    uri: str, sha256: str, period: ReferencePeriod | None, field: str = "profile"
) -> None:
    """Refuse a proposed reference whose fields are malformed or whose period is not a reads period.

    Raises:
        InvalidArgument: Naming the first bad field.
    """
    if not uri.strip():
        raise InvalidArgument(f"{field}.uri", "required")
    if len(uri) > _MAX_URI:
        raise InvalidArgument(f"{field}.uri", f"must be at most {_MAX_URI} characters")
    if not _SHA256.fullmatch(sha256):
        raise InvalidArgument(f"{field}.sha256", "must be 64 lowercase hex digits")
    where = f"{field}.period"
    if period is None:
        raise InvalidArgument(where, "required (labelled_by, counts, start_time and end_time of the period)")
    if period.labelled_by not in REFERENCE_LABELS:
        raise InvalidArgument(f"{where}.labelled_by", f"must be one of {', '.join(REFERENCE_LABELS)}")
    if period.labelled_by != "reads":
        raise InvalidArgument(
            f"{where}.labelled_by",
            "must be 'reads': a renewed reference comes from a production or shadow period, labelled as windows are",
        )
    for name in ("studies", "reads", "read_positives"):
        if getattr(period, name) < 0:
            raise InvalidArgument(f"{where}.{name}", "must be >= 0")
    if period.reads > period.studies:
        raise InvalidArgument(f"{where}.reads", "cannot exceed studies")
    if period.read_positives > period.reads:
        raise InvalidArgument(f"{where}.read_positives", "cannot exceed reads")
    if period.reads == 0:
        raise InvalidArgument(f"{where}.reads", "must be > 0: a reference labelled by reads needs reads")
    if period.start is None:
        raise InvalidArgument(f"{where}.start_time", "required")
    if period.end is None:
        raise InvalidArgument(f"{where}.end_time", "required")
    if period.start > period.end:
        raise InvalidArgument(f"{where}.start_time", "must not be after end_time")


#: Largest profile file hashed when a renewal is proposed (the shipped 50,000-study profiles are ~30 MB).
MAX_PROFILE_BYTES = 2 * 1024**3


def local_path(uri: str, field: str = "profile") -> Path | None:
    """The file a ``file://`` URI names on this host; None for any other scheme (checked where it is read).

    Raises:
        InvalidArgument: ``<field>.uri`` when it is not a URI at all.
    """
    try:
        parsed = urlparse(uri)
    except ValueError as error:
        raise InvalidArgument(f"{field}.uri", f"is not a valid URI: {error}") from None
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def check_local_file(uri: str, sha256: str, field: str = "profile", roots: Sequence[Path] | None = None) -> None:
    """For a ``file://`` URI on this host: the file must lie in ``roots``, be readable and hash to ``sha256``.

    Args:
        roots: Folders the file must lie in once links are resolved; None allows any path.

    Raises:
        InvalidArgument: ``<field>.uri`` when the file is outside ``roots`` or cannot be read,
            ``<field>.sha256`` when it differs.
    """
    path = local_path(uri, field)
    if path is None:
        return
    if roots is not None:
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root.resolve()) for root in roots):
            # Checked before the file is touched: whether an outside path exists is not revealed.
            raise InvalidArgument(
                f"{field}.uri", "is outside the folders governance reads reference profiles from (reference_roots)"
            )
    try:
        # A device (/dev/zero) or a huge file would hold the command's transaction for ever.
        if not path.is_file():
            raise InvalidArgument(f"{field}.uri", f"{path} is not a readable regular file on the governance host")
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise InvalidArgument(f"{field}.uri", f"{path} is larger than {MAX_PROFILE_BYTES} bytes")
        # Also refuses pseudo-files (/proc, /sys) that report no size and may never end.
        if size == 0:
            raise InvalidArgument(f"{field}.uri", f"{path} is empty")
        actual = sha256_file(path)
    except (OSError, ValueError) as error:
        raise InvalidArgument(
            f"{field}.uri", f"cannot read {path}: {getattr(error, 'strerror', None) or error}"
        ) from None
    # The file's own hash is not echoed: the caller learns only whether the bytes match what they named.
    if actual != sha256:
        raise InvalidArgument(f"{field}.sha256", f"does not match the bytes of {path}")
