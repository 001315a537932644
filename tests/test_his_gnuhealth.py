# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The GNU Health transport against a real GNU Health 5.0 server
(tests/peers/gnuhealth_peer.py): what it reads, that a charge reaches the
HIS exactly once whatever the retries, and how failures are reported.

What the transport wrote is read back with the peer's administrator over
JSON-RPC by the standard library, not by the transport."""
import dataclasses
import datetime as dt
import http.server
import json
import logging
import socket
import sqlite3
import statistics
import threading
import time
import uuid
from decimal import Decimal

import pytest

from his_connector.his import (
    Charge, ChargeItem, HISError, MalformedReply, NotFound, Patient,
    PeerConfig, PeerRejected, PeerUnavailable)
from his_connector.transports.gnuhealth import GNUHealthTransport
from tests.peers.gnuhealth_peer import GNUHealthPeer, free_port, rpc

pytestmark = [pytest.mark.slow, pytest.mark.no_db]

LINE = 'gnuhealth.health_service.line'


def new_key():
    return f'test-{uuid.uuid4().hex}'


def charge(key=None, inpatient_number='ZY2026000123', item='C-0001',
        **values):
    values.setdefault('quantity', Decimal(1))
    values.setdefault('unit_price', Decimal('12000.00'))
    return Charge(key=key or new_key(), inpatient_number=inpatient_number,
        charge_item=item, **values)


def config_of(peer, **values):
    values.setdefault('url', peer.url)
    values.setdefault('database', peer.database)
    values.setdefault('username', peer.login)
    values.setdefault('password', peer.password)
    values.setdefault('connect_timeout', 2)
    values.setdefault('read_timeout', 20)
    return PeerConfig(**values)


@pytest.fixture(scope='module')
def transport(gnuhealth_peer):
    transport = GNUHealthTransport(config_of(gnuhealth_peer))
    yield transport
    transport.close()


@pytest.fixture(scope='module')
def admin(gnuhealth_peer):
    "Call the peer as its administrator"
    session = gnuhealth_peer.admin_session()

    def call(method, *params):
        return gnuhealth_peer.admin_rpc(method, list(params), session)
    return call


def lines_of(admin, key):
    "The service lines that carry key, read by the administrator"
    return admin(f'model.{LINE}.search_read',
        [('remarks', 'like', f'%:{key}]')], 0, None, [('id', 'ASC')],
        ['remarks', 'qty', 'desc', 'to_invoice', 'product.code', 'service',
            'service.name', 'service.patient', 'from_date'], {})


def line_id(ack):
    model, id_ = ack.his_reference.split(',')
    assert model == LINE
    return int(id_)


def test_find_patient(transport):
    assert transport.find_patient('ZY2026000123') == Patient(
        inpatient_number='ZY2026000123',
        patient_id='HRP-P-0001',
        name='张三',
        sex='male',
        birth_date=dt.date(1960, 3, 15),
        ward='心内科一病区 XNK-01',
        department='XNK',
        admission_date=dt.datetime(2026, 11, 2, 0, 30),
        discharge_date=None)


def test_find_discharged_patient(transport):
    patient = transport.find_patient('ZY2026000125')
    assert (patient.name, patient.sex, patient.department) == (
        '王五', 'male', 'PTWK')
    assert patient.discharge_date == dt.datetime(2026, 10, 28, 3, 0)


def test_find_patient_unknown(transport):
    with pytest.raises(NotFound, match='ZY2099999999'):
        transport.find_patient('ZY2099999999')


def test_surgeries_of_admission(transport):
    # 张三's surgery of 2025 belongs to his earlier stay
    assert [s.surgery_number for s in transport.find_surgeries(
                'ZY2026000123')] == ['SS2026000456']
    assert [s.surgery_number for s in transport.find_surgeries(
                'ZY2025000999')] == ['SS2025000100']
    surgeries = transport.find_surgeries('ZY2026000124')
    assert [(s.surgery_number, s.state) for s in surgeries] == [
        ('SS2026000457', 'done'), ('SS2026000458', 'confirmed')]
    assert {s.inpatient_number for s in surgeries} == {'ZY2026000124'}
    assert transport.find_surgeries('ZY2026000125') == []


def test_surgeries_of_unknown_admission(transport):
    with pytest.raises(NotFound):
        transport.find_surgeries('ZY2099999999')
    with pytest.raises(ValueError):
        transport.find_surgeries()


def test_surgery_by_number(transport):
    surgery, = transport.find_surgeries(surgery_number='SS2026000457')
    assert surgery.surgery_number == 'SS2026000457'
    assert surgery.inpatient_number == 'ZY2026000124'
    assert surgery.patient_id == 'HRP-P-0002'
    assert surgery.procedure == '全髋关节置换术'
    assert surgery.date == dt.datetime(2026, 11, 5, 0, 30)
    assert (surgery.theatre, surgery.surgeon) == ('手术室2', '王刚')
    old, = transport.find_surgeries(surgery_number='SS2025000100')
    assert old.inpatient_number == 'ZY2025000999'
    assert transport.find_surgeries(surgery_number='SS2099000000') == []


def test_surgery_of_another_patient_is_distinguishable(transport):
    patient = transport.find_patient('ZY2026000123')
    surgery, = transport.find_surgeries(
        'ZY2026000123', surgery_number='SS2026000457')
    assert surgery.patient_id != patient.patient_id
    assert surgery.inpatient_number != patient.inpatient_number


def test_charge_catalogue(transport):
    items = transport.list_charge_items()
    # Beds and GNU Health's own services without a code are not items
    assert [i.code for i in items] == [
        'C-0001', 'C-0002', 'C-0003', 'C-9999', 'S-0001', 'S-0002']
    assert items[0] == ChargeItem(
        code='C-0001', name='冠状动脉支架', unit='u',
        price=Decimal('12000.00'), active=True)
    assert {i.code: i.price for i in items}['C-0003'] == Decimal('5.50')
    assert [i.code for i in items if not i.active] == ['C-9999']


def test_post_charge(transport, admin):
    posted = charge(quantity=Decimal(2), lot='L2026A', udi='(01)0123',
        surgery_number='SS2026000456', department='XNK',
        date=dt.datetime(2026, 11, 3, 2, 0))
    ack = transport.post_charge(posted)
    assert (ack.key, ack.duplicate, ack.cancelled) == (
        posted.key, False, False)

    line, = lines_of(admin, posted.key)
    assert line['id'] == line_id(ack)
    assert line['remarks'] == f'[hrp:{posted.key}]'
    assert line['to_invoice']
    assert line['qty'] == 2
    assert line['product.']['code'] == 'C-0001'
    assert line['desc'].startswith('冠状动脉支架; lot=L2026A; udi=(01)0123; '
        'surgery=SS2026000456; dept=XNK')
    assert line['from_date'] == {
        '__class__': 'date', 'year': 2026, 'month': 11, 'day': 3}
    assert line['service.']['name'] == 'HRP-ZY2026000123'
    registration, = admin(
        'model.gnuhealth.inpatient.registration.search_read',
        [('name', '=', 'ZY2026000123')], 0, None, None, ['patient'], {})
    assert line['service.']['patient'] == registration['patient']


def test_post_same_key_twice(transport, admin):
    posted = charge(item='C-0003', quantity=Decimal(3),
        unit_price=Decimal('5.50'))
    first = transport.post_charge(posted)
    second = transport.post_charge(posted)
    assert not first.duplicate
    assert second.duplicate
    assert second.his_reference == first.his_reference
    assert len(lines_of(admin, posted.key)) == 1


def test_charges_of_an_admission_share_a_service_document(transport, admin):
    acks = [transport.post_charge(charge(inpatient_number='ZY2026000125'))
        for _ in range(2)]
    names = {lines_of(admin, a.key)[0]['service.']['name'] for a in acks}
    assert names == {'HRP-ZY2026000125'}


def test_invoiced_service_document_gets_a_successor(transport, admin):
    first = transport.post_charge(charge(inpatient_number='ZY2025000999'))
    line, = lines_of(admin, first.key)
    invoice(admin, line)
    second = transport.post_charge(charge(inpatient_number='ZY2025000999'))
    successor, = lines_of(admin, second.key)
    assert successor['service.']['name'] == next_name(
        line['service.']['name'])
    # An invoiced charge cannot be cancelled
    with pytest.raises(PeerRejected):
        transport.cancel_charge(first.key)


def invoice(admin, line):
    "Mark the service document of line invoiced, as GNU Health's wizard does"
    admin('model.gnuhealth.health_service.write',
        [line['service']], {'state': 'invoiced'}, {})


def next_name(name):
    "HRP-ZY… → HRP-ZY…-2 → HRP-ZY…-3"
    base, _, number = name.rpartition('-')
    if number.isdigit() and base.count('-') == 1:
        return f'{base}-{int(number) + 1}'
    return f'{name}-2'


def leave_line(transport, admin, key, state, inpatient_number):
    """Add to the admission's service document a line of key as a post that
    went wrong would leave it; return its id"""
    other = transport.post_charge(charge(inpatient_number=inpatient_number))
    service = lines_of(admin, other.key)[0]['service']
    remarks = {
        'pending': f'[hrp-pending:{key}]', 'posted': f'[hrp:{key}]'}[state]
    product, = admin('model.product.product.search',
        [('code', '=', 'C-0001')], 0, None, None, {})
    line, = admin(f'model.{LINE}.create', [{
                'service': service, 'product': product, 'qty': 1,
                'desc': 'left', 'remarks': remarks,
                'to_invoice': state == 'posted'}], {})
    return line


def test_post_confirms_the_line_of_a_lost_post(transport, admin):
    posted = charge()
    pending = leave_line(transport, admin, posted.key, 'pending',
        'ZY2026000123')
    ack = transport.post_charge(posted)
    assert ack.duplicate and line_id(ack) == pending
    line, = lines_of(admin, posted.key)
    assert (line['remarks'], line['to_invoice']) == (
        f'[hrp:{posted.key}]', True)


def test_post_removes_the_line_of_a_post_that_lost_the_race(
        transport, admin):
    posted = charge()
    first = leave_line(transport, admin, posted.key, 'posted',
        'ZY2026000123')
    leave_line(transport, admin, posted.key, 'pending', 'ZY2026000123')
    ack = transport.post_charge(posted)
    assert ack.duplicate and line_id(ack) == first
    assert [l['id'] for l in lines_of(admin, posted.key)] == [first]


def test_post_after_lost_post_in_invoiced_document(transport, admin):
    """A post left a line not to invoice in a document invoiced since: the
    retry charges a line of the successor document"""
    posted = charge(inpatient_number='ZY2025000999')
    pending = leave_line(transport, admin, posted.key, 'pending',
        'ZY2025000999')
    left, = lines_of(admin, posted.key)
    invoice(admin, left)
    ack = transport.post_charge(posted)
    assert line_id(ack) != pending
    charged = [l for l in lines_of(admin, posted.key) if l['to_invoice']]
    assert [l['id'] for l in charged] == [line_id(ack)]
    assert charged[0]['service.']['name'] == next_name(
        left['service.']['name'])


def impatient_transport(peer):
    "A transport logged in that waits 1 s for an answer"
    transport = GNUHealthTransport(config_of(peer))
    transport.find_patient('ZY2026000124')
    transport.config = dataclasses.replace(transport.config, read_timeout=1)
    return transport


def test_retry_after_lost_reply(gnuhealth_peer, transport, admin):
    """The HIS applies a post whose reply the client did not wait for: the
    retry answers it as a duplicate and it is charged once"""
    posted = charge(inpatient_number='ZY2026000124', item='C-0002',
        unit_price=Decimal('35000.00'))
    transport.post_charge(charge(inpatient_number='ZY2026000124'))
    impatient = impatient_transport(gnuhealth_peer)
    # Another writer holds the database: the post waits at the server
    lock = sqlite3.connect(gnuhealth_peer.database_path,
        isolation_level=None, timeout=10)
    try:
        lock.execute('BEGIN IMMEDIATE')
        with pytest.raises(PeerUnavailable, match='in time'):
            impatient.post_charge(posted)
        assert lines_of(admin, posted.key) == []
    finally:
        lock.execute('ROLLBACK')
        lock.close()
    # The server goes on with the post once the database is free
    deadline = time.monotonic() + 20
    while not lines_of(admin, posted.key) and time.monotonic() < deadline:
        time.sleep(0.1)
    line, = lines_of(admin, posted.key)
    assert not line['to_invoice']  # not charged yet

    ack = transport.post_charge(posted)
    assert ack.duplicate
    assert line_id(ack) == line['id']
    line, = lines_of(admin, posted.key)
    assert line['remarks'] == f'[hrp:{posted.key}]'
    assert line['to_invoice']
    impatient.close()


def test_retry_overtaking_the_lost_post(gnuhealth_peer, transport, admin):
    """The retry reaches the HIS while the first post still waits there:
    whichever order they finish in, one line is charged"""
    posted = charge(inpatient_number='ZY2026000124', item='C-0002',
        unit_price=Decimal('35000.00'))
    transport.post_charge(charge(inpatient_number='ZY2026000124'))
    impatient = impatient_transport(gnuhealth_peer)
    retry = {}

    def post_again():
        try:
            retry['ack'] = transport.post_charge(posted)
        except HISError as exc:
            retry['error'] = exc

    lock = sqlite3.connect(gnuhealth_peer.database_path,
        isolation_level=None, timeout=10)
    thread = threading.Thread(target=post_again)
    try:
        lock.execute('BEGIN IMMEDIATE')
        with pytest.raises(PeerUnavailable):
            impatient.post_charge(posted)
        thread.start()
        time.sleep(1)
    finally:
        lock.execute('ROLLBACK')
        lock.close()
    thread.join(60)
    assert 'error' not in retry
    ack = retry['ack']
    time.sleep(1)  # let the server finish the first post

    lines = lines_of(admin, posted.key)
    charged = [l for l in lines if l['to_invoice']]
    assert [l['id'] for l in charged] == [line_id(ack)]
    assert charged[0]['remarks'] == f'[hrp:{posted.key}]'
    # A first post that finished last left a line not to invoice, that
    # the next post of the key removes
    assert len(lines) <= 2
    again = transport.post_charge(posted)
    assert again.duplicate and again.his_reference == ack.his_reference
    assert [l['id'] for l in lines_of(admin, posted.key)] == [line_id(ack)]
    impatient.close()


def test_cancel_charge(transport, admin):
    posted = charge(item='S-0001', unit_price=Decimal('800.00'))
    ack = transport.post_charge(posted)
    cancelled = transport.cancel_charge(posted.key)
    assert (cancelled.cancelled, cancelled.duplicate) == (True, False)
    assert cancelled.his_reference == ack.his_reference
    line, = lines_of(admin, posted.key)
    assert line['remarks'] == f'[hrp-cancelled:{posted.key}]'
    assert not line['to_invoice']

    again = transport.cancel_charge(posted.key)
    assert (again.cancelled, again.duplicate) == (True, True)
    assert again.his_reference == ack.his_reference
    # Posting a cancelled key does not charge it again
    reposted = transport.post_charge(posted)
    assert (reposted.cancelled, reposted.duplicate) == (True, True)
    line, = lines_of(admin, posted.key)
    assert not line['to_invoice']


def test_cancel_unknown_charge(transport):
    with pytest.raises(NotFound):
        transport.cancel_charge(new_key())


def test_list_charges(transport):
    kept = transport.post_charge(charge(inpatient_number='ZY2026000124'))
    cancelled = transport.post_charge(
        charge(inpatient_number='ZY2026000124'))
    transport.cancel_charge(cancelled.key)
    other = transport.post_charge(charge(inpatient_number='ZY2026000123'))

    listed = {a.key: a for a in transport.list_charges('ZY2026000124')}
    assert listed[kept.key] == kept
    assert listed[cancelled.key].cancelled
    assert other.key not in listed
    everything = {a.key for a in transport.list_charges()}
    assert {kept.key, cancelled.key, other.key} <= everything
    assert transport.list_charges(
        since=dt.datetime.utcnow() + dt.timedelta(hours=1)) == []
    with pytest.raises(NotFound):
        transport.list_charges('ZY2099999999')


@pytest.mark.parametrize('values, error, match', [
        ({'inpatient_number': 'ZY2099999999'}, NotFound, 'ZY2099999999'),
        ({'inpatient_number': 'ZY2026000126'}, PeerRejected, 'cancelled'),
        ({'item': 'X-404'}, PeerRejected, 'X-404'),
        ({'item': 'C-9999'}, PeerRejected, 'C-9999'),
        ({'quantity': Decimal('1.5')}, PeerRejected, '1.5'),
        ({'quantity': Decimal(0)}, PeerRejected, 'whole positive'),
        ({'surgery_number': 'SS2099000000'}, NotFound, 'SS2099000000'),
        ({'surgery_number': 'SS2026000457'}, PeerRejected, 'not of the'),
        ])
def test_post_bad_charge(transport, admin, values, error, match):
    bad = charge(**values)
    with pytest.raises(error, match=match) as info:
        transport.post_charge(bad)
    assert not isinstance(info.value, NotFound) or error is NotFound
    assert lines_of(admin, bad.key) == []


def test_session_expired(gnuhealth_peer):
    transport = GNUHealthTransport(config_of(gnuhealth_peer))
    transport.find_patient('ZY2026000123')
    session = transport._authorization
    rpc(gnuhealth_peer.url, gnuhealth_peer.database, 'common.db.logout', [],
        session)
    assert transport.find_patient('ZY2026000123').name == '张三'
    assert transport._authorization != session
    transport.close()


def test_wrong_password(gnuhealth_peer, caplog):
    caplog.set_level(logging.DEBUG)
    password = 'not-the-password-4711'
    transport = GNUHealthTransport(config_of(gnuhealth_peer,
            username=gnuhealth_peer.standby_login, password=password))
    with pytest.raises(PeerRejected, match='refused the login') as info:
        transport.find_patient('ZY2026000123')
    assert password not in str(info.value)
    assert password not in repr(transport.config)
    assert password not in caplog.text


def test_unknown_database(gnuhealth_peer):
    transport = GNUHealthTransport(
        config_of(gnuhealth_peer, database='nowhere'))
    with pytest.raises(PeerRejected, match='nowhere'):
        transport.find_patient('ZY2026000123')


def test_peer_unreachable(gnuhealth_peer):
    transport = GNUHealthTransport(
        config_of(gnuhealth_peer, url=f'http://127.0.0.1:{free_port()}/'))
    with pytest.raises(PeerUnavailable, match='unreachable') as info:
        transport.post_charge(charge())
    assert gnuhealth_peer.password not in str(info.value)


def test_peer_silent():
    "A server that accepts the connection and never answers"
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen()
        port = server.getsockname()[1]
        transport = GNUHealthTransport(PeerConfig(
                url=f'http://127.0.0.1:{port}/', database='gnuhealth',
                username='hrp', password='secret', read_timeout=0.3))
        started = time.monotonic()
        with pytest.raises(PeerUnavailable, match='in time'):
            transport.find_patient('ZY2026000123')
        assert time.monotonic() - started < 5


def test_peer_stopped(gnuhealth_peer):
    "The server stops between two calls of a logged in transport"
    installation = gnuhealth_peer.installation
    peer = GNUHealthPeer(installation, gnuhealth_peer.seeded_database)
    peer.start()
    try:
        transport = GNUHealthTransport(config_of(peer))
        assert transport.find_patient('ZY2026000123').name == '张三'
    finally:
        peer.stop()
    with pytest.raises(PeerUnavailable):
        transport.post_charge(charge())
    transport.close()


class FakeHIS(http.server.BaseHTTPRequestHandler):
    "Answers the login, then what the test sets in server.mode"

    def do_POST(self):
        request = json.loads(self.rfile.read(
                int(self.headers['Content-Length'])))
        id_, method = request['id'], request['method']
        mode = self.server.mode
        if method == 'common.db.login' and mode != 'login garbage':
            self.reply({'id': id_, 'result': [1, 'session']})
        elif method == 'model.res.user.get_preferences':
            self.reply({'id': id_, 'result': {'company': 1}})
        elif mode in {'garbage', 'login garbage'}:
            self.reply(b'<html>Service Temporarily Unavailable</html>')
        elif mode == 'wrong id':
            self.reply({'id': id_ + 1, 'result': []})
        elif mode == 'bad shape':
            self.reply({'id': id_, 'result': {'name': 'ZY2026000123'}})
        elif mode == 'empty error':
            self.reply({'id': id_, 'error': []})
        elif mode == 'server fault':
            self.reply({'id': id_, 'error': ["KeyError: 'res.user'", 'tb']})
        elif mode == 'http 503':
            self.send_response(503)
            self.send_header('Content-Length', '0')
            self.end_headers()

    def reply(self, body):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_his():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), FakeHIS)
    server.mode = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize('mode, error', [
        ('garbage', MalformedReply),
        ('login garbage', MalformedReply),
        ('wrong id', MalformedReply),
        ('bad shape', MalformedReply),
        ('empty error', MalformedReply),
        ('server fault', PeerUnavailable),
        ('http 503', PeerUnavailable),
        ])
def test_bad_replies(fake_his, mode, error):
    fake_his.mode = mode
    transport = GNUHealthTransport(PeerConfig(
            url=f'http://127.0.0.1:{fake_his.server_address[1]}/',
            database='gnuhealth', username='hrp', password='secret',
            read_timeout=5))
    with pytest.raises(error) as info:
        transport.find_patient('ZY2026000123')
    assert 'secret' not in str(info.value)
    transport.close()


def test_post_charge_latency(transport):
    "Per-call latency of a post to a warm session (printed with -s)"
    transport.find_patient('ZY2026000124')
    durations = []
    for _ in range(10):
        started = time.perf_counter()
        transport.post_charge(charge(inpatient_number='ZY2026000124',
                item='C-0003', unit_price=Decimal('5.50')))
        durations.append(time.perf_counter() - started)
    durations.sort()
    print(f"post_charge: median {statistics.median(durations) * 1000:.0f} "
        f"ms, max {durations[-1] * 1000:.0f} ms over {len(durations)} posts")
    assert statistics.median(durations) < 5
