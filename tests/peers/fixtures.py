# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""pytest fixtures of the GNU Health peer, registered by the top-level
conftest.py (``pytest_plugins``)."""
import pytest


@pytest.fixture(scope='session')
def gnuhealth_peer():
    """A GNU Health 5.0 server on 127.0.0.1 serving a fresh copy of the
    seeded database (tests/peers/gnuhealth_seed.py) for the whole session.

    The first run on a machine builds its virtualenv and database (a few
    minutes); later runs start it in seconds."""
    from .gnuhealth_peer import GNUHealthPeer
    peer = GNUHealthPeer.start_new()
    try:
        yield peer
    finally:
        peer.stop()
