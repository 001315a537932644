# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""UDI barcodes scanned at receiving: GS1, HIBC and China MA codes.

Vectors and where they come from:
- GS1: GTIN 09501101020917 with lot ABCD1234, expiry 190508 and serial 10 is
  the GS1 General Specifications' GS1-128 / GS1 DataMatrix example; GTIN
  09506000134352 is GS1's Digital Link example GTIN.
- HIBC: the "+X999123ABC0/..." strings are the HIBC UDI examples published in
  the Micro Focus IDOL Eduction "device" grammar documentation;
  "+A123BJC5D6E71G" is the mod 43 example of the Zebra scanner manuals and
  "+A1234BJC5D6E71K" that of the Code 39 / HIBC check character tutorials;
  "+A123BJC5D6E71/$$52001510X3" is IDAutomation's HIBC example data (its
  check character, computed here, is "C").
- MA: codes quoted from public source code of Chinese UDI software (a
  generator's comments and an importer's tests).
Other vectors are derived: their check characters are computed by the
functions under test, whose algorithms the published vectors verify.
"""
import datetime as dt
import unittest

from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)

from .. import barcode
from ..barcode import BarcodeError, Scan, combine, find_product, parse
from . import test_module

D = dt.date


def hibc(data):
    "Return data completed with its HIBC check character"
    return data + barcode.hibc_check_character(data)


class ParseMixin:

    def assertScan(self, text, **expected):
        scan = parse(text)
        self.assertIsInstance(scan, Scan)
        values = {
            'gtin': None, 'product_code': None, 'lot': None, 'expiry': None,
            'production_date': None, 'serial': None, 'quantity': None,
            **expected}
        for name, value in values.items():
            self.assertEqual(getattr(scan, name), value, (text, name))
        return scan

    def assertError(self, text, message_id, **variables):
        with self.assertRaises(BarcodeError) as cm:
            parse(text)
        self.assertEqual(cm.exception.message_id, message_id)
        for name, value in variables.items():
            self.assertEqual(cm.exception.variables[name], value, name)
        return cm.exception


class GS1TestCase(ParseMixin, unittest.TestCase):
    "Parse GS1 element strings"

    def test_gs1_128_specification_example(self):
        "The GS1-128 example with its symbology identifier and a literal <GS>"
        scan = self.assertScan(
            ']C101095011010209171719050810ABCD1234<GS>2110',
            gtin='09501101020917', expiry=D(2019, 5, 8), lot='ABCD1234',
            serial='10')
        self.assertEqual(scan.scheme, 'gs1')
        self.assertEqual(
            scan.raw, ']C101095011010209171719050810ABCD1234<GS>2110')

    def test_datamatrix_with_ascii_29(self):
        "GS1 DataMatrix with ASCII 29 separators, a leading FNC1 and CR/LF"
        text = (
            ']d2\x1d01095011010209171719050810ABCD1234\x1d2110\r\n')
        scan = self.assertScan(
            text, gtin='09501101020917', expiry=D(2019, 5, 8),
            lot='ABCD1234', serial='10')
        self.assertEqual(scan.raw, text[:-2])

    def test_other_symbology_identifiers(self):
        "GS1 QR Code, DataBar and no symbology identifier"
        for prefix in [']Q3', ']e0', '', '\x1d']:
            with self.subTest(prefix=prefix):
                self.assertScan(
                    prefix + '010950600013435217201225\x1d10ABC123',
                    gtin='09506000134352', expiry=D(2020, 12, 25),
                    lot='ABC123')

    def test_separator_after_fixed_length(self):
        "A separator is accepted after a fixed-length element"
        self.assertScan(
            '0109506000134352\x1d17201225\x1d10ABC123\x1d2199',
            gtin='09506000134352', expiry=D(2020, 12, 25), lot='ABC123',
            serial='99')

    def test_human_readable(self):
        "The human-readable form with parentheses"
        self.assertScan(
            '(01)09506000134352(17)201225(10)ABC123',
            gtin='09506000134352', expiry=D(2020, 12, 25), lot='ABC123')
        self.assertScan(
            '(01) 09506000134352 (11) 240115 (17) 270100 (21) SN-1 (30) 12',
            gtin='09506000134352', production_date=D(2024, 1, 15),
            expiry=D(2027, 1, 31), serial='SN-1', quantity=12)

    def test_day_00(self):
        "Day 00 of an expiry is the last day of the month"
        self.assertScan(
            '010950600013435217240200', gtin='09506000134352',
            expiry=D(2024, 2, 29))

    def test_quantity(self):
        "Quantity from AI (30), else AI (37); GTIN from AI (02) on SSCC labels"
        self.assertScan(
            '0109506000134352\x1d3025\x1d10L1', gtin='09506000134352',
            quantity=25, lot='L1')
        self.assertScan(
            '(00)106141411234567897(02)09506000134352(37)20(10)L1',
            gtin='09506000134352', quantity=20, lot='L1')

    def test_digital_link(self):
        "A GS1 Digital Link URI"
        self.assertScan(
            'https://id.gs1.org/01/09506000134352/10/ABC123?17=201225',
            gtin='09506000134352', lot='ABC123', expiry=D(2020, 12, 25))

    def test_plain_gtin(self):
        "A bare EAN-13, UPC-A or GTIN-8 becomes a 14-digit GTIN"
        self.assertScan('6901234567892', gtin='06901234567892')
        self.assertScan(']E06901234567892', gtin='06901234567892')
        self.assertScan('96385074', gtin='00000096385074')

    def test_wrong_check_digit(self):
        "A wrong GTIN check digit is reported with the expected digit"
        self.assertError(
            '(01)09506000134353(17)201225(10)ABC123',
            'msg_barcode_check_digit', gtin='09506000134353', expected='2')
        self.assertError(
            ']C101095011010209181719050810ABCD1234',
            'msg_barcode_check_digit', gtin='09501101020918', expected='7')
        self.assertError(
            '6901234567891', 'msg_barcode_check_digit',
            gtin='6901234567891', expected='2')

    def test_bad_date(self):
        "Month 13, month 00 and 30 February are invalid dates"
        self.assertError(
            '(01)09506000134352(17)251301(10)A', 'msg_barcode_date',
            value='251301', field='AI (17)')
        self.assertError(
            '01095060001343521725130110A', 'msg_barcode_date',
            value='251301', field='AI (17)')
        self.assertError(
            '010950600013435211250015', 'msg_barcode_date',
            value='250015', field='AI (11)')
        self.assertError(
            '(01)09506000134352(17)250230', 'msg_barcode_date',
            value='250230', field='AI (17)')

    def test_malformed(self):
        "Truncated and unknown element strings are malformed"
        error = self.assertError(
            '(01)0950600013435(10)A', 'msg_barcode_malformed',
            barcode='(01)0950600013435(10)A')
        self.assertIn('(01)', error.variables['reason'])
        self.assertError('010950600013435210', 'msg_barcode_malformed')
        self.assertError(']C1ABC', 'msg_barcode_malformed')
        self.assertError('x(01)09506000134352', 'msg_barcode_unknown_scheme')
        self.assertError('(01)', 'msg_barcode_malformed')

    def test_empty(self):
        "Empty scans"
        for text in ['', '\r\n', '   ', ']C1', '\x1d', None]:
            with self.subTest(text=text):
                self.assertError(text, 'msg_barcode_empty')

    def test_unknown_scheme(self):
        "Text that is no UDI"
        self.assertError(
            'hello', 'msg_barcode_unknown_scheme', barcode='hello')


class HIBCTestCase(ParseMixin, unittest.TestCase):
    "Parse HIBC LIC barcodes"

    def test_check_character(self):
        "The modulo 43 check character of the published examples"
        self.assertEqual(barcode.hibc_check_character('+A123BJC5D6E71'), 'G')
        self.assertEqual(barcode.hibc_check_character('+A1234BJC5D6E71'), 'K')
        self.assertEqual(
            barcode.hibc_check_character('+A123BJC5D6E71/$$52001510X3'), 'C')

    def test_primary(self):
        "Primary data: labeler, product number and unit of measure"
        scan = self.assertScan('+A123BJC5D6E71G', product_code='A123BJC5D6E71')
        self.assertEqual(scan.scheme, 'hibc')
        self.assertScan('+A1234BJC5D6E71K', product_code='A1234BJC5D6E71')
        self.assertScan(']C0+A123BJC5D6E71G\r\n', product_code='A123BJC5D6E71')

    def test_published_concatenated(self):
        "The published concatenated examples, one per date format"
        common = {
            'product_code': 'X999123ABC0', 'lot': '1234AB',
            'serial': '5678EDFG', 'production_date': D(2015, 10, 1)}
        for text, expiry in [
                ('+X999123ABC0/$$05191234AB/S5678EDFG/16D20151001A',
                    D(2019, 5, 31)),
                ('+X999123ABC0/$$20515191234AB/S5678EDFG/16D20151001I',
                    D(2019, 5, 15)),
                ('+X999123ABC0/$$31905151234AB/S5678EDFG/16D20151001J',
                    D(2019, 5, 15)),
                ('+X999123ABC0/$$4190515211234AB/S5678EDFG/16D20151001N',
                    D(2019, 5, 15)),
                ('+X999123ABC0/$$5191351234AB/S5678EDFG/16D20151001J',
                    D(2019, 5, 15)),
                ('+X999123ABC0/$$619135211234AB/S5678EDFG/16D20151001N',
                    D(2019, 5, 15)),
                ('+X999123ABC0/$1234AB/S5678EDFG/16D20151001/14D20190515.',
                    D(2019, 5, 15)),
                ]:
            with self.subTest(text=text):
                self.assertScan(text, expiry=expiry, **common)
        self.assertScan(
            '+A123BJC5D6E71/$$52001510X3C', product_code='A123BJC5D6E71',
            expiry=D(2020, 1, 15), lot='10X3')

    def test_derived_secondary_formats(self):
        "Serial, quantity, lot-only, no-date and Julian formats"
        self.assertScan(
            hibc('+A99912345/$$+3251231SN001'), product_code='A99912345',
            expiry=D(2025, 12, 31), serial='SN001')
        self.assertScan(
            hibc('+A99912345/$$8053251231LOT1'), product_code='A99912345',
            quantity=5, expiry=D(2025, 12, 31), lot='LOT1')
        self.assertScan(
            hibc('+A99912345/$$+9001001225SN9'), product_code='A99912345',
            quantity=100, expiry=D(2025, 12, 31), serial='SN9')
        self.assertScan(
            hibc('+A99912345/$$7LOT2'), product_code='A99912345', lot='LOT2')
        self.assertScan(
            hibc('+A99912345/$+SN3'), product_code='A99912345', serial='SN3')
        self.assertScan(
            hibc('+A99912345/24060LOT4'), product_code='A99912345',
            expiry=D(2024, 2, 29), lot='LOT4')

    def test_space_check_character(self):
        "A check character may be a space, kept even at the end of the scan"
        text = hibc('+A99912345/$$+9001003251231SN9')
        self.assertEqual(text[-1], ' ')
        self.assertScan(
            text + '\r\n', product_code='A99912345', quantity=100,
            expiry=D(2025, 12, 31), serial='SN9')

    def test_linked_secondary(self):
        "A separate secondary barcode carries the primary's check as link"
        primary = parse('+A123BJC5D6E71G')
        secondary = parse(hibc('+$$3251231LOT1G'))
        self.assertIsNone(secondary.product_code)
        self.assertEqual(secondary.lot, 'LOT1')
        scan = combine(primary, secondary)
        self.assertEqual(scan.product_code, 'A123BJC5D6E71')
        self.assertEqual(scan.lot, 'LOT1')
        self.assertEqual(scan.expiry, D(2025, 12, 31))

        other = parse(hibc('+$$3251231LOT1K'))
        with self.assertRaises(BarcodeError) as cm:
            combine(primary, other)
        self.assertEqual(cm.exception.message_id, 'msg_barcode_hibc_link')
        self.assertEqual(cm.exception.variables['link'], 'K')
        self.assertEqual(cm.exception.variables['expected'], 'G')

    def test_wrong_check_character(self):
        "A wrong check character is reported with the expected one"
        self.assertError(
            '+A123BJC5D6E71H', 'msg_barcode_hibc_check', found='H',
            expected='G')
        self.assertError(
            '+X999123ABC0/$$05191234AC/S5678EDFG/16D20151001A',
            'msg_barcode_hibc_check', found='A', expected='B')

    def test_bad_date(self):
        "Invalid dates in the secondary and supplemental data"
        self.assertError(
            hibc('+A99912345/$$3251301LOT'), 'msg_barcode_date',
            value='251301', field='$$3')
        self.assertError(
            hibc('+A99912345/$$1325LOT'), 'msg_barcode_date',
            value='1325', field='$$MMYY')
        self.assertError(
            hibc('+A99912345/25366LOT'), 'msg_barcode_date',
            value='25366', field='YYJJJ')
        self.assertError(
            hibc('+A99912345/$LOT/14D20251301'), 'msg_barcode_date',
            value='20251301', field='14D')

    def test_malformed(self):
        "Malformed HIBC data"
        for text in [
                hibc('+1A99912345'),  # labeler starts with a digit
                hibc('+A999'),  # no product number
                hibc('+A9991234X'),  # unit of measure is not a digit
                hibc('+A99912345/X'),  # unknown secondary
                hibc('+A99912345/$$3251'),  # short date
                hibc('+A99912345/$LOT5678901234567890'),  # lot too long
                '+a99912345x',  # lower case
                '+A',
                ]:
            with self.subTest(text=text):
                self.assertError(text, 'msg_barcode_malformed')


class MATestCase(ParseMixin, unittest.TestCase):
    "Parse China MA (IDcode) codes"

    def test_check_digit(self):
        "The check digits of published codes"
        for data, check in [
                ('MA.156.M0.100204.1335176', '4'),
                ('MA.156.M0.100350.01004YA1001', '7'),
                ('MA.156.M0.100011.2cscp02', '3'),
                ('.SLMSAGAAAC.M210628.LAY21062803.E220628.V220627', '3'),
                ('.Ste002.M200206.L343432.D555555.E200228.V200307', '9'),
                ]:
            with self.subTest(data=data):
                self.assertEqual(barcode.ma_check_digit(data), check)

    def test_published(self):
        "Published MA codes"
        scan = self.assertScan(
            'MA.156.M0.100350.01004YA10017.SLMSAGAAAC.M210628.LAY21062803'
            '.E220628.V220627.C3',
            product_code='MA.156.M0.100350.01004YA10017', serial='LMSAGAAAC',
            production_date=D(2021, 6, 28), lot='AY21062803',
            expiry=D(2022, 6, 28))
        self.assertEqual(scan.scheme, 'ma')
        self.assertScan(
            ']Q1MA.156.M0.100011.2cscp023.Ste002.M200206.L343432.D555555'
            '.E200228.V200307.C9\r\n',
            product_code='MA.156.M0.100011.2cscp023', serial='te002',
            production_date=D(2020, 2, 6), lot='343432',
            expiry=D(2020, 2, 28))
        self.assertScan(
            'MA.156.M0.100204.13351764',
            product_code='MA.156.M0.100204.13351764')

    def test_derived(self):
        "Eight-digit dates, validity date as expiry, older P qualifier"
        pi = '.L2501A.P20250115.V20270114'
        self.assertScan(
            'MA.156.M0.100204.13351764' + pi + '.C'
            + barcode.ma_check_digit(pi),
            product_code='MA.156.M0.100204.13351764', lot='2501A',
            production_date=D(2025, 1, 15), expiry=D(2027, 1, 14))

    def test_wrong_check(self):
        "Wrong DI and PI check digits"
        self.assertError(
            'MA.156.M0.100204.13351765', 'msg_barcode_ma_check',
            part='UDI-DI', found='5', expected='4')
        self.assertError(
            'MA.156.M0.100350.01004YA10017.SLMSAGAAAC.M210628.LAY21062804'
            '.E220628.V220627.C3', 'msg_barcode_ma_check', part='UDI-PI',
            found='3')

    def test_bad_date(self):
        "Invalid dates"
        pi = '.L1.E251301'
        self.assertError(
            'MA.156.M0.100204.13351764' + pi + '.C'
            + barcode.ma_check_digit(pi), 'msg_barcode_date',
            value='20251301', field='.E')
        pi = '.L1.M2501'
        self.assertError(
            'MA.156.M0.100204.13351764' + pi + '.C'
            + barcode.ma_check_digit(pi), 'msg_barcode_date',
            value='2501', field='.M')

    def test_malformed(self):
        "Malformed MA codes"
        for text in [
                'MA.156.M0',
                'MA.156.M0.100204.13351764.L1',  # no PI check
                'MA.156.M0.100204..13351764',
                'MA.156.M0.100204.13351764.L1 2.C0',
                ]:
            with self.subTest(text=text):
                self.assertError(text, 'msg_barcode_malformed')


class FindProductTestCase(ParseMixin, unittest.TestCase):
    "Find the material of a scan"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        drop_db()
        activate_module(['hrp_materials'])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def create_identified(self, name, type_, code):
        Identifier = Pool().get('product.identifier')
        template = test_module.create_material(name, gtin=None)
        product, = template.products
        Identifier.create([{
                    'product': product.id, 'type': type_, 'code': code}])
        return product

    @with_transaction()
    def test_find_product(self):
        "GS1, HIBC and MA scans find their active material"
        pool = Pool()
        Template = pool.get('product.template')
        company = create_company()
        with set_company(company):
            template = test_module.create_material(
                "一次性使用无菌注射器", gtin='9506000134352')
            syringe, = template.products
            catheter = self.create_identified(
                "中心静脉导管", 'hibc', 'A123BJC5D6E71')
            stent = self.create_identified(
                "冠脉支架", 'ma', 'MA.156.M0.100204.13351764')

            self.assertEqual(find_product(parse(
                        '(01)09506000134352(17)201225(10)ABC123')), syringe)
            self.assertEqual(
                find_product(parse('+A123BJC5D6E71G')), catheter)
            self.assertEqual(find_product(parse(
                        hibc('+A123BJC5D6E71/$$3251231LOT'))), catheter)
            self.assertEqual(
                find_product(parse('MA.156.M0.100204.13351764')), stent)

            with self.assertRaises(BarcodeError) as cm:
                find_product(parse('(01)09501101020917(10)X'))
            self.assertEqual(
                cm.exception.message_id, 'msg_barcode_unknown_gtin')
            self.assertIn('09501101020917', str(cm.exception))

            with self.assertRaises(BarcodeError) as cm:
                find_product(parse('+A1234BJC5D6E71K'))
            self.assertEqual(
                cm.exception.message_id, 'msg_barcode_unknown_code')
            self.assertIn('A1234BJC5D6E71', str(cm.exception))

            with self.assertRaises(BarcodeError) as cm:
                find_product(parse(hibc('+$$3251231LOTG')))
            self.assertEqual(
                cm.exception.message_id, 'msg_barcode_no_product')

            # an HIBC code is no MA code and inactive materials are ignored
            Template.write([template, stent.template], {'active': False})
            for text in ['(01)09506000134352', 'MA.156.M0.100204.13351764']:
                with self.subTest(text=text):
                    with self.assertRaises(BarcodeError):
                        find_product(parse(text))

    @with_transaction()
    def test_messages(self):
        "Every barcode error is a translated message with its variables"
        for text in [
                '', 'hello', '(01)0950600013435', '(01)09506000134353',
                '+A123BJC5D6E71H', 'MA.156.M0.100204.13351765',
                '(01)09506000134352(17)251301']:
            with self.subTest(text=text):
                with self.assertRaises(BarcodeError) as cm:
                    parse(text)
                message = str(cm.exception)
                self.assertNotIn('msg_barcode', message)
                if text:
                    self.assertIn(text, message)
