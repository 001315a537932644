# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS service contract, free of Tryton and of any wire format.

Every HIS transport (GNU Health JSON-RPC, FHIR R4, HL7 v2.5 MLLP) is a
subclass of :class:`HISTransport` built from a :class:`PeerConfig`; it takes
and returns the plain records below and raises only the errors below, so
that the outbox and the domain modules never see a wire format."""
import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Optional


@dataclasses.dataclass(frozen=True)
class PeerConfig:
    "How to reach a peer: built from a his.endpoint record"
    url: str
    database: Optional[str] = None
    username: Optional[str] = None
    # Never logged, never part of an error message
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


@dataclasses.dataclass(frozen=True)
class Patient:
    "What traceability needs of a patient, and no more"
    inpatient_number: str        # 住院号
    patient_id: str              # the HIS's own identifier of the patient
    name: str
    sex: Optional[str] = None    # 'male', 'female', 'other' or None
    birth_date: Optional[dt.date] = None
    ward: Optional[str] = None
    department: Optional[str] = None   # the HIS's department (code or name)
    admission_date: Optional[dt.datetime] = None
    discharge_date: Optional[dt.datetime] = None


@dataclasses.dataclass(frozen=True)
class Surgery:
    surgery_number: str          # 手术流水号
    inpatient_number: Optional[str]
    patient_id: str
    procedure: Optional[str] = None    # code and/or description
    date: Optional[dt.datetime] = None
    theatre: Optional[str] = None
    surgeon: Optional[str] = None
    state: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ChargeItem:
    "An entry of the HIS's charge catalogue (收费项目)"
    code: str
    name: str
    unit: Optional[str] = None
    price: Optional[Decimal] = None
    insurance_code: Optional[str] = None
    active: bool = True


@dataclasses.dataclass(frozen=True)
class Charge:
    """A charge line to post to the HIS.

    key is the idempotency key: posting the same key twice never creates a
    second charge at the peer (the second post answers the first's
    acknowledgement)."""
    key: str
    inpatient_number: str
    charge_item: str             # ChargeItem.code
    quantity: Decimal
    unit_price: Decimal
    insurance_code: Optional[str] = None
    surgery_number: Optional[str] = None
    department: Optional[str] = None   # ordering department code
    description: Optional[str] = None
    lot: Optional[str] = None
    udi: Optional[str] = None
    date: Optional[dt.datetime] = None


@dataclasses.dataclass(frozen=True)
class ChargeAck:
    "The HIS's acknowledgement of a posted or cancelled charge"
    key: str
    his_reference: str           # the peer's identifier of the charge line
    duplicate: bool = False      # the peer had already seen this key
    cancelled: bool = False


class HISError(Exception):
    "Base of the errors a transport raises; messages never hold credentials"


class PeerUnavailable(HISError):
    """The peer could not be reached or did not answer in time (connection
    refused or dropped, timeout, HTTP 5xx, HL7 AE/NAK that asks to retry):
    the call may be retried with the same idempotency key."""


class MalformedReply(HISError):
    """The peer answered something that cannot be understood: retried with
    back-off, and parked for an administrator when it persists."""


class PeerRejected(HISError):
    """The peer understood and refused the call (unknown charge item,
    validation error, HL7 AR): retrying would not help."""


class NotFound(PeerRejected):
    "The patient, surgery or charge does not exist at the peer"


class HISTransport:
    "The interface each HIS transport implements"

    def __init__(self, config: PeerConfig):
        self.config = config

    def find_patient(self, inpatient_number: str) -> Patient:
        "Return the patient of the admission; raise NotFound if unknown"
        raise NotImplementedError

    def find_surgeries(self, inpatient_number: Optional[str] = None,
            surgery_number: Optional[str] = None) -> list[Surgery]:
        """Return the surgeries of the patient admitted under
        inpatient_number, or the surgery numbered surgery_number (a list of
        at most one); raise NotFound if the admission is unknown"""
        raise NotImplementedError

    def post_charge(self, charge: Charge) -> ChargeAck:
        "Post the charge exactly once per charge.key"
        raise NotImplementedError

    def cancel_charge(self, key: str) -> ChargeAck:
        """Cancel the charge posted under key, exactly once: cancelling an
        already cancelled charge answers the first cancellation"""
        raise NotImplementedError

    def list_charges(self, inpatient_number: Optional[str] = None,
            since: Optional[dt.datetime] = None) -> list[ChargeAck]:
        """The charges the peer holds that carry one of our keys (for the
        reconciliation report)"""
        raise NotImplementedError

    def list_charge_items(self) -> list[ChargeItem]:
        "The peer's charge catalogue"
        raise NotImplementedError

    def close(self):
        "Release connections"
