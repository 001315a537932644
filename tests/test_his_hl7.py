# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HL7 v2.5 MLLP HIS transport against a real MLLP server process
(tests/peers/hl7_peer.py, built on hl7apy's MLLPServer) on the loopback."""
import dataclasses
import datetime as dt
import socket
import threading
import time
import uuid
from decimal import Decimal

import pytest

from his_connector.his import (
    Charge, MalformedReply, NotFound, PeerConfig, PeerRejected,
    PeerUnavailable)
from his_connector.transports.hl7v2 import HL7Transport, escape, unescape
from tests.peers import his_data

pytestmark = pytest.mark.no_db

READ_TIMEOUT = 1.0


@pytest.fixture
def transport(hl7_peer):
    transport = HL7Transport(hl7_peer.config(read_timeout=READ_TIMEOUT))
    yield transport
    transport.close()


def new_charge(**values):
    values.setdefault('key', f'hrp-usage-{uuid.uuid4().hex[:12]}')
    values.setdefault('inpatient_number', 'ZY2026000101')
    values.setdefault('charge_item', 'C31010001')
    values.setdefault('quantity', Decimal('1'))
    values.setdefault('unit_price', Decimal('6800.00'))
    values.setdefault('insurance_code', 'C03130100100001')
    values.setdefault('surgery_number', 'SS20261101001')
    values.setdefault('department', 'XNK')
    values.setdefault('description', '冠状动脉药物洗脱支架 Firebird2')
    values.setdefault('lot', 'LOT2026A17')
    values.setdefault('udi', '(01)06923456789012(17)281231(10)LOT2026A17')
    values.setdefault('date', dt.datetime(2026, 11, 1, 3, 5))
    return Charge(**values)


def test_escape():
    value = 'a|b^c&d~e\\f 住院'
    assert escape(value) == 'a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f 住院'
    assert unescape(escape(value)) == value
    assert escape('line\r\nbreak') == 'line break'


def test_find_patient(transport):
    for number in his_data.inpatient_numbers():
        patient = transport.find_patient(number)
        assert dataclasses.asdict(patient) == his_data.expected_patient(
            number)


def test_find_patient_unknown(transport):
    with pytest.raises(NotFound):
        transport.find_patient('ZY1999999999')
    # The HIS answers the outpatient visit (PV1-2 = O): not an admission
    with pytest.raises(NotFound):
        transport.find_patient('MZ2026109876')


def test_find_surgeries(transport):
    surgeries = transport.find_surgeries('ZY2026000102')
    expected = [s for s in his_data.SURGERIES
        if s.admission == 'ZY2026000102']
    assert len(surgeries) == 2
    for surgery, record in zip(surgeries, expected):
        assert {k: getattr(surgery, k) for k in his_data.expected_surgery(
                record)} == his_data.expected_surgery(record)

    assert transport.find_surgeries('ZY2026000088') == []

    surgery, = transport.find_surgeries(surgery_number='SS20261101001')
    assert surgery.inpatient_number == 'ZY2026000101'
    assert surgery.patient_id == 'P0001'
    assert surgery.surgeon == '王建国'

    # An unknown surgery number is an empty list, as his.py says
    assert transport.find_surgeries(surgery_number='SS19990101001') == []
    with pytest.raises(NotFound):
        transport.find_surgeries('ZY1999999999')


def test_post_charge(transport, hl7_peer):
    charge = new_charge(quantity=Decimal('2'))
    ack = transport.post_charge(charge)
    assert ack.key == charge.key
    assert ack.his_reference.startswith('FT')
    assert not ack.duplicate and not ack.cancelled
    event, = hl7_peer.events('charge', charge.key)
    assert event['his_reference'] == ack.his_reference
    assert event['quantity'] == '2'
    assert event['lot'] == charge.lot
    assert event['udi'] == charge.udi
    assert event['surgery'] == charge.surgery_number


def test_same_key_twice(transport, hl7_peer):
    charge = new_charge()
    first = transport.post_charge(charge)
    second = transport.post_charge(charge)
    assert second.duplicate and not first.duplicate
    assert second.his_reference == first.his_reference
    assert hl7_peer.count('charge', charge.key) == 1


def test_lost_ack(transport, hl7_peer):
    "The HIS applies the DFT but acknowledges after the client gave up"
    charge = new_charge()
    hl7_peer.fault('delay', delay=READ_TIMEOUT + 1.5, match='DFT P03')
    start = time.monotonic()
    with pytest.raises(PeerUnavailable, match='in time'):
        transport.post_charge(charge)
    assert time.monotonic() - start < READ_TIMEOUT + 1.0
    assert hl7_peer.count('charge', charge.key) == 1

    ack = transport.post_charge(charge)
    assert ack.duplicate
    assert hl7_peer.count('charge', charge.key) == 1
    assert [a.key for a in transport.list_charges()].count(charge.key) == 1


def test_peer_down(spawn_peer):
    peer = spawn_peer('hl7')
    transport = HL7Transport(peer.config(connect_timeout=1.0))
    assert transport.find_patient('ZY2026000101').patient_id == 'P0001'
    peer.kill()
    start = time.monotonic()
    with pytest.raises(PeerUnavailable, match='unreachable'):
        transport.find_patient('ZY2026000101')
    with pytest.raises(PeerUnavailable):
        transport.post_charge(new_charge())
    assert time.monotonic() - start < 2


def test_nak(transport, hl7_peer):
    "AE with error 207 asks for a retry; AR is a refusal"
    charge = new_charge()
    hl7_peer.fault('error', match='DFT P03')
    with pytest.raises(PeerUnavailable, match='207'):
        transport.post_charge(charge)
    assert hl7_peer.count('charge', charge.key) == 0
    assert not transport.post_charge(charge).duplicate
    assert hl7_peer.count('charge', charge.key) == 1

    other = new_charge()
    hl7_peer.fault('reject', match='DFT P03')
    with pytest.raises(PeerRejected, match='AR') as info:
        transport.post_charge(other)
    assert not isinstance(info.value, NotFound)
    assert hl7_peer.count('charge', other.key) == 0


def test_malformed_reply(transport, hl7_peer):
    hl7_peer.fault('garbage', match='QRY A19')
    with pytest.raises(MalformedReply):
        transport.find_patient('ZY2026000101')

    # A well-formed ACK of another message
    charge = new_charge()
    hl7_peer.fault('invalid', match='DFT P03')
    with pytest.raises(MalformedReply, match='another message'):
        transport.post_charge(charge)
    assert hl7_peer.count('charge', charge.key) == 0
    assert transport.find_patient('ZY2026000101').patient_id == 'P0001'


def test_unframed_reply():
    "A server that does not speak MLLP"
    server = socket.create_server(('127.0.0.1', 0))
    port = server.getsockname()[1]

    def answer():
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n')
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    transport = HL7Transport(PeerConfig(
            url=f'mllp://127.0.0.1:{port}', connect_timeout=1,
            read_timeout=2))
    try:
        with pytest.raises(MalformedReply, match='MLLP'):
            transport.find_patient('ZY2026000101')
    finally:
        thread.join(5)
        server.close()


def test_dropped_connection(transport, hl7_peer):
    charge = new_charge()
    hl7_peer.fault('drop', match='DFT P03')
    with pytest.raises(PeerUnavailable, match='closed the connection'):
        transport.post_charge(charge)
    assert hl7_peer.count('charge', charge.key) == 0
    assert not transport.post_charge(charge).duplicate
    assert hl7_peer.count('charge', charge.key) == 1


def test_rejected(transport, hl7_peer):
    charge = new_charge(charge_item='C99990009')
    with pytest.raises(PeerRejected, match='103') as info:
        transport.post_charge(charge)
    assert not isinstance(info.value, NotFound)
    with pytest.raises(NotFound):
        transport.post_charge(new_charge(inpatient_number='ZY1999999999'))
    assert hl7_peer.events('charge') == []


def test_cancel(transport, hl7_peer):
    charge = new_charge()
    posted = transport.post_charge(charge)

    first = transport.cancel_charge(charge.key)
    assert first.cancelled and not first.duplicate
    assert first.his_reference == posted.his_reference
    second = transport.cancel_charge(charge.key)
    assert second.cancelled and second.duplicate
    assert hl7_peer.count('cancel', charge.key) == 1

    again = transport.post_charge(charge)
    assert again.duplicate
    assert hl7_peer.count('charge', charge.key) == 1

    with pytest.raises(NotFound):
        transport.cancel_charge('hrp-usage-never-posted')


def test_cancel_lost_ack(transport, hl7_peer):
    charge = new_charge()
    transport.post_charge(charge)
    hl7_peer.fault('delay', delay=READ_TIMEOUT + 1.5, match='DFT P03')
    with pytest.raises(PeerUnavailable):
        transport.cancel_charge(charge.key)
    ack = transport.cancel_charge(charge.key)
    assert ack.cancelled and ack.duplicate
    assert hl7_peer.count('cancel', charge.key) == 1


def test_catalogue(transport):
    items = transport.list_charge_items()
    assert {i.code: (i.name, i.unit, i.price, i.insurance_code, i.active)
        for i in items} == {
        c.code: (c.name, c.unit, c.price, c.insurance_code, c.active)
        for c in his_data.CHARGE_ITEMS}


def test_list_charges(transport, hl7_peer):
    keys = [f'hrp-usage-{uuid.uuid4().hex[:12]}' for _ in range(3)]
    transport.post_charge(new_charge(key=keys[0]))
    transport.post_charge(new_charge(
            key=keys[1], inpatient_number='ZY2026000102',
            charge_item='C31020002', unit_price=Decimal('25600.00'),
            surgery_number='SS20261102003'))
    transport.post_charge(new_charge(key=keys[2]))
    transport.cancel_charge(keys[2])

    # Pages of 2: the DSC continuation is followed; the pharmacy's charge
    # (another sending application) is left out
    charges = transport.list_charges()
    assert sorted(c.key for c in charges) == sorted(keys)
    assert {c.key: c.cancelled for c in charges} == {
        keys[0]: False, keys[1]: False, keys[2]: True}
    assert sorted(c.key for c in transport.list_charges(
                'ZY2026000101')) == sorted([keys[0], keys[2]])
    assert transport.list_charges(
        since=dt.datetime.utcnow() + dt.timedelta(hours=1)) == []
    assert len(transport.list_charges(
                since=dt.datetime.utcnow() - dt.timedelta(hours=1))) == 3
    with pytest.raises(NotFound):
        transport.list_charges('ZY1999999999')


def test_special_key(transport, hl7_peer):
    "A key made of the HL7 delimiters travels intact in FT1-2"
    charge = new_charge(key='hrp|usage^7&a~b\\c')
    assert not transport.post_charge(charge).duplicate
    assert transport.post_charge(charge).duplicate
    assert [c.key for c in transport.list_charges()] == [charge.key]
    assert transport.cancel_charge(charge.key).cancelled
    assert hl7_peer.count('charge', charge.key) == 1


def test_invalid_url():
    for url in ['http://127.0.0.1:2575', 'mllp://127.0.0.1', 'mllp://:1']:
        with pytest.raises(ValueError):
            HL7Transport(PeerConfig(url=url))
