# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Deliver charges through the outbox with real trytond-worker processes to
the FHIR test peer, and print the figures.

    python tests/bench/bench_outbox.py [--uri URI] [--charges N]
        [--workers W] [--faults] [--batch-size B]

Targets (issue 3): at least 200 charges/s delivered to the HTTP peer on
loopback with 2 workers; with --faults, 10 % of the peer's answers faulty
(HTTP 500, dropped connections, answers lost after a delay longer than the
read timeout) and one worker killed with SIGKILL in the middle of the batch
(then restarted): zero duplicates and zero losses at the peer.

Builds a throw-away PostgreSQL database with his_connector, starts the FHIR
peer (tests/peers/fhir_peer.py), posts N charges through his.service in one
transaction (N messages; the transaction pushes ``delivery_tasks`` = W queue
tasks, each delivering batches until nothing is due), then starts W
``trytond-worker -n 1`` processes and waits until every message is delivered, running the
outbox's recover job every 2 s as trytond-cron would.  It asserts nothing
but prints the counts at the peer."""
import argparse
import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def machine_cpu():
    "(busy, total) clock ticks of all CPUs since boot (Linux)"
    with open('/proc/stat') as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def process_cpu(pid):
    "The CPU seconds used by the process pid (Linux)"
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default=os.environ.get(
            'HRP_TEST_DB_URI', 'postgresql://postgres@127.0.0.1:5432/'))
    parser.add_argument('--charges', type=int, default=2000)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=50)
    parser.add_argument('--faults', action='store_true')
    options = parser.parse_args(argv)

    os.environ['TRYTOND_DATABASE_URI'] = options.uri
    os.environ['DB_NAME'] = db_name = f'bench_outbox_{os.getpid()}'
    os.environ.pop('DB_CACHE', None)

    import trytond.config as config
    from trytond.modules.company.tests import create_company
    from trytond import backend
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module, drop_db
    from trytond.transaction import Transaction

    from his_connector.his import Charge
    from tests.peers.protocol_fixtures import PeerProcess

    read_timeout = 1.0
    settings = {
        'retry_base': '0.5', 'retry_cap': '4', 'stale_grace': '1',
        'batch_size': str(options.batch_size),
        'delivery_tasks': str(options.workers)}
    if not config.has_section('his_connector'):
        config.add_section('his_connector')
    for key, value in settings.items():
        config.set('his_connector', key, value)

    started = time.perf_counter()
    activate_module(['his_connector'])
    print(f"database ready in {time.perf_counter() - started:.1f} s")
    peer = PeerProcess('fhir', '--page-size', '1000')
    workers, logs = [], []
    conf = tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False)
    conf.write(
        f"[database]\nuri = {options.uri}\n[queue]\nworker = True\n"
        "[his_connector]\n"
        + ''.join(f"{k} = {v}\n" for k, v in settings.items()))
    conf.close()

    def start_worker():
        log = tempfile.TemporaryFile()
        logs.append(log)
        env = dict(os.environ)
        env.pop('TRYTOND_DATABASE_URI', None)
        env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
        process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), 'trytond-worker'),
                '-c', conf.name, '-d', DB_NAME, '-n', '1',
                '--timeout', '2'],
            stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        workers.append(process)
        return process

    def states():
        with Transaction().start(DB_NAME, 0, readonly=True):
            Outbox = Pool().get('his.outbox')
            table = Outbox.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.select(table.state))
            return collections.Counter(s for s, in cursor)

    try:
        with Transaction().start(DB_NAME, 0) as transaction:
            company = create_company()
            Endpoint = Pool().get('his.endpoint')
            Endpoint.create([{
                        'name': 'FHIR', 'company': company.id,
                        'purpose': 'his', 'kind': 'fhir', 'url': peer.url,
                        'connect_timeout': 1.0,
                        'read_timeout': read_timeout,
                        'max_attempts': 50,
                        }])
            transaction.commit()
            company_id = company.id

        run = uuid.uuid4().hex[:8]
        keys = [f'hrp-bench-{run}-{i:06d}' for i in range(options.charges)]
        start = time.perf_counter()
        with Transaction().start(DB_NAME, 0, context={
                    'company': company_id}) as transaction:
            Service = Pool().get('his.service')
            for i, key in enumerate(keys):
                Service.post_charge(Charge(
                        key=key, inpatient_number='ZY2026000101',
                        charge_item='C14010003',
                        quantity=Decimal(1 + i % 5),
                        unit_price=Decimal('0.85'),
                        insurance_code='C14010100100003',
                        department='XNK',
                        date=dt.datetime(2026, 11, 1, 3, 5)))
            transaction.tasks.clear()
            transaction.commit()
        print(f"{options.charges} charges posted (messages and queue tasks) "
            f"in {time.perf_counter() - start:.1f} s")

        if options.faults:
            tenth = max(options.charges // 10, 3)
            peer.fault('error', count=tenth // 3, match='POST ChargeItem')
            peer.fault('drop', count=tenth // 3, match='POST ChargeItem')
            peer.fault('delay', count=tenth - 2 * (tenth // 3),
                delay=read_timeout + 0.5, match='POST ChargeItem')
            print(f"injected {tenth} faults: {tenth // 3} HTTP 500, "
                f"{tenth // 3} dropped connections, "
                f"{tenth - 2 * (tenth // 3)} lost answers")

        start = time.perf_counter()
        cpu_start, peer_start = machine_cpu(), process_cpu(peer.pid)
        for _ in range(options.workers):
            start_worker()
        killed = False
        last_recover = time.perf_counter()
        recovered = 0
        while True:
            time.sleep(0.25)
            counts = states()
            delivered = counts.get('delivered', 0)
            if delivered >= options.charges or counts.get('parked'):
                break
            if (options.faults and not killed
                    and delivered >= options.charges * 0.3):
                victim = workers[0]
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(10)
                killed = True
                print(f"SIGKILL worker {victim.pid} at {delivered} "
                    f"delivered ({dict(counts)}); restarted")
                start_worker()
            if time.perf_counter() - last_recover > 2:
                try:
                    with Transaction().start(DB_NAME, 0) as transaction:
                        stale, lost = Pool().get('his.outbox').recover()
                        transaction.commit()
                    recovered += len(stale)
                except backend.DatabaseOperationalError:
                    # A worker wrote them meanwhile: as trytond-cron, try
                    # again at the next run
                    pass
                last_recover = time.perf_counter()
            if time.perf_counter() - start > 1800:
                print("gave up after 30 minutes")
                break
        elapsed = time.perf_counter() - start
        busy, total = (e - s for e, s in zip(machine_cpu(), cpu_start))
        peer_cpu = process_cpu(peer.pid) - peer_start
        counts = states()
        print(f"states: {dict(counts)}")
        print(f"{counts.get('delivered', 0)} charges delivered in "
            f"{elapsed:.1f} s with {options.workers} workers: "
            f"{counts.get('delivered', 0) / elapsed:.0f} charges/s"
            + (f"; {recovered} interrupted deliveries recovered"
                if options.faults else ''))

        print(f"CPU busy during delivery: {100 * busy / total:.0f} % of "
            f"{os.cpu_count()} CPUs; the peer used "
            f"{1000 * peer_cpu / max(counts.get('delivered', 0), 1):.1f} ms "
            "CPU per charge")

        events = peer.events('charge')
        at_peer = collections.Counter(
            e['key'] for e in events if e['key'] in set(keys))
        duplicates = sum(c - 1 for c in at_peer.values() if c > 1)
        missing = len(set(keys) - set(at_peer))
        print(f"at the peer: {len(at_peer)} charges, {duplicates} "
            f"duplicates, {missing} missing")
        with Transaction().start(DB_NAME, 0, readonly=True):
            Outbox = Pool().get('his.outbox')
            flagged = Outbox.search_count([('duplicate', '=', True)])
            retried = Outbox.search_count([('attempts', '>', 1)])
        print(f"messages answered as duplicates: {flagged}; "
            f"delivered after more than one attempt: {retried}")
    finally:
        for process in workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        peer.stop()
        os.unlink(conf.name)
        drop_db()
        del db_name


if __name__ == '__main__':
    main()
