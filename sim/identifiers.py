"""Synthetic identifiers: DICOM UIDs under the UUID-derived 2.25 root, patient ids and accession numbers.

All of them are derived from the seeded random streams, so a hospital with the same seed issues the same
identifiers, and they are recognisably synthetic.
"""

from __future__ import annotations

import uuid

#: Root for UIDs derived from UUIDs (ISO/IEC 9834-8): "2.25." followed by the UUID as a decimal integer.
UID_ROOT = "2.25."
#: Prefix that marks a patient id as simulated.
PATIENT_ID_PREFIX = "SIM-"
#: Prefix that marks an accession number as simulated.
ACCESSION_PREFIX = "SIM"
_UID_BYTES = 16
_PATIENT_DIGITS = 10
#: AccessionNumber is a DICOM SH value: at most 16 characters.
_ACCESSION_DIGITS = 16 - len(ACCESSION_PREFIX)


def uid_from_bytes(raw: bytes) -> str:
    """A 2.25 UID from 16 random bytes, stamped as a version-4 UUID so it is a valid UUID as well."""
    if len(raw) != _UID_BYTES:
        raise ValueError(f"a UID needs {_UID_BYTES} random bytes, got {len(raw)}")
    return f"{UID_ROOT}{uuid.UUID(bytes=raw, version=4).int}"


def patient_id(number: int) -> str:
    """A synthetic patient id such as ``SIM-0012345678``."""
    if not 0 <= number < 10**_PATIENT_DIGITS:
        raise ValueError(f"patient number must have at most {_PATIENT_DIGITS} digits, got {number}")
    return f"{PATIENT_ID_PREFIX}{number:0{_PATIENT_DIGITS}d}"


def accession_number(study_index: int) -> str:
    """The accession number of the hospital's ``study_index``-th study, e.g. ``SIM0000000000042``."""
    if not 0 <= study_index < 10**_ACCESSION_DIGITS:
        raise ValueError(f"study index out of range for an accession number: {study_index}")
    return f"{ACCESSION_PREFIX}{study_index:0{_ACCESSION_DIGITS}d}"
