# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A small HL7 v2.5 HIS on MLLP holding the test hospital of his_data.

Run as a process: ``python tests/peers/hl7_peer.py [--port N]``.  It
listens on 127.0.0.1 (a free port by default), prints one JSON line
``{"url": "mllp://127.0.0.1:<port>", "control": <control URL>}`` and serves
until it is terminated.  Built on hl7apy's ``MLLPServer`` and handlers:
every message is parsed with hl7apy and every answer built with it.

Messages served (see apps/his_connector/FHIR-HL7.md): QRY^A19 → ADR^A19
(QRD-9 DEM: PID, PV1; PRO: also PR1), DFT^P03 → ACK (FT1-6 CG charge, CD
credit; deduplicated on the sending application and FT1-2), QBP^Q13 (query
ZCHG) → RTB^K13 with DSC continuation, MFQ^M04 → MFR^M04."""
import argparse
import datetime as dt
import json
import re
import signal
import sys
import threading
import time
import uuid
from decimal import Decimal, InvalidOperation

from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.mllp import (
    AbstractErrorHandler, AbstractHandler, InvalidHL7Message, MLLPServer,
    UnsupportedMessageType)
from hl7apy.parser import parse_message

try:
    from . import his_data
except ImportError:  # run as a script
    import his_data

VERSION = '2.5'
CHARGE_COLUMNS = [
    ('KEY', 'ST', 40), ('HIS_REF', 'ST', 20), ('STATUS', 'ID', 2),
    ('VISIT', 'ST', 20), ('PATIENT', 'ST', 20), ('ITEM', 'ST', 20),
    ('QTY', 'NM', 12), ('DATE', 'TS', 26)]


def esc(value):
    value = str(value).replace('\\', '\\E\\')
    for char, sequence in (
            ('|', '\\F\\'), ('^', '\\S\\'), ('&', '\\T\\'), ('~', '\\R\\')):
        value = value.replace(char, sequence)
    return value


def unesc(value):
    table = {'F': '|', 'S': '^', 'T': '&', 'R': '~', 'E': '\\'}
    return re.sub(
        r'\\([FSTRE])\\', lambda m: table[m.group(1)], value)


def ts(value):
    return value.strftime('%Y%m%d%H%M%S%z') if value else ''


def parse_ts(value):
    match = re.fullmatch(r'(\d{8})(\d{6})?([+-]\d{4})?', value or '')
    if not match:
        return None
    date, time_, offset = match.groups()
    when = dt.datetime.strptime(date + (time_ or '000000'), '%Y%m%d%H%M%S')
    if offset:
        when = when.replace(tzinfo=dt.datetime.strptime(
                offset, '%z').tzinfo)
    else:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when


class Fields:
    "The fields of an hl7apy segment, read from its ER7"

    def __init__(self, segment):
        parts = segment.to_er7().split('|')
        if segment.name == 'MSH':
            parts = ['MSH', '|'] + parts[1:]
        self.parts = parts

    def get(self, field, component=1, subcomponent=1):
        if field >= len(self.parts):
            return ''
        value = self.parts[field].split('~')[0]
        components = value.split('^')
        if component > len(components):
            return ''
        subs = components[component - 1].split('&')
        if subcomponent > len(subs):
            return ''
        return unesc(subs[subcomponent - 1])


def segments(message):
    "Every segment of an hl7apy message, groups flattened, in order"
    for child in message.children:
        if child.classname == 'Group':
            yield from segments(child)
        else:
            yield child


def first(message, name):
    return next((Fields(s) for s in segments(message) if s.name == name),
        None)


class Drop(Exception):
    "Raised by a handler to have the MLLP server drop the connection"


class Hospital:
    "The charges of the HIS and the state shared by the handlers"

    def __init__(self, state, page_size):
        self.state = state
        self.page_size = page_size
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with self.lock:
            self.charges = {}
            self.sequence = 0
            for f in his_data.FOREIGN_CHARGES:
                admission = his_data.admission(f.admission)
                self.charges[(f.source, f.key)] = {
                    'source': f.source, 'key': f.key,
                    'ref': f.his_reference, 'status': 'CG',
                    'visit': f.admission, 'patient': admission.patient,
                    'item': f.charge_item, 'qty': f.quantity,
                    'date': dt.datetime(2026, 11, 1, 9, tzinfo=his_data.CST),
                    'entered': dt.datetime(
                        2026, 11, 1, 9, tzinfo=his_data.CST),
                    }


def new_message(structure, message_type, incoming=None):
    message = Message(structure, version=VERSION)
    message.msh.msh_3 = 'HIS'
    message.msh.msh_4 = 'HIS'
    if incoming is not None:
        message.msh.msh_5 = esc(incoming.get(3))
        message.msh.msh_6 = esc(incoming.get(4))
    message.msh.msh_7 = ts(dt.datetime.now(his_data.CST))
    message.msh.msh_9 = message_type
    message.msh.msh_10 = uuid.uuid4().hex[:20].upper()
    message.msh.msh_11 = 'P'
    message.msh.msh_12 = VERSION
    message.msh.msh_18 = 'UNICODE UTF-8'
    return message


def ack(incoming_msh, code, error=None, severity='E', text=None,
        event=None, control_id=None):
    """Return an ACK (MLLP framed) of the incoming message: error is an
    HL7 table 0357 (code, text)"""
    event = event or (incoming_msh.get(9, 2) if incoming_msh else '')
    message = new_message('ACK', f'ACK^{event}^ACK', incoming_msh)
    message.msa.msa_1 = code
    message.msa.msa_2 = esc(
        control_id if control_id is not None
        else (incoming_msh.get(10) if incoming_msh else ''))
    if text:
        message.msa.msa_3 = esc(text)
    if error:
        err = message.add_segment('ERR')
        err.err_3 = f'{error[0]}^{esc(error[1])}^HL70357'
        err.err_4 = severity
    return message.to_mllp()


class Handler(AbstractHandler):
    "Common fault injection; subclasses answer in answer()"

    def __init__(self, message, hospital):
        super().__init__(message)
        self.hospital = hospital

    def reply(self):
        message = parse_message(self.incoming_message, find_groups=True)
        msh = Fields(message.msh)
        kind = f'{msh.get(9, 1)} {msh.get(9, 2)}'
        fault = self.hospital.state.take_fault(kind)
        mode = fault['mode'] if fault else None
        if mode == 'drop':
            raise Drop()
        if mode == 'error':
            return ack(msh, 'AE', ('207', 'Application internal error'))
        if mode == 'reject':
            return ack(msh, 'AR', ('200', 'Unsupported message type'))
        if mode == 'garbage':
            return '\x0bTHIS IS NOT AN HL7 MESSAGE\x1c\x0d'
        if mode == 'invalid':
            return ack(msh, 'AA', control_id='SOMEONE-ELSE')
        answer = self.answer(message, msh)
        if mode == 'delay':
            time.sleep(fault['delay'])
        return answer

    def answer(self, message, msh):
        raise NotImplementedError


class QueryHandler(Handler):
    "QRY^A19 → ADR^A19"

    def answer(self, message, msh):
        qrd = first(message, 'QRD')
        number, number_type = qrd.get(8, 1), qrd.get(8, 13) or 'VN'
        what = qrd.get(9)
        admission, surgeries = None, []
        if number_type == 'VN':
            admission = his_data.admission(number)
            if admission and what == 'PRO':
                surgeries = his_data.surgeries_of(number)
        elif number_type == 'FILL':
            surgery = his_data.surgery(number)
            if surgery:
                admission = his_data.admission(surgery.admission)
                surgeries = [surgery]
        else:
            return ack(msh, 'AE', ('102', 'Unknown identifier type'))
        if what not in {'DEM', 'PRO'}:
            return ack(msh, 'AE', ('103', 'Unknown what subject filter'))
        reply = new_message('ADR_A19', 'ADR^A19^ADR_A19', msh)
        reply.msa.msa_1 = 'AA'
        reply.msa.msa_2 = esc(msh.get(10))
        qak = reply.add_segment('QAK')
        qak.qak_1 = esc(qrd.get(4))
        qak.qak_2 = 'OK' if admission else 'NF'
        reply.qrd = message.qrd.to_er7()
        if admission:
            patient = his_data.patient(admission.patient)
            group = reply.add_group('ADR_A19_QUERY_RESPONSE')
            group.pid.pid_1 = '1'
            group.pid.pid_3 = f'{esc(patient.id)}^^^HIS^MR'
            group.pid.pid_5 = f'{esc(patient.family)}^{esc(patient.given)}'
            if patient.birth_date:
                group.pid.pid_7 = patient.birth_date.strftime('%Y%m%d')
            group.pid.pid_8 = {'male': 'M', 'female': 'F'}.get(
                patient.sex, 'U')
            pv1 = group.pv1
            pv1.pv1_1 = '1'
            pv1.pv1_2 = 'I' if admission.klass == 'IMP' else 'O'
            if admission.ward:
                pv1.pv1_3 = esc(admission.ward)
            if admission.department:
                pv1.pv1_10 = esc(admission.department)
            pv1.pv1_19 = esc(admission.number)
            pv1.pv1_44 = ts(admission.admitted)
            if admission.discharged:
                pv1.pv1_45 = ts(admission.discharged)
            for i, surgery in enumerate(surgeries, 1):
                procedure = group.add_group('ADR_A19_PROCEDURE')
                pr1 = procedure.pr1
                pr1.pr1_1 = str(i)
                pr1.pr1_3 = f'{esc(surgery.code)}^{esc(surgery.display)}^I9C'
                pr1.pr1_5 = ts(surgery.date)
                pr1.pr1_6 = 'P'
                pr1.pr1_11 = f'^{esc(surgery.surgeon)}'
                pr1.pr1_19 = esc(surgery.number)
        return reply.to_mllp()


class ChargeHandler(Handler):
    "DFT^P03 → ACK^P03"

    def answer(self, message, msh):
        pid, pv1 = first(message, 'PID'), first(message, 'PV1')
        ft1s = [Fields(s) for s in segments(message) if s.name == 'FT1']
        if len(ft1s) != 1 or pid is None or pv1 is None:
            return ack(msh, 'AE', ('100', 'One FT1 with PID and PV1'))
        ft1, = ft1s
        source, key = msh.get(3), ft1.get(2)
        kind, code = ft1.get(6), ft1.get(7)
        visit, patient = pv1.get(19), pid.get(3)
        if not all((source, key, kind, code, visit, patient, ft1.get(10))):
            return ack(msh, 'AE', ('101', 'Required field missing'))
        try:
            quantity = Decimal(ft1.get(10))
            price = Decimal(ft1.get(12)) if ft1.get(12) else None
        except InvalidOperation:
            return ack(msh, 'AE', ('102', 'Data type error'))
        hospital = self.hospital
        with hospital.lock:
            existing = hospital.charges.get((source, key))
            if kind == 'CG':
                if existing:
                    return ack(
                        msh, 'AA', ('205', 'Duplicate key identifier'),
                        severity='I', text=existing['ref'])
                admission = his_data.admission(visit)
                if (admission is None or admission.klass != 'IMP'
                        or admission.patient != patient):
                    return ack(msh, 'AE', ('204', 'Unknown admission'))
                item = his_data.charge_item(code)
                if item is None or not item.active:
                    return ack(msh, 'AE', ('103', 'Unknown charge item'))
                if not quantity > 0:
                    return ack(msh, 'AE', ('102', 'Quantity not positive'))
                hospital.sequence += 1
                ref = f'FT{hospital.sequence:05d}'
                observations = {
                    Fields(s).get(3): Fields(s).get(5)
                    for s in segments(message) if s.name == 'OBX'}
                hospital.charges[(source, key)] = {
                    'source': source, 'key': key, 'ref': ref,
                    'status': 'CG', 'visit': visit, 'patient': patient,
                    'item': code, 'qty': quantity, 'price': price,
                    'date': parse_ts(ft1.get(4)),
                    'entered': dt.datetime.now(dt.timezone.utc),
                    'surgery': ft1.get(23), 'department': ft1.get(13),
                    'lot': observations.get('LOT'),
                    'udi': observations.get('UDI'),
                    }
                hospital.state.record(
                    'charge', key, ref, quantity=str(quantity),
                    lot=observations.get('LOT'),
                    udi=observations.get('UDI'),
                    surgery=ft1.get(23))
                return ack(msh, 'AA', text=ref)
            if kind == 'CD':
                if not existing:
                    return ack(msh, 'AE', ('204', 'Unknown charge'))
                if existing['status'] == 'CD':
                    return ack(
                        msh, 'AA', ('205', 'Duplicate key identifier'),
                        severity='I', text=existing['ref'])
                existing['status'] = 'CD'
                hospital.state.record('cancel', key, existing['ref'])
                return ack(msh, 'AA', text=existing['ref'])
        return ack(msh, 'AE', ('103', 'Unknown transaction type'))


class ChargeQueryHandler(Handler):
    "QBP^Q13 (query ZCHG) → RTB^K13"

    def answer(self, message, msh):
        qpd = first(message, 'QPD')
        if qpd.get(1) != 'ZCHG':
            return ack(msh, 'AE', ('200', 'Unknown query'))
        source, visit, since, key = (
            qpd.get(3), qpd.get(4), parse_ts(qpd.get(5)), qpd.get(6))
        dsc = first(message, 'DSC')
        offset = int(dsc.get(1)) if dsc and dsc.get(1).isdigit() else 0
        with self.hospital.lock:
            rows = sorted(
                (dict(c) for c in self.hospital.charges.values()
                    if c['source'] == source
                    and (not visit or c['visit'] == visit)
                    and (not key or c['key'] == key)
                    and (not since or c['entered'] >= since)),
                key=lambda c: c['ref'])
        page = rows[offset:offset + self.hospital.page_size]
        reply = new_message('RTB_K13', 'RTB^K13^RTB_K13', msh)
        reply.msa.msa_1 = 'AA'
        reply.msa.msa_2 = esc(msh.get(10))
        reply.qak.qak_1 = esc(qpd.get(2))
        reply.qak.qak_2 = 'OK' if rows else 'NF'
        reply.qak.qak_3 = 'ZCHG^HRP charge list^L'
        reply.qak.qak_4 = str(len(rows))
        reply.qak.qak_5 = str(len(page))
        reply.qak.qak_6 = str(max(len(rows) - offset - len(page), 0))
        reply.qpd = message.qpd.to_er7()
        if rows:
            group = reply.add_group('RTB_K13_ROW_DEFINITION')
            # Set from ER7: RDF-2 repeats once per column
            group.rdf.value = f'RDF|{len(CHARGE_COLUMNS)}|' + '~'.join(
                f'{n}^{t}^{w}' for n, t, w in CHARGE_COLUMNS)
            for row in page:
                rdt = group.add_segment('RDT')
                rdt.value = 'RDT|' + '|'.join(esc(v) for v in (
                        row['key'], row['ref'], row['status'], row['visit'],
                        row['patient'], row['item'], row['qty'],
                        ts(row['date'])))
        if offset + len(page) < len(rows):
            dsc = reply.add_segment('DSC')
            dsc.dsc_1 = str(offset + len(page))
            dsc.dsc_2 = 'I'
        return reply.to_mllp()


class CatalogueHandler(Handler):
    "MFQ^M04 → MFR^M04"

    def answer(self, message, msh):
        reply = new_message('MFR_M04', 'MFR^M04^MFR_M04', msh)
        reply.msa.msa_1 = 'AA'
        reply.msa.msa_2 = esc(msh.get(10))
        reply.qrd = message.qrd.to_er7()
        reply.mfi.mfi_1 = 'CDM^Charge description master^HL70175'
        reply.mfi.mfi_3 = 'REP'
        reply.mfi.mfi_6 = 'NE'
        for item in his_data.CHARGE_ITEMS:
            group = reply.add_group('MFR_M04_MF_QUERY')
            group.mfe.mfe_1 = 'MAD'
            group.mfe.mfe_4 = f'{esc(item.code)}^{esc(item.name)}'
            group.mfe.mfe_5 = 'CE'
            group.cdm.cdm_1 = f'{esc(item.code)}^{esc(item.name)}'
            group.cdm.cdm_3 = esc(item.name)
            if item.insurance_code:
                group.cdm.cdm_7 = f'{esc(item.insurance_code)}^^99INS'
            group.cdm.cdm_8 = 'A' if item.active else 'I'
            prc = group.add_segment('PRC')
            prc.prc_1 = esc(item.code)
            prc.prc_5 = f'{item.price}&CNY^UP^^^{esc(item.unit)}'
            prc.prc_16 = 'A' if item.active else 'I'
        return reply.to_mllp()


class ErrorHandler(AbstractErrorHandler):
    "Errors of routing and of the handlers"

    def __init__(self, exc, message, hospital):
        super().__init__(exc, message)
        self.hospital = hospital

    def reply(self):
        if isinstance(self.exc, Drop):
            raise self.exc
        try:
            message = parse_message(self.incoming_message, find_groups=False)
            msh = Fields(message.msh)
        except Exception:
            msh = None
        if isinstance(self.exc, UnsupportedMessageType):
            return ack(msh, 'AR', ('200', 'Unsupported message type'))
        if (isinstance(self.exc, (InvalidHL7Message, HL7apyException))
                or msh is None):
            return ack(msh, 'AR', ('100', 'Invalid message'))
        return ack(msh, 'AE', ('207', 'Application internal error'))


class Handlers(dict):
    "Route on MSH-9's message type and trigger event"

    def __missing__(self, key):
        parts = key.split('^')
        short = '^'.join(parts[:2])
        if short != key and short in self:
            return self[short]
        raise KeyError(key)


class Server(MLLPServer):
    daemon_threads = True
    verbose = False

    def handle_error(self, request, client_address):
        # A client that gave up before a delayed answer: expected here
        if self.verbose:
            super().handle_error(request, client_address)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--control-port', type=int, default=0)
    parser.add_argument('--page-size', type=int, default=50)
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)

    state = his_data.PeerState()
    hospital = Hospital(state, args.page_size)
    state._on_reset = hospital.reset
    handlers = Handlers({
            'QRY^A19': (QueryHandler, hospital),
            'DFT^P03': (ChargeHandler, hospital),
            'QBP^Q13': (ChargeQueryHandler, hospital),
            'MFQ^M04': (CatalogueHandler, hospital),
            'ERR': (ErrorHandler, hospital),
            })
    server = Server('127.0.0.1', args.port, handlers, timeout=10)
    server.verbose = args.verbose
    control = his_data.start_control_server(state, args.control_port)

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({
                'url': f'mllp://127.0.0.1:{server.server_address[1]}',
                'control': f'http://127.0.0.1:{control.server_address[1]}',
                }), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        control.server_close()


if __name__ == '__main__':
    sys.exit(main())
