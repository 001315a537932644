# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The used products summary (已使用产品汇总): posted usage by the supplier
that delivered the lots, store and material, for a period."""
import unittest

from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)
from trytond.transaction import Transaction

from .test_consumption import days, receive, today
from .test_receiving import Receiving, gs1, gtin
from .tools import as_user, create_cost_center, create_user


def spreadsheet_rows(extension, content):
    """The rows of the first table of an OpenDocument spreadsheet: the cell
    values (floats for numbers, text else), empty trailing cells left out"""
    import io
    import zipfile
    from xml.etree import ElementTree

    assert extension == 'ods', extension
    if isinstance(content, str):
        content = content.encode('utf-8')
    if content.startswith(b'PK'):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            assert archive.read('mimetype') == (
                b'application/vnd.oasis.opendocument.spreadsheet')
            content = archive.read('content.xml')
    ns = {
        'table': 'urn:oasis:names:tc:opendocument:xmlns:table:1.0',
        'office': 'urn:oasis:names:tc:opendocument:xmlns:office:1.0',
        'text': 'urn:oasis:names:tc:opendocument:xmlns:text:1.0',
        }
    root = ElementTree.fromstring(content)
    table = root.find('.//table:table', ns)
    rows = []
    for row in table.findall('table:table-row', ns):
        values = []
        for cell in row.findall('table:table-cell', ns):
            kind = cell.get('{%s}value-type' % ns['office'])
            if kind == 'float':
                values.append(float(cell.get('{%s}value' % ns['office'])))
            else:
                values.append(''.join(cell.itertext()))
        while values and values[-1] == '':
            values.pop()
        if values:
            rows.append(values)
    return rows


class UsageSummaryTestCase(unittest.TestCase):
    "Test the used products summary"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    @with_transaction()
    def test_summary(self):
        """Stents received from the supplier and used for two patients are
        summed under the supplier; a cancelled registration, units of other
        periods and gauze of found stock (no receipt) are left out"""
        pool = Pool()
        Consumption = pool.get('hrp.consumption')
        Department = pool.get('hrp.department')
        Move = pool.get('stock.move')
        Receipt = pool.get('hrp.receipt')
        Summary = pool.get('hrp.usage.summary')
        h = Receiving()
        with set_company(h.company):
            cost_center = create_cost_center(h.company, "心内科成本")
            department = h.cardio_store.hrp_department
            Department.write([department], {'cost_center': cost_center.id})

            purchase = h.purchase([(h.stent, 3)])
            receipt = h.receipt(purchase)
            for serial in ['SN1', 'SN2', 'SN3']:
                Receipt.scan_barcode(receipt.id, gs1(
                        gtin(2), expiry=days(400), lot='B1', serial=serial))
            Receipt.receive([receipt])
            lots = {l.serial: l.lot for l in Receipt(receipt.id).lines}
            # the store keeper issues them to the cardiology store
            moves = Move.create([{
                        'product': h.stent.id, 'unit': h.stent.default_uom.id,
                        'quantity': 1, 'lot': lot.id,
                        'from_location': h.central.id,
                        'to_location': h.cardio_store.id,
                        'company': h.company.id,
                        'effective_date': today(),
                        } for lot in lots.values()])
            Move.do(moves)
            receive(h.company, h.cardio_store, h.gauze, 10)

            def register(lines, date=None):
                consumption, = Consumption.create([{
                            'department': department.id,
                            'store': h.cardio_store.id,
                            'kind': 'bulk',
                            'date': date or today(),
                            'lines': [('create', [{
                                            'product': product.id,
                                            'quantity': quantity,
                                            'lot': lot.id if lot else None,
                                            } for product, quantity, lot
                                        in lines])],
                            }])
                Consumption.post([consumption])
                return consumption

            register([(h.stent, 1, lots['SN1']), (h.gauze, 4, None)])
            register([(h.stent, 1, lots['SN2'])])
            cancelled = register([(h.stent, 1, lots['SN3'])])
            cancelled.cancel_reason = "登记错误"
            cancelled.save()
            Consumption.reverse([cancelled])

            with Transaction().set_context(
                    company=h.company.id, from_date=today(),
                    to_date=today()):
                rows = Summary.search([])
                self.assertEqual([(
                            r.supplier, r.store, r.product, r.quantity,
                            r.registrations) for r in rows], [
                        (h.supplier, h.cardio_store, h.stent, 2, 2)])
                used = [l for c in Consumption.search([
                            ('state', '=', 'done')]) for l in c.lines
                    if l.product == h.stent]
                self.assertEqual(
                    rows[0].amount, sum(l.amount for l in used))
            with Transaction().set_context(
                    company=h.company.id, from_date=days(1)):
                self.assertEqual(Summary.search([]), [])

            # exported as a spreadsheet, the period in its title
            with as_user(h.keeper, h.company), Transaction().set_context(
                    company=h.company.id, from_date=today(),
                    to_date=today()):
                ids = [r.id for r in Summary.search([])]
                sheet = spreadsheet_rows(*Pool().get(
                        'hrp.usage.summary.report', type='report').execute(
                        ids, {'model': Summary.__name__, 'ids': ids})[:2])
            self.assertEqual(sheet[0], ["Used Products Summary"])
            self.assertIn(str(today().year), sheet[1][0])
            self.assertEqual(sheet[2][:4], [
                    "Supplier", "Store", "Material", "Quantity"])
            self.assertEqual(sheet[3][:5], [
                    h.supplier.rec_name, h.cardio_store.rec_name,
                    h.stent.rec_name, 2.0, h.stent.default_uom.symbol])
            self.assertEqual(len(sheet), 4)

            # a store keeper reads it, a nurse may not
            nurse = create_user(
                'nurse', 'hrp_materials.group_nurse', h.company)
            context = dict(company=h.company.id, from_date=today())
            with as_user(h.keeper, h.company), \
                    Transaction().set_context(context):
                self.assertEqual(len(Summary.search([])), 1)
            with as_user(nurse, h.company), \
                    Transaction().set_context(context):
                with self.assertRaises(AccessError):
                    Summary.search([])
