# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The small deterministic hospital held by the FHIR and HL7 test peers.

Both peers serve exactly these records, each in its own wire format, so that
the same expectations hold whatever transport a test uses.  Times are
aware (China Standard Time); transports hand them back as naive UTC."""
import dataclasses
import datetime as dt
import json as _json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

CST = dt.timezone(dt.timedelta(hours=8), 'CST')

# The identifier system of the keys HRP puts on the charges it posts
# (FHIR ChargeItem.identifier.system) and the sending application that
# marks them in HL7 (MSH-3)
HRP_KEY_SYSTEM = 'urn:hrp:charge-key'
HRP_APPLICATION = 'HRP'


@dataclasses.dataclass(frozen=True)
class PatientRecord:
    id: str
    family: str
    given: str
    sex: str
    birth_date: Optional[dt.date]

    @property
    def name(self):
        "The name as the transports render it"
        if _cjk(self.family + self.given):
            return self.family + self.given
        return f'{self.given} {self.family}'


@dataclasses.dataclass(frozen=True)
class AdmissionRecord:
    number: str                 # 住院号 (or an outpatient visit number)
    encounter_id: str
    patient: str
    klass: str                  # IMP inpatient, AMB outpatient
    ward: Optional[str]
    department: Optional[str]
    admitted: dt.datetime
    discharged: Optional[dt.datetime] = None


@dataclasses.dataclass(frozen=True)
class SurgeryRecord:
    number: str                 # 手术流水号
    procedure_id: str
    admission: str
    code: str
    display: str
    date: dt.datetime
    theatre: str
    surgeon: str
    status: str                 # FHIR Procedure.status


@dataclasses.dataclass(frozen=True)
class ChargeItemRecord:
    code: str
    name: str
    unit: str
    price: Decimal
    insurance_code: Optional[str]
    active: bool = True


@dataclasses.dataclass(frozen=True)
class ForeignCharge:
    "A charge line that another system (the pharmacy) posted"
    his_reference: str
    admission: str
    charge_item: str
    quantity: Decimal
    source: str
    key: str


def _cjk(text):
    return any('\u4e00' <= c <= '\u9fff' for c in text)


PATIENTS = [
    PatientRecord('P0001', '张', '建华', 'male', dt.date(1958, 3, 14)),
    PatientRecord('P0002', '李', '秀英', 'female', dt.date(1971, 11, 2)),
    PatientRecord('P0003', 'Müller', 'Anna', 'female', dt.date(1985, 6, 30)),
    PatientRecord('P0004', '王', '小明', 'male', None),
    ]

ADMISSIONS = [
    AdmissionRecord(
        'ZY2026000101', 'E101', 'P0001', 'IMP', '心内科一病区', 'XNK',
        dt.datetime(2026, 10, 30, 9, 15, tzinfo=CST)),
    AdmissionRecord(
        'ZY2026000102', 'E102', 'P0002', 'IMP', '骨科二病区', 'GK',
        dt.datetime(2026, 11, 1, 14, 40, tzinfo=CST)),
    AdmissionRecord(
        'ZY2026000088', 'E088', 'P0003', 'IMP', '普外科病区', 'PWK',
        dt.datetime(2026, 10, 2, 8, 0, tzinfo=CST),
        dt.datetime(2026, 10, 12, 10, 30, tzinfo=CST)),
    # An outpatient visit: never found as an admission
    AdmissionRecord(
        'MZ2026109876', 'E901', 'P0004', 'AMB', None, 'NK',
        dt.datetime(2026, 11, 3, 10, 5, tzinfo=CST)),
    ]

SURGERIES = [
    SurgeryRecord(
        'SS20261101001', 'PR1001', 'ZY2026000101', '36.0601',
        '冠状动脉药物洗脱支架置入术',
        dt.datetime(2026, 11, 1, 10, 0, tzinfo=CST), '第3手术室', '王建国',
        'completed'),
    SurgeryRecord(
        'SS20261102003', 'PR1003', 'ZY2026000102', '81.5401',
        '全膝关节置换术',
        dt.datetime(2026, 11, 2, 8, 30, tzinfo=CST), '第1手术室', '刘强',
        'completed'),
    SurgeryRecord(
        'SS20261104007', 'PR1007', 'ZY2026000102', '81.5402',
        '膝关节翻修术',
        dt.datetime(2026, 11, 4, 13, 0, tzinfo=CST), '第1手术室', '刘强',
        'preparation'),
    ]

CHARGE_ITEMS = [
    ChargeItemRecord(
        'C31010001', '冠状动脉药物洗脱支架', '个', Decimal('6800.00'),
        'C03130100100001'),
    ChargeItemRecord(
        'C31020002', '人工膝关节假体', '套', Decimal('25600.00'),
        'C03140200300002'),
    ChargeItemRecord(
        'C14010003', '一次性使用无菌注射器', '支', Decimal('0.85'),
        'C14010100100003'),
    ChargeItemRecord(
        'C99990009', '停用的收费项目', '次', Decimal('1.00'), None,
        active=False),
    ]

FOREIGN_CHARGES = [
    ForeignCharge(
        'PH-000731', 'ZY2026000101', 'C14010003', Decimal('4'),
        'PHARMACY', 'PH-000731'),
    ]


def patient(id_):
    return next(p for p in PATIENTS if p.id == id_)


def admission(number):
    return next((a for a in ADMISSIONS if a.number == number), None)


def admission_by_encounter(encounter_id):
    return next(
        (a for a in ADMISSIONS if a.encounter_id == encounter_id), None)


def charge_item(code):
    return next((c for c in CHARGE_ITEMS if c.code == code), None)


def surgeries_of(number):
    return [s for s in SURGERIES if s.admission == number]


def surgery(number):
    return next((s for s in SURGERIES if s.number == number), None)


# The bookkeeping both peers share: fault injection and the record of the
# charges they applied, driven by a small JSON control server
# (POST /fault, POST /reset, POST /auth, GET /events) on its own port.

# delay: apply the request, then answer after `delay` seconds (lost ack);
# error: HTTP 500 / HL7 AE with ERR-3 207 (retry), nothing applied;
# reject: HTTP 422 / HL7 AR, nothing applied;
# drop: close the connection without an answer, nothing applied;
# garbage: answer bytes that are not FHIR JSON / not HL7, nothing applied;
# invalid: answer well-formed JSON / HL7 with an invalid content.
FAULT_MODES = {'delay', 'error', 'reject', 'drop', 'garbage', 'invalid'}


class PeerState:
    "Faults to inject and charges applied, shared by the peer's threads"

    def __init__(self, on_reset=None):
        self.lock = threading.RLock()
        self.faults = []
        self.events = []
        self.auth = None
        self._on_reset = on_reset

    def set_fault(self, mode, count=1, delay=0.0, match=None):
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        with self.lock:
            self.faults.append({
                    'mode': mode, 'count': int(count),
                    'delay': float(delay), 'match': match or ''})

    def take_fault(self, kind):
        """Return the first fault whose match words all appear in kind
        (e.g. 'POST ChargeItem', 'DFT P03') and count it down"""
        words = set(kind.split())
        with self.lock:
            for fault in self.faults:
                if set(fault['match'].split()) <= words:
                    fault['count'] -= 1
                    if fault['count'] <= 0:
                        self.faults.remove(fault)
                    return dict(fault)
        return None

    def record(self, event, key, his_reference, **extra):
        with self.lock:
            self.events.append({
                    'event': event, 'key': key,
                    'his_reference': his_reference,
                    'at': time.time(), **extra})

    def reset(self):
        with self.lock:
            self.faults.clear()
            self.events.clear()
            self.auth = None
        # Outside the lock: the peer's own lock is taken before this one
        # when a charge is recorded
        if self._on_reset:
            self._on_reset()


class _ControlHandler(BaseHTTPRequestHandler):
    server_version = 'HRPPeerControl/1'

    def log_message(self, format, *args):
        pass

    def _reply(self, status, data):
        body = _json.dumps(data).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        state = self.server.state
        if self.path == '/events':
            with state.lock:
                self._reply(200, {'events': list(state.events)})
        elif self.path == '/health':
            self._reply(200, {'ok': True})
        else:
            self._reply(404, {'error': 'unknown path'})

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get('Content-Length') or 0)
        try:
            data = _json.loads(self.rfile.read(length) or b'{}')
            if self.path == '/fault':
                state.set_fault(**data)
            elif self.path == '/reset':
                state.reset()
            elif self.path == '/auth':
                with state.lock:
                    state.auth = data or None
            else:
                return self._reply(404, {'error': 'unknown path'})
        except (ValueError, TypeError) as exception:
            return self._reply(400, {'error': str(exception)})
        self._reply(200, {'ok': True})


def start_control_server(state, port=0):
    "Serve the control API in a thread; return the server"
    server = ThreadingHTTPServer(('127.0.0.1', port), _ControlHandler)
    server.daemon_threads = True
    server.state = state
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# What the transports must answer for these records

def utc(value):
    "Return an aware datetime as the naive UTC datetime Tryton stores"
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def inpatient_numbers():
    return [a.number for a in ADMISSIONS if a.klass == 'IMP']


def expected_patient(number):
    "The fields of his.Patient every transport must return"
    a = admission(number)
    p = patient(a.patient)
    return {
        'inpatient_number': a.number,
        'patient_id': p.id,
        'name': p.name,
        'sex': p.sex,
        'birth_date': p.birth_date,
        'ward': a.ward,
        'department': a.department,
        'admission_date': utc(a.admitted),
        'discharge_date': utc(a.discharged),
        }


def expected_surgery(s):
    "The fields of his.Surgery every transport must return"
    a = admission(s.admission)
    return {
        'surgery_number': s.number,
        'inpatient_number': a.number,
        'patient_id': a.patient,
        'procedure': f'{s.code} {s.display}',
        'date': utc(s.date),
        'surgeon': s.surgeon,
        }
