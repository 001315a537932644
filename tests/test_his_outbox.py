# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The outbox delivering charges to the real FHIR and HL7 test peers
(tests/peers) with injected faults: exactly one charge at the peer whatever
the retries; and a real ``trytond-worker`` process on PostgreSQL, killed
with SIGKILL in the middle of a delivery.

The queue runs the way trytond runs it without a worker (run_task on each
due task) except in the worker tests."""
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

import pytest

from his_connector.tests.test_outbox import (
    committed, create_endpoint, deactivate_others, make_due, messages,
    new_charge, run_queue, settings, setup_company)

READ_TIMEOUT = 1.0


@pytest.fixture(scope='module')
def database():
    from trytond.tests.test_tryton import activate_module, drop_db
    drop_db()
    activate_module(['his_connector'])
    with settings(retry_base=30, retry_cap=3600, stale_grace=0,
            batch_size=50):
        yield
    drop_db()


@pytest.fixture
def company(database):
    run_queue()
    return setup_company()


def his_endpoint(company_id, peer, kind='fhir', **values):
    endpoint_id = create_endpoint(
        company_id, kind=kind, url=peer.url,
        read_timeout=READ_TIMEOUT, **values)
    deactivate_others(company_id, 'his', endpoint_id)
    return endpoint_id


def post(company_id, charge):
    from trytond.pool import Pool
    with committed(company_id):
        return Pool().get('his.service').post_charge(charge).id


def cancel(company_id, key):
    from trytond.pool import Pool
    with committed(company_id):
        return Pool().get('his.service').cancel_charge(key).id


def one(message_id):
    return messages([message_id])[message_id]


@pytest.mark.parametrize('kind', ['fhir', 'hl7_mllp'])
def test_post_and_cancel(company, fhir_peer, hl7_peer, kind):
    "Post then cancel: one charge, one cancellation at the peer"
    peer = fhir_peer if kind == 'fhir' else hl7_peer
    his_endpoint(company, peer, kind=kind)
    charge = new_charge()
    post_id = post(company, charge)
    cancel_id = cancel(company, charge.key)
    run_queue()
    assert one(post_id).state == 'delivered'
    assert one(post_id).his_reference
    assert not one(post_id).duplicate
    assert one(cancel_id).state == 'delivered'
    assert peer.count('charge', charge.key) == 1
    assert peer.count('cancel', charge.key) == 1


@pytest.mark.parametrize('kind', ['fhir', 'hl7_mllp'])
def test_lost_ack(company, fhir_peer, hl7_peer, kind):
    "The peer applies the charge, its answer is lost: the retry is a duplicate"
    peer = fhir_peer if kind == 'fhir' else hl7_peer
    his_endpoint(company, peer, kind=kind)
    charge = new_charge()
    peer.fault('delay', delay=READ_TIMEOUT + 1.5,
        match='POST ChargeItem' if kind == 'fhir' else 'DFT')
    message_id = post(company, charge)
    run_queue()
    message = one(message_id)
    assert (message.state, message.attempts) == ('retrying', 1)
    assert 'PeerUnavailable' in message.last_error
    assert peer.count('charge', charge.key) == 1

    make_due([message_id])
    run_queue()
    message = one(message_id)
    assert (message.state, message.attempts) == ('delivered', 2)
    assert message.duplicate
    assert peer.count('charge', charge.key) == 1


def test_server_error_then_delivered(company, fhir_peer):
    "HTTP 500 twice: retried, then delivered once"
    his_endpoint(company, fhir_peer)
    charge = new_charge()
    fhir_peer.fault('error', count=2, match='POST ChargeItem')
    message_id = post(company, charge)
    for _ in range(2):
        run_queue()
        assert one(message_id).state == 'retrying'
        assert 'HTTP 500' in one(message_id).last_error
        make_due([message_id])
    run_queue()
    assert one(message_id).state == 'delivered'
    assert one(message_id).attempts == 3
    assert fhir_peer.count('charge', charge.key) == 1


def test_rejected_is_parked_at_once(company, fhir_peer):
    "A charge the peer refuses is parked at the first attempt"
    his_endpoint(company, fhir_peer)
    charge = new_charge(charge_item='C99990009')     # inactive item
    message_id = post(company, charge)
    run_queue()
    message = one(message_id)
    assert (message.state, message.attempts) == ('parked', 1)
    assert 'C99990009' in message.last_error
    assert fhir_peer.count('charge', charge.key) == 0


def test_peer_down_parked_then_retried(company, spawn_peer, fhir_peer):
    """The HIS is down: back-off, parked after the maximum attempts; the
    administrator points the endpoint at the HIS again and retries"""
    from trytond.pool import Pool
    down = spawn_peer('fhir')
    endpoint_id = his_endpoint(company, down, max_attempts=3)
    down.kill()
    charge = new_charge()
    message_id = post(company, charge)
    for attempt in range(1, 4):
        run_queue()
        message = one(message_id)
        assert message.attempts == attempt
        assert 'PeerUnavailable' in message.last_error
        make_due([message_id])
    assert one(message_id).state == 'parked'
    assert run_queue() == 0

    with committed(company):
        pool = Pool()
        Endpoint = pool.get('his.endpoint')
        Outbox = pool.get('his.outbox')
        Endpoint.write([Endpoint(endpoint_id)], {'url': fhir_peer.url})
        Outbox.requeue([Outbox(message_id)], "HIS back after maintenance")
    run_queue()
    message = one(message_id)
    assert (message.state, message.attempts) == ('delivered', 1)
    assert fhir_peer.count('charge', charge.key) == 1


def test_reconciliation(company, fhir_peer):
    "Our delivered charges against the peer's"
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    from his_connector.transports.fhir import FHIRTransport
    endpoint_id = his_endpoint(company, fhir_peer)
    start = dt.datetime.now() - dt.timedelta(minutes=1)
    kept, cancelled, missing = new_charge(), new_charge(), new_charge()
    ids = [post(company, c) for c in (kept, cancelled, missing)]
    cancel_id = cancel(company, cancelled.key)
    run_queue()
    assert {m.state for m in messages(ids + [cancel_id]).values()} == {
        'delivered'}
    # A charge with our key that we do not know (posted by hand)
    stray = new_charge(key='hrp-stray-1')
    transport = FHIRTransport(fhir_peer.config())
    transport.post_charge(stray)
    transport.close()
    with committed(company):
        pool = Pool()
        Outbox = pool.get('his.outbox')
        Reconciliation = pool.get('his.reconciliation')
        # Pretend the peer lost one charge: ours says another key
        table = Outbox.__table__()
        Transaction().connection.cursor().execute(*table.update(
                [table.key], ['hrp-lost-1'], where=table.id == ids[2]))
        reconciliation, = Reconciliation.create([{
                    'company': company,
                    'endpoint': endpoint_id,
                    'start': start,
                    'end': dt.datetime.now() + dt.timedelta(minutes=1),
                    }])
        Reconciliation.compare([reconciliation])
        found = sorted((l.kind, l.key) for l in reconciliation.lines)
        assert reconciliation.ours == 3
    assert found == sorted([
            ('missing', 'hrp-lost-1'),
            ('unknown', missing.key),
            ('unknown', 'hrp-stray-1'),
            ])


# A real trytond-worker process (PostgreSQL)

def _backend():
    from trytond import backend
    return backend.name


@pytest.fixture
def worker(database, tmp_path):
    """Start trytond-worker processes on the test database: start() returns
    the process; all are killed at teardown"""
    if _backend() != 'postgresql':
        pytest.skip("trytond-worker needs PostgreSQL (LISTEN/NOTIFY and "
            "concurrent writers)")
    from trytond.tests.test_tryton import DB_NAME
    conf = tmp_path / 'worker.conf'
    conf.write_text(
        "[database]\n"
        f"uri = {os.environ['TRYTOND_DATABASE_URI']}\n"
        "[queue]\nworker = True\n"
        "[his_connector]\nretry_base = 30\nstale_grace = 0\n")
    processes = []
    logs = []

    def start():
        log = tempfile.TemporaryFile()
        logs.append(log)
        env = dict(os.environ)
        env.pop('TRYTOND_DATABASE_URI', None)
        env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
        process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), 'trytond-worker'),
                '-c', str(conf), '-d', DB_NAME, '-n', '1', '--timeout', '2'],
            stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        processes.append(process)
        return process
    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_for(predicate, seconds=60):
    "Wait until predicate() is true (a wait, not a timed assertion)"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_worker_delivers(company, fhir_peer, worker):
    "trytond-worker delivers the queued charges"
    his_endpoint(company, fhir_peer)
    worker()
    charges = [new_charge(quantity=Decimal(i + 1)) for i in range(5)]
    ids = [post(company, c) for c in charges]
    assert wait_for(lambda: all(
            m.state == 'delivered' for m in messages(ids).values()))
    for charge in charges:
        assert fhir_peer.count('charge', charge.key) == 1


def test_worker_killed_mid_delivery(company, fhir_peer, worker):
    """SIGKILL of the worker while the peer holds the charge's answer: the
    message stays sending; recovered, a new worker delivers it as a
    duplicate, and the peer holds one charge"""
    from trytond.pool import Pool
    his_endpoint(company, fhir_peer, connect_timeout=0.5)
    fhir_peer.fault('delay', delay=30, match='POST ChargeItem')
    process = worker()
    charge = new_charge()
    message_id = post(company, charge)
    assert wait_for(lambda: fhir_peer.count('charge', charge.key) == 1)
    assert one(message_id).state == 'sending'
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)

    # Stale after 2 × (connect + read timeouts)
    time.sleep(2 * (0.5 + READ_TIMEOUT) + 0.5)
    with committed():
        stale, _ = Pool().get('his.outbox').recover()
        assert [m.id for m in stale] == [message_id]
    worker()
    assert wait_for(lambda: one(message_id).state == 'delivered')
    message = one(message_id)
    assert message.duplicate
    assert message.attempts == 2
    assert fhir_peer.count('charge', charge.key) == 1


def test_batch_with_faults(company, fhir_peer):
    """One task sends a batch over several connections at once: the calls
    that fail are retried, every charge is at the peer once"""
    from trytond.pool import Pool
    his_endpoint(company, fhir_peer)
    for mode in ['error', 'drop', 'delay']:
        fhir_peer.fault(mode, delay=READ_TIMEOUT + 1.5,
            match='POST ChargeItem')
    charges = [new_charge() for _ in range(8)]
    with committed(company):
        Service = Pool().get('his.service')
        ids = [Service.post_charge(c).id for c in charges]
    run_queue()
    found = messages(ids)
    assert sorted((m.state, m.attempts) for m in found.values()) == (
        [('delivered', 1)] * 5 + [('retrying', 1)] * 3)
    make_due(ids)
    run_queue()
    found = messages(ids)
    assert {m.state for m in found.values()} == {'delivered'}
    # The charge whose answer was lost was applied by the first call
    assert sum(m.duplicate for m in found.values()) == 1
    # Each answer went to its own message
    references = {
        e['key']: e['his_reference'] for e in fhir_peer.events('charge')}
    assert {m.key: m.his_reference for m in found.values()} == {
        c.key: references[c.key] for c in charges}
    for charge in charges:
        assert fhir_peer.count('charge', charge.key) == 1
