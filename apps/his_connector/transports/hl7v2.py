# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS over HL7 v2.5 messages framed by MLLP on TCP.

Messages are built and parsed with ``hl7apy`` (v2.5 structures); one
message is sent per connection (0x0B <message> 0x1C 0x0D) and the reply is
read on the same connection.  The message pairs:

- patient: QRY^A19 (QRD-8 = inpatient number, type VN; QRD-9 = DEM)
  answered by ADR^A19 with PID and PV1 (PV1-19 visit number = inpatient
  number, PV1-3 ward, PV1-10 department, PV1-44/45 admission/discharge);
  QAK-2 = NF when unknown;
- surgeries: QRY^A19 with QRD-9 = PRO (QRD-8 = inpatient number, type VN,
  or surgery number, type FILL) answered by ADR^A19 with PID, PV1 and one
  PR1 per surgery (PR1-19 = surgery number, PR1-3 procedure, PR1-5 date,
  PR1-11 surgeon);
- charge: DFT^P03 with EVN, PID, PV1, FT1 (FT1-2 = idempotency key, FT1-6 =
  CG) and OBX for the lot and UDI, answered by ACK (MSA-3 = the HIS's
  charge line); the HIS deduplicates on FT1-2 and flags a duplicate with
  ERR-3 = 205 (severity I);
- cancel: DFT^P03 with FT1-6 = CD (credit) and FT1-2 = the key of the
  charge, after looking the charge up;
- reconciliation: QBP^Q13 (query ZCHG) answered by RTB^K13 rows, with DSC
  continuation;
- catalogue: MFQ^M04 answered by MFR^M04 (MFE, CDM, PRC per item).

Acknowledgements: AA/CA accept; AE/AR (and CE/CR) with ERR-3 = 206
(record locked) or 207 (internal error) raise PeerUnavailable (retry), with
ERR-3 = 204 (unknown key) NotFound, otherwise PeerRejected.  No reply
within the read timeout, a refused or dropped connection raise
PeerUnavailable; a reply that is not MLLP-framed HL7, or that acknowledges
another message, raises MalformedReply."""
import datetime as dt
import re
import socket
import time
import uuid
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from ..his import (
    ChargeAck, ChargeItem, HISTransport, MalformedReply, NotFound, Patient,
    PeerRejected, PeerUnavailable, Surgery)

VERSION = '2.5'
START_BLOCK = b'\x0b'
END_BLOCK = b'\x1c\x0d'
MAX_REPLY = 16 * 1024 * 1024
MAX_PAGES = 200
# HL7 table 0357 error codes
UNKNOWN_KEY = '204'
DUPLICATE_KEY = '205'
RETRY_CODES = {'206', '207'}
CHARGE_QUERY = 'ZCHG^HRP charge list^L'
TS_RE = re.compile(
    r'(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?'
    r'([+-]\d{4})?')


def escape(value):
    "Escape a value for an ER7 component (default encoding characters)"
    value = str(value)
    value = value.replace('\\', '\\E\\')
    for char, sequence in (
            ('|', '\\F\\'), ('^', '\\S\\'), ('&', '\\T\\'), ('~', '\\R\\')):
        value = value.replace(char, sequence)
    # Segment and line breaks cannot be carried in a component
    return re.sub(r'[\r\n]+', ' ', value)


def unescape(value, escape_char='\\'):
    "Undo the ER7 escape sequences of a component"
    if escape_char not in value:
        return value
    e = re.escape(escape_char)
    table = {'F': '|', 'S': '^', 'T': '&', 'R': '~', 'E': escape_char}

    def replace(match):
        code = match.group(1)
        if code in table:
            return table[code]
        if code.startswith('X'):
            try:
                return bytes.fromhex(code[1:]).decode('utf-8')
            except ValueError:
                return ''
        # Highlighting (H, N) and unknown sequences are dropped
        return ''
    return re.sub(f'{e}([^{e}]*){e}', replace, value)


def format_ts(value):
    "Return the HL7 TS of a naive UTC or aware datetime"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.strftime('%Y%m%d%H%M%S%z')


def _cjk(text):
    return any('\u4e00' <= c <= '\u9fff' for c in text)


def join_name(family, given):
    family = (family or '').strip()
    given = (given or '').strip()
    if _cjk(family + given):
        return family + given
    return ' '.join(p for p in (given, family) if p)


def _new_id():
    "A message control id (MSH-10, 20 characters at most)"
    return uuid.uuid4().hex[:20].upper()


class Segment:
    "Read access to the fields of a parsed segment, unescaped"

    def __init__(self, element, separators):
        self.name = element.name
        self.field_sep, self.component_sep, self.repetition_sep, \
            self.escape_char, self.subcomponent_sep = separators
        er7 = element.to_er7()
        parts = er7.split(self.field_sep)
        if self.name == 'MSH':
            # MSH-1 is the field separator itself
            parts = ['MSH', self.field_sep] + parts[1:]
        self.fields = parts

    def raw(self, field):
        return self.fields[field] if field < len(self.fields) else ''

    def repetitions(self, field):
        raw = self.raw(field)
        if self.name == 'MSH' and field <= 2:
            return [raw]
        return raw.split(self.repetition_sep) if raw else []

    def get(self, field, component=1, subcomponent=1, repetition=0):
        reps = self.repetitions(field)
        if repetition >= len(reps):
            return ''
        return self.component(reps[repetition], component, subcomponent)

    def component(self, raw, component=1, subcomponent=1):
        components = raw.split(self.component_sep)
        if component > len(components):
            return ''
        subs = components[component - 1].split(self.subcomponent_sep)
        if subcomponent > len(subs):
            return ''
        return unescape(subs[subcomponent - 1], self.escape_char).strip()


class Reply:
    "A parsed reply: its segments in order"

    def __init__(self, text):
        if not text.startswith('MSH') or len(text) < 8:
            raise MalformedReply("HL7 peer answered something that is not "
                "an HL7 message")
        field_sep = text[3]
        encoding = text[4:8]
        separators = (field_sep,) + tuple(encoding[:4])
        try:
            message = parse_message(
                text.replace('\n', '\r'), find_groups=False)
        except (HL7apyException, ValueError, IndexError,
                KeyError, TypeError, AttributeError) as exception:
            raise MalformedReply(
                "HL7 peer answered an unparsable message: "
                f"{type(exception).__name__}") from exception
        self.segments = [
            Segment(e, separators) for e in message.children]
        self.msh = self.first('MSH')
        if self.msh is None:
            raise MalformedReply("HL7 peer answered a message without MSH")
        self.type = self.msh.get(9, 1)
        self.event = self.msh.get(9, 2)

    def all(self, name):
        return [s for s in self.segments if s.name == name]

    def first(self, name):
        return next((s for s in self.segments if s.name == name), None)


class HL7Transport(HISTransport):
    """HIS transport over HL7 v2.5 and MLLP.

    config.url is mllp://host:port.  The MSH applications and facilities,
    and the time zone of times the HIS sends without an offset, can be set
    on the instance."""
    sending_application = 'HRP'
    sending_facility = 'HRP'
    receiving_application = 'HIS'
    receiving_facility = 'HIS'
    currency = 'CNY'
    # Coding system (CE-3/CE-6) of the charge item code and of its
    # medical-insurance code (医保编码) in FT1-7
    charge_code_system = 'L'
    insurance_code_system = '99INS'
    # Time zone of the HIS's times that carry no offset
    timezone = dt.timezone.utc

    def __init__(self, config, sending_application=None,
            sending_facility=None, receiving_application=None,
            receiving_facility=None, timezone=None):
        super().__init__(config)
        parts = urlsplit(config.url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != 'mllp' or not parts.hostname or not port:
            raise ValueError("The HL7 URL must be mllp://host:port")
        self.address = (parts.hostname, port)
        for name, value in (
                ('sending_application', sending_application),
                ('sending_facility', sending_facility),
                ('receiving_application', receiving_application),
                ('receiving_facility', receiving_facility),
                ('timezone', timezone)):
            if value:
                setattr(self, name, value)

    # Wire

    def _message(self, structure, message_type):
        message = Message(structure, version=VERSION)
        control_id = _new_id()
        message.msh.msh_3 = escape(self.sending_application)
        message.msh.msh_4 = escape(self.sending_facility)
        message.msh.msh_5 = escape(self.receiving_application)
        message.msh.msh_6 = escape(self.receiving_facility)
        message.msh.msh_7 = format_ts(
            dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        message.msh.msh_9 = message_type
        message.msh.msh_10 = control_id
        message.msh.msh_11 = 'P'
        message.msh.msh_12 = VERSION
        message.msh.msh_18 = 'UNICODE UTF-8'
        return message, control_id

    def _send(self, message):
        "Send a message on a new connection and return the reply's text"
        data = message.to_mllp().encode('utf-8')
        what = message.msh.msh_9.to_er7()
        try:
            connection = socket.create_connection(
                self.address, timeout=self.config.connect_timeout)
        except OSError as exception:
            raise PeerUnavailable(
                f"HL7 peer unreachable for {what}: "
                f"{type(exception).__name__}") from exception
        try:
            deadline = time.monotonic() + self.config.read_timeout
            connection.settimeout(self.config.read_timeout)
            connection.sendall(data)
            buffer = b''
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout
                connection.settimeout(remaining)
                chunk = connection.recv(65536)
                if not chunk:
                    if buffer:
                        raise PeerUnavailable(
                            f"HL7 peer closed the connection in the middle "
                            f"of its answer to {what}")
                    raise PeerUnavailable(
                        f"HL7 peer closed the connection without answering "
                        f"{what}")
                buffer += chunk
                if not buffer.startswith(START_BLOCK):
                    raise MalformedReply(
                        f"HL7 peer answered {what} without MLLP framing")
                end = buffer.find(END_BLOCK)
                if end >= 0:
                    break
                if len(buffer) > MAX_REPLY:
                    raise MalformedReply(
                        f"HL7 peer answered {what} with an oversized block")
        except socket.timeout as exception:
            raise PeerUnavailable(
                f"HL7 peer did not answer {what} in time") from exception
        except OSError as exception:
            raise PeerUnavailable(
                f"HL7 peer connection failed during {what}: "
                f"{type(exception).__name__}") from exception
        finally:
            connection.close()
        try:
            return buffer[1:end].decode('utf-8')
        except UnicodeDecodeError as exception:
            raise MalformedReply(
                f"HL7 peer answered {what} with invalid UTF-8"
                ) from exception

    def _exchange(self, message, control_id, expected_types):
        "Send message and return its checked reply"
        reply = Reply(self._send(message))
        msa = reply.first('MSA')
        if msa is None:
            raise MalformedReply(
                f"HL7 peer answered a {reply.type} without MSA")
        if msa.get(2) != control_id:
            raise MalformedReply(
                "HL7 peer acknowledged another message than the one sent")
        code = msa.get(1)
        if code not in {'AA', 'AE', 'AR', 'CA', 'CE', 'CR'}:
            raise MalformedReply(
                "HL7 peer answered an unknown acknowledgement code")
        errors = []
        for err in reply.all('ERR'):
            error_code = err.get(3, 1) or err.get(1, 4, 1)
            text = err.get(8) or err.get(3, 2) or err.get(1, 4, 2)
            errors.append((error_code, err.get(4), text))
        if code not in {'AA', 'CA'}:
            texts = '; '.join(
                ' '.join(p for p in (c, t) if p) for c, _, t in errors
                if c or t) or msa.get(3) or 'no error detail'
            codes = {c for c, _, _ in errors}
            if codes & RETRY_CODES:
                raise PeerUnavailable(
                    f"HL7 peer answered {code}, asking to retry: {texts}")
            if UNKNOWN_KEY in codes:
                raise NotFound(f"HL7 peer does not know it: {texts}")
            raise PeerRejected(f"HL7 peer answered {code}: {texts}")
        if reply.type not in expected_types:
            raise MalformedReply(
                f"HL7 peer answered with a {reply.type} message")
        reply.errors = errors
        return reply

    # Queries

    def _query_admission(self, number, number_type, what):
        message, control_id = self._message('QRY_A19', 'QRY^A19^QRY_A19')
        qrd = message.qrd
        qrd.qrd_1 = format_ts(
            dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        qrd.qrd_2 = 'R'
        qrd.qrd_3 = 'I'
        qrd.qrd_4 = control_id
        qrd.qrd_7 = '1^RD'
        qrd.qrd_8 = escape(number) + '^' * 12 + number_type
        qrd.qrd_9 = what
        reply = self._exchange(message, control_id, {'ADR'})
        qak = reply.first('QAK')
        pid, pv1 = reply.first('PID'), reply.first('PV1')
        if (qak is not None and qak.get(2) == 'NF') or pid is None:
            kind = 'admission' if number_type == 'VN' else 'surgery'
            raise NotFound(f"HL7 peer has no {kind} {number}")
        if pv1 is None:
            raise MalformedReply("HL7 peer answered ADR^A19 without PV1")
        if pv1.get(2) != 'I':
            raise NotFound(f"HL7 peer has no inpatient admission {number}")
        if number_type == 'VN' and pv1.get(19) != number:
            raise MalformedReply(
                "HL7 peer answered about another admission")
        return reply

    def _ts(self, value):
        "Return an HL7 TS as a naive UTC datetime, or None"
        if not value:
            return None
        match = TS_RE.fullmatch(value)
        if not match:
            raise MalformedReply("HL7 peer sent an invalid timestamp")
        year, month, day, hour, minute, second, fraction, offset = (
            match.groups())
        try:
            value = dt.datetime(
                int(year), int(month or 1), int(day or 1), int(hour or 0),
                int(minute or 0), int(second or 0),
                int((fraction or '0').ljust(6, '0')[:6]))
        except ValueError as exception:
            raise MalformedReply(
                "HL7 peer sent an invalid timestamp") from exception
        if offset:
            sign = -1 if offset[0] == '-' else 1
            tz = dt.timezone(sign * dt.timedelta(
                    hours=int(offset[1:3]), minutes=int(offset[3:5])))
        else:
            tz = self.timezone
        value = value.replace(tzinfo=tz)
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    @staticmethod
    def _patient_id(pid):
        ids = pid.repetitions(3)
        for raw in ids:
            if pid.component(raw, 5) == 'MR' and pid.component(raw, 1):
                return pid.component(raw, 1)
        for raw in ids:
            if pid.component(raw, 1):
                return pid.component(raw, 1)
        raise MalformedReply("HL7 peer sent a PID without identifier")

    def find_patient(self, inpatient_number):
        if not inpatient_number:
            raise NotFound("No inpatient number given")
        reply = self._query_admission(inpatient_number, 'VN', 'DEM')
        pid, pv1 = reply.first('PID'), reply.first('PV1')
        birth = self._ts(pid.get(7))
        sex = {'M': 'male', 'F': 'female', 'O': 'other', 'A': 'other'}.get(
            pid.get(8))
        return Patient(
            inpatient_number=inpatient_number,
            patient_id=self._patient_id(pid),
            name=join_name(pid.get(5, 1, 1), pid.get(5, 2)),
            sex=sex,
            birth_date=birth.date() if birth else None,
            ward=pv1.get(3, 1) or pv1.get(3, 9) or None,
            department=pv1.get(10) or None,
            admission_date=self._ts(pv1.get(44)),
            discharge_date=self._ts(pv1.get(45)),
            )

    def find_surgeries(self, inpatient_number=None, surgery_number=None):
        if inpatient_number:
            reply = self._query_admission(inpatient_number, 'VN', 'PRO')
        elif surgery_number:
            try:
                reply = self._query_admission(surgery_number, 'FILL', 'PRO')
            except NotFound:
                # An unknown surgery number is an empty list (his.py)
                return []
        else:
            raise ValueError("inpatient_number or surgery_number is required")
        pid, pv1 = reply.first('PID'), reply.first('PV1')
        patient_id = self._patient_id(pid)
        surgeries = []
        for pr1 in reply.all('PR1'):
            number = pr1.get(19)
            if not number:
                continue
            if surgery_number and number != surgery_number:
                continue
            procedure = ' '.join(
                p for p in (pr1.get(3, 1), pr1.get(3, 2) or pr1.get(4))
                if p) or None
            surgeon = (join_name(pr1.get(11, 2, 1), pr1.get(11, 3))
                or pr1.get(11, 1) or None)
            surgeries.append(Surgery(
                    surgery_number=number,
                    inpatient_number=pv1.get(19) or None,
                    patient_id=patient_id,
                    procedure=procedure,
                    date=self._ts(pr1.get(5)),
                    surgeon=surgeon,
                    ))
        surgeries.sort(key=lambda s: (s.date or dt.datetime.min,
                s.surgery_number))
        return surgeries

    # Charges

    def _dft(self, transaction_type, key, patient_id, patient_name,
            inpatient_number, charge_item, quantity, unit_price=None,
            charge=None):
        message, control_id = self._message('DFT_P03', 'DFT^P03^DFT_P03')
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        message.evn.evn_1 = 'P03'
        message.evn.evn_2 = format_ts(now)
        message.pid.pid_1 = '1'
        message.pid.pid_3 = escape(patient_id) + '^^^^MR'
        if patient_name:
            message.pid.pid_5 = escape(patient_name)
        message.pv1.pv1_1 = '1'
        message.pv1.pv1_2 = 'I'
        message.pv1.pv1_19 = escape(inpatient_number)
        financial = message.add_group('DFT_P03_FINANCIAL')
        ft1 = financial.ft1
        ft1.ft1_1 = '1'
        ft1.ft1_2 = escape(key)
        date = charge.date if charge and charge.date else now
        ft1.ft1_4 = format_ts(date)
        ft1.ft1_5 = format_ts(now)
        ft1.ft1_6 = transaction_type
        code = escape(charge_item) + '^'
        if charge and charge.description:
            code += escape(charge.description)
        code += '^' + self.charge_code_system
        if charge and charge.insurance_code:
            code += '^' + escape(charge.insurance_code) + '^^' + (
                self.insurance_code_system)
        ft1.ft1_7 = code
        if charge and charge.description:
            ft1.ft1_8 = escape(charge.description)
        ft1.ft1_10 = str(quantity)
        if unit_price is not None:
            total = Decimal(quantity) * Decimal(unit_price)
            ft1.ft1_11 = f'{total}&{self.currency}'
            ft1.ft1_12 = f'{Decimal(unit_price)}&{self.currency}'
        if charge and charge.department:
            ft1.ft1_13 = escape(charge.department)
        if charge and charge.surgery_number:
            ft1.ft1_23 = escape(charge.surgery_number)
        observations = []
        if charge and charge.lot:
            observations.append(('LOT^Lot number^L', charge.lot))
        if charge and charge.udi:
            observations.append(
                ('UDI^Unique device identifier^L', charge.udi))
        if observations:
            order = financial.add_group('DFT_P03_FINANCIAL_COMMON_ORDER')
            for i, (identifier, value) in enumerate(observations, 1):
                group = order.add_group('DFT_P03_FINANCIAL_OBSERVATION')
                group.obx.obx_1 = str(i)
                group.obx.obx_2 = 'ST'
                group.obx.obx_3 = identifier
                group.obx.obx_5 = escape(value)
                group.obx.obx_11 = 'F'
        return message, control_id

    def _charge_ack(self, reply, key, cancelled):
        msa = reply.first('MSA')
        duplicate = any(code == DUPLICATE_KEY for code, _, _ in reply.errors)
        return ChargeAck(
            key=key,
            his_reference=msa.get(3) or key,
            duplicate=duplicate,
            cancelled=cancelled)

    def post_charge(self, charge):
        if not charge.key:
            raise ValueError("A charge needs an idempotency key")
        admission = self._query_admission(
            charge.inpatient_number, 'VN', 'DEM')
        pid = admission.first('PID')
        message, control_id = self._dft(
            'CG', charge.key, self._patient_id(pid),
            join_name(pid.get(5, 1, 1), pid.get(5, 2)),
            charge.inpatient_number, charge.charge_item, charge.quantity,
            charge.unit_price, charge)
        reply = self._exchange(message, control_id, {'ACK'})
        return self._charge_ack(reply, charge.key, cancelled=False)

    def cancel_charge(self, key):
        rows = self._charge_rows(key=key)
        if not rows:
            raise NotFound(f"HL7 peer has no charge {key}")
        row = rows[0]
        if row['STATUS'] == 'CD':
            return ChargeAck(key=key, his_reference=row['HIS_REF'] or key,
                duplicate=True, cancelled=True)
        try:
            quantity = Decimal(row['QTY'])
        except InvalidOperation as exception:
            raise MalformedReply(
                "HL7 peer sent an invalid quantity") from exception
        message, control_id = self._dft(
            'CD', key, row['PATIENT'], None, row['VISIT'], row['ITEM'],
            quantity)
        reply = self._exchange(message, control_id, {'ACK'})
        return self._charge_ack(reply, key, cancelled=True)

    def _charge_rows(self, inpatient_number=None, since=None, key=None):
        "Return the rows of the ZCHG query, as dicts by column name"
        rows = []
        pointer = None
        tag = _new_id()
        for _ in range(MAX_PAGES):
            message, control_id = self._message('QBP_Q13', 'QBP^Q13^QBP_Q13')
            message.qpd.qpd_1 = CHARGE_QUERY
            message.qpd.qpd_2 = tag
            message.qpd.qpd_3 = escape(self.sending_application)
            message.qpd.add_field('QPD_4')
            message.qpd.add_field('QPD_5')
            message.qpd.add_field('QPD_6')
            if inpatient_number:
                message.qpd.qpd_4 = escape(inpatient_number)
            if since:
                message.qpd.qpd_5 = format_ts(since)
            if key:
                message.qpd.qpd_6 = escape(key)
            message.rcp.rcp_1 = 'I'
            if pointer:
                message.add_segment('DSC')
                message.dsc.dsc_1 = escape(pointer)
                message.dsc.dsc_2 = 'I'
            reply = self._exchange(message, control_id, {'RTB'})
            qak = reply.first('QAK')
            if qak is None or qak.get(1) != tag:
                raise MalformedReply(
                    "HL7 peer answered another query than the one sent")
            if qak.get(2) == 'NF':
                return rows
            if qak.get(2) not in {'OK', ''}:
                raise PeerRejected(
                    f"HL7 peer answered the charge query with {qak.get(2)}")
            rdf = reply.first('RDF')
            if rdf is None:
                raise MalformedReply("HL7 peer answered RTB^K13 without RDF")
            columns = [rdf.component(r, 1) for r in rdf.repetitions(2)]
            needed = {'KEY', 'HIS_REF', 'STATUS', 'VISIT', 'PATIENT', 'ITEM',
                'QTY'}
            if not needed <= set(columns):
                raise MalformedReply(
                    "HL7 peer answered RTB^K13 without the expected columns")
            for rdt in reply.all('RDT'):
                rows.append({
                        name: rdt.get(i)
                        for i, name in enumerate(columns, 1)})
            dsc = reply.first('DSC')
            pointer = dsc.get(1) if dsc is not None else None
            if not pointer:
                return rows
        raise MalformedReply(
            f"HL7 peer sent more than {MAX_PAGES} pages of charges")

    def list_charges(self, inpatient_number=None, since=None):
        if inpatient_number:
            # An unknown admission raises NotFound as the other queries do
            self._query_admission(inpatient_number, 'VN', 'DEM')
        return [
            ChargeAck(
                key=row['KEY'], his_reference=row['HIS_REF'] or row['KEY'],
                cancelled=row['STATUS'] == 'CD')
            for row in self._charge_rows(inpatient_number, since)
            if row['KEY']]

    # Catalogue

    def list_charge_items(self):
        message, control_id = self._message('MFQ_M01', 'MFQ^M04^MFQ_M01')
        qrd = message.qrd
        qrd.qrd_1 = format_ts(
            dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        qrd.qrd_2 = 'R'
        qrd.qrd_3 = 'I'
        qrd.qrd_4 = control_id
        qrd.qrd_7 = '9999^RD'
        qrd.qrd_8 = 'ALL'
        qrd.qrd_9 = 'CDM'
        reply = self._exchange(message, control_id, {'MFR'})
        items = []
        prices = {}
        for prc in reply.all('PRC'):
            code = prc.get(1)
            raw = prc.get(5, 1, 1)
            if code and raw and code not in prices:
                try:
                    prices[code] = (Decimal(raw), prc.get(5, 5))
                except InvalidOperation as exception:
                    raise MalformedReply(
                        f"HL7 peer sent an invalid price for {code}"
                        ) from exception
        for cdm in reply.all('CDM'):
            code = cdm.get(1)
            if not code:
                continue
            price, unit = prices.get(code, (None, None))
            items.append(ChargeItem(
                    code=code,
                    name=cdm.get(3) or cdm.get(1, 2) or code,
                    unit=unit or None,
                    price=price,
                    insurance_code=cdm.get(7) or None,
                    active=cdm.get(8) != 'I'))
        return items
