# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Every string a user sees has a zh_CN translation."""
import pytest

from hrp import i18n


@pytest.fixture(scope='module')
def database():
    from trytond.tests.test_tryton import activate_module, drop_db
    drop_db()
    activate_module(i18n.MODULES + i18n.EXTRAS)
    yield
    drop_db()


@pytest.mark.parametrize('module', i18n.MODULES)
def test_po_complete(database, module):
    from trytond.tests.test_tryton import DB_NAME
    from trytond.transaction import Transaction
    with Transaction().start(DB_NAME, 0, readonly=False) as transaction:
        i18n.set_translations()
        missing = i18n.missing(module)
        transaction.rollback()
    assert not missing, "untranslated: " + "; ".join(
        f'{e.msgctxt} {e.msgid!r}' for e in missing)
