# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The FHIR R4 HIS transport against a real FHIR server process
(tests/peers/fhir_peer.py) on the loopback."""
import dataclasses
import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest
import requests

from his_connector.his import (
    Charge, MalformedReply, NotFound, PeerConfig, PeerRejected,
    PeerUnavailable)
from his_connector.transports.fhir import FHIRTransport
from tests.peers import his_data

pytestmark = pytest.mark.no_db

READ_TIMEOUT = 1.0


@pytest.fixture
def transport(fhir_peer):
    transport = FHIRTransport(fhir_peer.config(read_timeout=READ_TIMEOUT))
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


def test_find_patient(transport):
    for number in his_data.inpatient_numbers():
        patient = transport.find_patient(number)
        assert dataclasses.asdict(patient) == his_data.expected_patient(
            number)


def test_find_patient_unknown(transport):
    with pytest.raises(NotFound):
        transport.find_patient('ZY1999999999')
    # An outpatient visit is not an admission
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
        assert surgery.theatre == record.theatre
        assert surgery.state == record.status

    assert transport.find_surgeries('ZY2026000088') == []

    surgery, = transport.find_surgeries(surgery_number='SS20261101001')
    assert surgery.inpatient_number == 'ZY2026000101'
    assert surgery.patient_id == 'P0001'
    assert surgery.surgeon == '王建国'

    # An unknown surgery number is an empty list, as his.py says
    assert transport.find_surgeries(surgery_number='SS19990101001') == []
    with pytest.raises(NotFound):
        transport.find_surgeries('ZY1999999999')


def test_post_charge(transport, fhir_peer):
    charge = new_charge(quantity=Decimal('2'))
    ack = transport.post_charge(charge)
    assert ack.key == charge.key
    assert ack.his_reference
    assert not ack.duplicate and not ack.cancelled
    assert fhir_peer.count('charge', charge.key) == 1

    # What the HIS holds, read with a plain HTTP client
    stored = requests.get(
        f'{fhir_peer.url}/ChargeItem/{ack.his_reference}', timeout=5).json()
    assert stored['identifier'] == [{
            'system': FHIRTransport.key_system, 'value': charge.key}]
    assert stored['status'] == 'billable'
    codes = {c.get('system'): c['code'] for c in stored['code']['coding']}
    assert codes == {
        None: 'C31010001', 'urn:hrp:insurance-code': 'C03130100100001'}
    assert stored['subject'] == {'reference': 'Patient/P0001'}
    assert stored['context'] == {'reference': 'Encounter/E101'}
    assert stored['quantity']['value'] == 2
    assert stored['priceOverride'] == {'value': 13600, 'currency': 'CNY'}
    assert dt.datetime.fromisoformat(
        stored['occurrenceDateTime'].replace('Z', '+00:00')) == (
        dt.datetime(2026, 11, 1, 3, 5, tzinfo=dt.timezone.utc))
    assert stored['service'][0]['identifier']['value'] == 'SS20261101001'
    assert stored['requestingOrganization']['identifier']['value'] == 'XNK'
    assert stored['productReference']['identifier']['value'] == charge.udi
    assert stored['extension'][0]['valueString'] == 'LOT2026A17'


def test_same_key_twice(transport, fhir_peer):
    charge = new_charge()
    first = transport.post_charge(charge)
    second = transport.post_charge(charge)
    assert second.duplicate and not first.duplicate
    assert second.his_reference == first.his_reference
    assert fhir_peer.count('charge', charge.key) == 1


def test_lost_ack(transport, fhir_peer):
    "The peer applies the charge but answers after the client gave up"
    charge = new_charge()
    fhir_peer.fault('delay', delay=READ_TIMEOUT + 1.5,
        match='POST ChargeItem')
    start = time.monotonic()
    with pytest.raises(PeerUnavailable):
        transport.post_charge(charge)
    assert time.monotonic() - start < READ_TIMEOUT + 1.0
    assert fhir_peer.count('charge', charge.key) == 1

    ack = transport.post_charge(charge)
    assert ack.duplicate
    assert fhir_peer.count('charge', charge.key) == 1
    assert [a.key for a in transport.list_charges()].count(charge.key) == 1


def test_peer_down(spawn_peer):
    peer = spawn_peer('fhir')
    transport = FHIRTransport(peer.config(connect_timeout=1.0))
    try:
        assert transport.find_patient('ZY2026000101').patient_id == 'P0001'
        peer.kill()
        start = time.monotonic()
        with pytest.raises(PeerUnavailable):
            transport.find_patient('ZY2026000101')
        with pytest.raises(PeerUnavailable):
            transport.post_charge(new_charge())
        assert time.monotonic() - start < 2
    finally:
        transport.close()


def test_server_error(transport, fhir_peer):
    charge = new_charge()
    fhir_peer.fault('error', match='POST ChargeItem')
    with pytest.raises(PeerUnavailable, match='HTTP 500'):
        transport.post_charge(charge)
    assert fhir_peer.count('charge', charge.key) == 0

    ack = transport.post_charge(charge)
    assert not ack.duplicate
    assert fhir_peer.count('charge', charge.key) == 1


def test_malformed_reply(transport, fhir_peer):
    fhir_peer.fault('garbage', match='GET Encounter')
    with pytest.raises(MalformedReply, match='JSON'):
        transport.find_patient('ZY2026000101')

    fhir_peer.fault('invalid', match='GET Encounter')
    with pytest.raises(MalformedReply, match='invalid Bundle'):
        transport.find_patient('ZY2026000101')

    charge = new_charge()
    fhir_peer.fault('invalid', match='POST ChargeItem')
    with pytest.raises(MalformedReply, match='invalid ChargeItem'):
        transport.post_charge(charge)
    assert fhir_peer.count('charge', charge.key) == 0
    assert transport.find_patient('ZY2026000101').patient_id == 'P0001'


def test_dropped_connection(transport, fhir_peer):
    charge = new_charge()
    fhir_peer.fault('drop', match='POST ChargeItem')
    with pytest.raises(PeerUnavailable):
        transport.post_charge(charge)
    assert fhir_peer.count('charge', charge.key) == 0
    assert not transport.post_charge(charge).duplicate
    assert fhir_peer.count('charge', charge.key) == 1


def test_rejected(transport, fhir_peer):
    # A retired catalogue entry: the HIS refuses with an OperationOutcome
    charge = new_charge(charge_item='C99990009')
    with pytest.raises(PeerRejected, match='C99990009') as info:
        transport.post_charge(charge)
    assert not isinstance(info.value, NotFound)

    fhir_peer.fault('reject', match='POST ChargeItem')
    with pytest.raises(PeerRejected, match='HTTP 422'):
        transport.post_charge(new_charge())

    with pytest.raises(NotFound):
        transport.post_charge(new_charge(inpatient_number='ZY1999999999'))
    assert fhir_peer.events('charge') == []


def test_cancel(transport, fhir_peer):
    charge = new_charge()
    posted = transport.post_charge(charge)

    first = transport.cancel_charge(charge.key)
    assert first.cancelled and not first.duplicate
    assert first.his_reference == posted.his_reference
    second = transport.cancel_charge(charge.key)
    assert second.cancelled and second.duplicate
    assert fhir_peer.count('cancel', charge.key) == 1

    # Posting a cancelled key again never charges twice
    again = transport.post_charge(charge)
    assert again.duplicate and again.cancelled
    assert fhir_peer.count('charge', charge.key) == 1

    with pytest.raises(NotFound):
        transport.cancel_charge('hrp-usage-never-posted')


def test_cancel_lost_ack(transport, fhir_peer):
    charge = new_charge()
    transport.post_charge(charge)
    fhir_peer.fault('delay', delay=READ_TIMEOUT + 1.5,
        match='PUT ChargeItem')
    with pytest.raises(PeerUnavailable):
        transport.cancel_charge(charge.key)
    ack = transport.cancel_charge(charge.key)
    assert ack.cancelled and ack.duplicate
    assert fhir_peer.count('cancel', charge.key) == 1


def test_catalogue(transport):
    items = transport.list_charge_items()
    assert {i.code: (i.name, i.unit, i.price, i.insurance_code, i.active)
        for i in items} == {
        c.code: (c.name, c.unit, c.price, c.insurance_code, c.active)
        for c in his_data.CHARGE_ITEMS}


def test_list_charges(transport, fhir_peer):
    keys = [f'hrp-usage-{uuid.uuid4().hex[:12]}' for _ in range(3)]
    transport.post_charge(new_charge(key=keys[0]))
    transport.post_charge(new_charge(
            key=keys[1], inpatient_number='ZY2026000102',
            charge_item='C31020002', unit_price=Decimal('25600.00'),
            surgery_number='SS20261102003'))
    transport.post_charge(new_charge(key=keys[2]))
    transport.cancel_charge(keys[2])

    # Pages of 2: the next links are followed; foreign charges left out
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


def test_special_key(transport, fhir_peer):
    "A key with the characters FHIR search escapes"
    charge = new_charge(key='hrp|usage,7$a\\b')
    assert not transport.post_charge(charge).duplicate
    assert transport.post_charge(charge).duplicate
    assert transport.cancel_charge(charge.key).cancelled
    assert fhir_peer.count('charge', charge.key) == 1


def test_authentication(fhir_peer):
    fhir_peer.require_auth(basic='hrp:S3cret!')
    anonymous = FHIRTransport(fhir_peer.config())
    with pytest.raises(PeerRejected, match='HTTP 401') as info:
        anonymous.find_patient('ZY2026000101')
    anonymous.close()
    wrong = FHIRTransport(fhir_peer.config(username='hrp', password='bad'))
    with pytest.raises(PeerRejected) as info:
        wrong.find_patient('ZY2026000101')
    assert 'bad' not in str(info.value)
    wrong.close()
    basic = FHIRTransport(fhir_peer.config(
            username='hrp', password='S3cret!'))
    assert basic.find_patient('ZY2026000101').patient_id == 'P0001'
    basic.close()

    fhir_peer.require_auth(bearer='token-123')
    bearer = FHIRTransport(fhir_peer.config(password='token-123'))
    assert bearer.find_patient('ZY2026000101').patient_id == 'P0001'
    bearer.close()


def test_invalid_url():
    with pytest.raises(ValueError):
        FHIRTransport(PeerConfig(url='mllp://127.0.0.1:2575'))
