# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""pytest fixtures running the FHIR and HL7 test peers as processes.

``fhir_peer`` and ``hl7_peer`` give a peer shared by the session (one
process each), reset (charges, faults, authentication) before each test;
``spawn_peer`` starts a private peer that a test may kill.  Registered by
the top-level conftest.py through ``pytest_plugins``."""
import json
import os
import pathlib
import select
import subprocess
import sys
import tempfile
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SCRIPTS = {
    'fhir': HERE / 'fhir_peer.py',
    'hl7': HERE / 'hl7_peer.py',
    }
START_TIMEOUT = 30
# Small pages, so that the transports' paging is exercised
PAGE_SIZE = 2


class PeerProcess:
    "A test peer running in its own process on 127.0.0.1"

    def __init__(self, kind, *args):
        self.kind = kind
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ)
        # The peers talk to the loopback only: never through a proxy
        env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPTS[kind]),
                '--page-size', str(PAGE_SIZE), *args],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
            env=env)
        ready, _, _ = select.select(
            [self.process.stdout], [], [], START_TIMEOUT)
        line = self.process.stdout.readline() if ready else b''
        if not line:
            self.stop()
            raise RuntimeError(
                f"The {kind} peer did not start: {self.stderr()}")
        info = json.loads(line)
        self.url = info['url']
        self.control_url = info['control']

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode('utf-8', 'replace')[-4000:]

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        "Terminate the peer (SIGTERM, then SIGKILL after 5 s)"
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()

    def kill(self):
        "Kill the peer at once, as a crash would"
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def _control(self, method, path, data=None):
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(
            self.control_url + path, data=body, method=method,
            headers={'Content-Type': 'application/json'})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return json.loads(response.read())

    def reset(self):
        "Restore the initial records; forget faults, charges, auth"
        self._control('POST', '/reset', {})

    def fault(self, mode, count=1, delay=0.0, match=None):
        """Inject a fault into the next `count` requests whose kind holds
        all words of match ('POST ChargeItem', 'DFT', …)"""
        self._control('POST', '/fault', {
                'mode': mode, 'count': count, 'delay': delay,
                'match': match})

    def require_auth(self, basic=None, bearer=None):
        data = {'basic': basic} if basic else {'bearer': bearer}
        self._control('POST', '/auth', data)

    def events(self, event=None, key=None):
        "The charges ('charge') and cancellations ('cancel') applied"
        return [
            e for e in self._control('GET', '/events')['events']
            if (event is None or e['event'] == event)
            and (key is None or e['key'] == key)]

    def count(self, event, key):
        return len(self.events(event, key))

    def config(self, connect_timeout=2.0, read_timeout=3.0, **kwargs):
        from his_connector.his import PeerConfig
        return PeerConfig(
            url=self.url, connect_timeout=connect_timeout,
            read_timeout=read_timeout, **kwargs)


def _session_peer(kind):
    peer = PeerProcess(kind)
    try:
        yield peer
    finally:
        peer.stop()


def _test_peer(peer):
    if not peer.alive():
        pytest.fail(f"The {peer.kind} peer died: {peer.stderr()}")
    peer.reset()
    return peer


@pytest.fixture(scope='session')
def fhir_peer_process():
    yield from _session_peer('fhir')


@pytest.fixture(scope='session')
def hl7_peer_process():
    yield from _session_peer('hl7')


@pytest.fixture
def fhir_peer(fhir_peer_process):
    "The session's FHIR peer, reset"
    return _test_peer(fhir_peer_process)


@pytest.fixture
def hl7_peer(hl7_peer_process):
    "The session's HL7 peer, reset"
    return _test_peer(hl7_peer_process)


@pytest.fixture
def spawn_peer():
    "Start private peers: spawn_peer('fhir' or 'hl7'); stopped at teardown"
    peers = []

    def spawn(kind, *args):
        peer = PeerProcess(kind, *args)
        peers.append(peer)
        return peer
    yield spawn
    for peer in peers:
        peer.stop()
