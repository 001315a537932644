# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""UDI barcodes scanned at receiving: GS1, HIBC and China MA codes.

``parse(text)`` turns the text a keyboard-wedge scanner sends into a `Scan`;
``find_product(scan)`` finds the active material it identifies.  Parsing
touches no database; errors are `BarcodeError` (a translated UserError) whose
``message_id`` and ``variables`` attributes tell what was wrong.

Common to all schemes: trailing CR/LF and surrounding spaces are dropped, an
AIM symbology identifier ``]`` + letter + modifier (e.g. ``]C1``, ``]d2``,
``]Q3``, ``]e0``, ``]C0``, ``]d1``, ``]Q1``) is removed.  The GS1 ones
(``]C1 ]e0 ]e1 ]e2 ]d2 ]Q3 ]J1``) force GS1 parsing; otherwise the content
chooses: ``+`` HIBC, ``MA.`` MA code, ``(``/digit/``http`` GS1.

GS1 (GS1 General Specifications; parsed with biip)
    * element strings as GS1-128 / DataMatrix / QR / DataBar send them: the
      group separator (FNC1) may come as ASCII 29 or as the literal text
      ``<GS>``; a leading FNC1 is ignored;
    * the human-readable form ``(01)09506000134352(17)201225(10)ABC123``;
    * a GS1 Digital Link URI (``https://id.gs1.org/01/...``);
    * a bare GTIN-8/12/13/14 (EAN/UPC/ITF-14 symbols).
    gtin = AI (01) (or AI (02) on logistic labels without (01)) as 14 digits,
    its check digit verified; expiry = AI (17), day 00 meaning the last day of
    the month; production_date = AI (11); lot = AI (10); serial = AI (21);
    quantity = AI (30), else AI (37).  A date AI with month 00/13+ or a day
    past the month's end is a date error.

HIBC LIC (ANSI/HIBC 2.6 supplier labelling)
    primary   ``+`` LIC (4: a letter then 3 letters/digits) + PCN (1-18
              letters/digits) + unit of measure (1 digit) + check character;
    concatenated ``+`` primary ``/`` secondary [``/`` supplemental]... + one
              check character over everything before it;
    secondary alone ``+`` secondary [``/`` supplemental]... + link character
              (the primary's check character) + check character.
    The check character is the modulo 43 sum of the values of all preceding
    characters (``+`` included) in ``0-9A-Z-. $/+%`` (values 0..42).
    Secondary data (lot and serial up to 18 letters/digits):
        ``$`` lot                     ``$+`` serial
        ``$$`` [``+``] [quantity] date lot-or-serial, where ``+`` makes the
            trailing field a serial, quantity is ``8`` QQ or ``9`` QQQQQ, and
            date is one of: MMYY (first digit 0/1; last day of the month),
            ``2`` MMDDYY, ``3`` YYMMDD, ``4`` YYMMDDHH, ``5`` YYJJJ,
            ``6`` YYJJJHH (JJJ = day of the year), ``7`` (no date)
        YYJJJ lot                     (5 digits: Julian expiry date)
    Supplemental fields: ``S`` serial, ``14D`` YYYYMMDD expiry, ``16D``
    YYYYMMDD production date; others are ignored.
    product_code = LIC + PCN + unit of measure, as printed ("A99912345").
    Two-digit years are 20YY.

China MA code (中关村工信二维码技术研究院 IDcode, ISO/IEC 15459 IAC "MA";
"医疗器械唯一标识 MA(IDcode)编码手册")
    ``MA.`` country (3 digits, 156) ``.`` industry (2 letters/digits, M0)
    ``.`` registrant (letters/digits) ``.`` product code (package level digit
    + item code + DI check digit), then production data units each
    ``.`` qualifier + value, ending with ``.C`` + PI check digit:
        L lot, S serial, D sterilisation lot (ignored), M (or the older P)
        production date, E expiry date, V validity date (used as expiry only
        when there is no E); dates are YYMMDD or YYYYMMDD; other qualifiers
        are ignored.
    Check digits: every character is written as a decimal number (0-9 as is,
    A-Z 10-35, a-g 36-42, h-z 45-63, ``-.@$,*+%/#!^~`` 64-76) and the digits
    concatenated; counting from the right starting at 1, the digits at even
    positions are doubled (a two-digit product adds its digits); the check
    digit is (10 - sum mod 10) mod 10.  The DI check covers the UDI-DI
    ``MA.156.M0.100204.1335176``; the PI check covers ``.`` + the production
    units up to ``.C`` (e.g. ``.S123.M220117.L1.E230130``).
    product_code = the whole UDI-DI ("MA.156.M0.100204.13351764"), as the
    NMPA UDI database records it (the registrant is part of the identity).
"""
import calendar
import datetime as dt
import re
from dataclasses import dataclass, replace

from biip import ParseConfig, ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from biip.gtin import Gtin
from trytond.i18n import gettext
from trytond.pool import Pool

from .exceptions import BarcodeError

GS = '\x1d'
SYMBOLOGY = re.compile(r'^\][A-Za-z][0-9A-Za-z]')
GS1_SYMBOLOGIES = {'C1', 'e0', 'e1', 'e2', 'd2', 'Q3', 'J1'}
GS1_DATE_AIS = {'11', '12', '13', '15', '16', '17'}
GS1_HRI_AI = re.compile(r'\((\d{2,4})\)')


@dataclass(frozen=True)
class Scan:
    scheme: str
    raw: str
    gtin: str | None = None
    product_code: str | None = None
    lot: str | None = None
    expiry: dt.date | None = None
    production_date: dt.date | None = None
    serial: str | None = None
    quantity: int | None = None


def _error(message_id, **variables):
    error = BarcodeError(gettext('hrp_materials.' + message_id, **variables))
    error.message_id = message_id
    error.variables = variables
    return error


def _malformed(barcode, reason):
    return _error('msg_barcode_malformed', barcode=barcode, reason=reason)


def parse(text):
    "Return the Scan of a scanned UDI barcode or raise BarcodeError"
    raw = (text or '').rstrip('\r\n')
    # a trailing space may be the check character of an HIBC code
    data = raw.lstrip().replace('<GS>', GS).replace('<gs>', GS)
    symbology = None
    match = SYMBOLOGY.match(data)
    if match:
        symbology = match.group()[1:]
        data = data[match.end():].lstrip()
    if not data.strip(GS + ' \t'):
        raise _error('msg_barcode_empty')
    if symbology not in GS1_SYMBOLOGIES and data.startswith('+'):
        return _parse_hibc(raw, data)
    data = data.rstrip()
    if symbology in GS1_SYMBOLOGIES:
        return _parse_gs1(raw, data)
    if data.startswith('MA.'):
        return _parse_ma(raw, data)
    if (data[0] in '(' + GS or data[0].isdigit()
            or data.lower().startswith(('http://', 'https://'))):
        return _parse_gs1(raw, data)
    raise _error('msg_barcode_unknown_scheme', barcode=raw)


# GS1

GS1_CONFIG = ParseConfig(separator_chars=[GS])


def _check_gs1_date(raw, ai, value):
    if ai not in GS1_DATE_AIS or len(value) < 6 or not value[:6].isdigit():
        return
    year, month, day = (int(value[i:i + 2]) for i in (0, 2, 4))
    if (not 1 <= month <= 12
            or day > calendar.monthrange(2000 + year, month)[1]):
        raise _error('msg_barcode_date', barcode=raw, value=value[:6],
            field='AI (%s)' % ai)


def _gs1_elements(raw, data):
    "Return the biip element strings of data"
    config = GS1_CONFIG
    elements = []
    try:
        if data.startswith('('):
            parts = GS1_HRI_AI.split(data.replace(GS, ''))
            if parts[0].strip():
                raise ParseError(
                    "Expected '(AI)DATA', got %r first." % parts[0])
            for ai, value in zip(parts[1::2], parts[2::2]):
                value = value.strip()
                _check_gs1_date(raw, ai, value)
                elements.append(
                    GS1ElementString.parse(ai + value, config=config))
        elif data.lower().startswith(('http://', 'https://')):
            elements = list(
                GS1DigitalLinkURI.parse(data, config=config).element_strings)
        else:
            rest = data.lstrip(GS)
            while rest:
                ai = GS1ApplicationIdentifier.extract(rest).ai
                _check_gs1_date(raw, ai, rest[len(ai):])
                element = GS1ElementString.extract(rest, config=config)
                elements.append(element)
                rest = rest[len(element):].lstrip(GS)
    except ParseError as exception:
        raise _malformed(raw, str(exception)) from exception
    if not elements:
        raise _malformed(raw, "no GS1 element string")
    return elements


def _verified_gtin(raw, value):
    try:
        Gtin.parse(value)
    except ParseError as exception:
        if value.isdigit() and len(value) in {8, 12, 13, 14}:
            expected = str(gs1_standard_check_digit(value[:-1]))
            raise _error('msg_barcode_check_digit', barcode=raw, gtin=value,
                expected=expected) from exception
        raise _malformed(raw, str(exception)) from exception
    return value.rjust(14, '0')


def _parse_gs1(raw, data):
    if data.isdigit() and len(data) in {8, 12, 13, 14}:
        return Scan(scheme='gs1', raw=raw, gtin=_verified_gtin(raw, data))
    elements = {}
    for element in _gs1_elements(raw, data):
        elements.setdefault(element.ai.ai, element)

    def value(ai):
        element = elements.get(ai)
        return element.value if element else None

    def date(ai):
        element = elements.get(ai)
        return element.date if element else None

    gtin = value('01') or value('02')
    if gtin is not None:
        gtin = _verified_gtin(raw, gtin)
    quantity = value('30') or value('37')
    return Scan(
        scheme='gs1', raw=raw, gtin=gtin,
        lot=value('10'), expiry=date('17'), production_date=date('11'),
        serial=value('21'),
        quantity=int(quantity) if quantity else None)


# HIBC

HIBC_CHARSET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%'
HIBC_PRIMARY = re.compile(r'^\+([A-Z][A-Z0-9]{3})([A-Z0-9]{1,18})(\d)$')
HIBC_FIELD = re.compile(r'^[A-Z0-9]{0,18}$')


def hibc_check_character(data):
    "Return the HIBC modulo 43 check character of data"
    return HIBC_CHARSET[sum(HIBC_CHARSET.index(c) for c in data) % 43]


def _hibc_date(raw, field, value, order):
    "Return the date of value read in order ('YMD', 'MDY', 'YM', 'MY', 'YJ')"
    try:
        if order == 'YJ':
            year, day = int(value[:2]), int(value[2:5])
            if not 1 <= day <= (366 if calendar.isleap(2000 + year) else 365):
                raise ValueError
            return dt.date(2000 + year, 1, 1) + dt.timedelta(days=day - 1)
        if order == 'MY':
            month, year = int(value[:2]), int(value[2:4])
            return dt.date(2000 + year, month,
                calendar.monthrange(2000 + year, month)[1])
        if order == 'MDY':
            month, day, year = (int(value[i:i + 2]) for i in (0, 2, 4))
            return dt.date(2000 + year, month, day)
        if order == 'YYYYMMDD':
            return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        year, month, day = (int(value[i:i + 2]) for i in (0, 2, 4))
        return dt.date(2000 + year, month, day)
    except ValueError:
        raise _error('msg_barcode_date', barcode=raw, value=value,
            field=field) from None


# date format digit after "$$": (length of the date, order)
HIBC_DATE_FORMATS = {
    '2': (6, 'MDY'),
    '3': (6, 'YMD'),
    '4': (8, 'YMD'),
    '5': (5, 'YJ'),
    '6': (7, 'YJ'),
    '7': (0, None),
    }


def _hibc_secondary(raw, data):
    "Return the fields of the HIBC secondary data"
    values = {}
    if data.startswith('$$'):
        rest, kind = data[2:], 'lot'
        if rest.startswith('+'):
            rest, kind = rest[1:], 'serial'
        if rest[:1] in {'8', '9'}:
            size = 2 if rest[0] == '8' else 5
            quantity = rest[1:1 + size]
            if len(quantity) != size or not quantity.isdigit():
                raise _malformed(raw, "HIBC quantity must be %s digits "
                    "after $$%s" % (size, rest[0]))
            values['quantity'] = int(quantity)
            rest = rest[1 + size:]
        if rest[:1] in {'0', '1'}:
            value, rest = rest[:4], rest[4:]
            if len(value) != 4 or not value.isdigit():
                raise _malformed(raw, "HIBC date MMYY expected")
            values['expiry'] = _hibc_date(raw, '$$MMYY', value, 'MY')
        elif rest[:1] in HIBC_DATE_FORMATS:
            size, order = HIBC_DATE_FORMATS[rest[0]]
            field = '$$' + rest[0]
            value, rest = rest[1:1 + size], rest[1 + size:]
            if len(value) != size or (size and not value.isdigit()):
                raise _malformed(raw,
                    "HIBC date of %s digits expected after %s" % (
                        size, field))
            if order:
                values['expiry'] = _hibc_date(raw, field, value, order)
        else:
            raise _malformed(raw, "unknown HIBC date format after $$")
    elif data.startswith('$+'):
        rest, kind = data[2:], 'serial'
    elif data.startswith('$'):
        rest, kind = data[1:], 'lot'
    elif len(data) >= 5 and data[:5].isdigit():
        values['expiry'] = _hibc_date(raw, 'YYJJJ', data[:5], 'YJ')
        rest, kind = data[5:], 'lot'
    else:
        raise _malformed(raw, "unknown HIBC secondary data %r" % data)
    if not HIBC_FIELD.match(rest):
        raise _malformed(raw,
            "HIBC %s must be up to 18 letters or digits" % kind)
    if rest:
        values[kind] = rest
    return values


def _hibc_supplemental(raw, fields, values):
    for field in fields:
        if field.startswith('14D') or field.startswith('16D'):
            value = field[3:]
            if len(value) != 8 or not value.isdigit():
                raise _malformed(raw, "HIBC /%s needs YYYYMMDD" % field[:3])
            name = 'expiry' if field.startswith('14D') else 'production_date'
            values[name] = _hibc_date(raw, field[:3], value, 'YYYYMMDD')
        elif field.startswith('S'):
            if not field[1:] or not HIBC_FIELD.match(field[1:]):
                raise _malformed(raw,
                    "HIBC serial must be up to 18 letters or digits")
            values['serial'] = field[1:]


def _hibc_body(data):
    "Return the data without symbology identifier, then its check character"
    data = data.lstrip()
    match = SYMBOLOGY.match(data)
    if match:
        data = data[match.end():].lstrip()
    return data[:-1], data[-1:]


def _parse_hibc(raw, data):
    if len(data) < 3:
        raise _malformed(raw, "HIBC data too short")
    bad = sorted({c for c in data if c not in HIBC_CHARSET})
    if bad:
        raise _malformed(raw,
            "characters %s are not allowed in HIBC" % ' '.join(map(repr, bad)))
    body, check = data[:-1], data[-1]
    expected = hibc_check_character(body)
    if check != expected:
        raise _error('msg_barcode_hibc_check', barcode=raw, found=check,
            expected=expected)
    values = {}
    if body[1:2].isalpha():
        primary, *fields = body.split('/')
        match = HIBC_PRIMARY.match(primary)
        if not match:
            raise _malformed(raw, "HIBC primary data must be '+', "
                "a 4-character labeler code starting with a letter, "
                "a product number of 1 to 18 letters or digits and "
                "a unit of measure digit")
        values['product_code'] = primary[1:]
        if fields:
            values.update(_hibc_secondary(raw, fields[0]))
            _hibc_supplemental(raw, fields[1:], values)
    else:
        # a secondary symbol: the character before the check is the link
        secondary, *fields = body[1:-1].split('/')
        if not secondary:
            raise _malformed(raw, "HIBC secondary data is empty")
        values.update(_hibc_secondary(raw, secondary))
        _hibc_supplemental(raw, fields, values)
    return Scan(scheme='hibc', raw=raw, **values)


def combine(primary, secondary):
    """Return the Scan of an HIBC primary barcode completed with the data of
    its separate secondary barcode, whose link character must be the primary's
    check character"""
    if (primary.scheme != 'hibc' or not primary.product_code
            or secondary.scheme != 'hibc' or secondary.product_code):
        raise _malformed(secondary.raw,
            "expected an HIBC primary then an HIBC secondary barcode")
    _, check = _hibc_body(primary.raw.split('\n')[0])
    body, _ = _hibc_body(secondary.raw)
    link = body[-1:]
    if link != check:
        raise _error('msg_barcode_hibc_link', primary=primary.raw,
            secondary=secondary.raw, link=link, expected=check)
    values = {
        name: getattr(secondary, name)
        for name in ['lot', 'expiry', 'production_date', 'serial', 'quantity']
        if getattr(secondary, name) is not None}
    return replace(primary, raw=primary.raw + '\n' + secondary.raw, **values)


# MA code

MA_CHARSET = (
    [(c, i) for i, c in enumerate('0123456789')]
    + [(c, 10 + i) for i, c in enumerate('ABCDEFGHIJKLMNOPQRSTUVWXYZ')]
    + [(c, 36 + i) for i, c in enumerate('abcdefg')]
    + [(c, 45 + i) for i, c in enumerate('hijklmnopqrstuvwxyz')]
    + [(c, 64 + i) for i, c in enumerate('-.@$,*+%/#!^~')])
MA_VALUES = dict(MA_CHARSET)
MA_DI = re.compile(
    r'^MA\.(\d{3})\.([A-Za-z0-9]{2})\.([A-Za-z0-9]+)\.([A-Za-z0-9]{2,})$')
MA_FIELD = re.compile(r'^[A-Za-z0-9\-]*$')


def ma_check_digit(data):
    "Return the MA (IDcode) check digit of data as a character"
    digits = ''.join(str(MA_VALUES[c]) for c in data)
    total = 0
    for position, digit in enumerate(reversed(digits), 1):
        digit = int(digit)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def _ma_date(raw, field, value):
    if len(value) not in {6, 8} or not value.isdigit():
        raise _error('msg_barcode_date', barcode=raw, value=value,
            field='.' + field)
    if len(value) == 6:
        value = '20' + value
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise _error('msg_barcode_date', barcode=raw, value=value,
            field='.' + field) from None


def _parse_ma(raw, data):
    bad = sorted({c for c in data if c not in MA_VALUES})
    if bad:
        raise _malformed(raw,
            "characters %s are not allowed in an MA code" % ' '.join(
                map(repr, bad)))
    parts = data.split('.')
    di = '.'.join(parts[:5])
    if not MA_DI.match(di):
        raise _malformed(raw, "an MA code starts with "
            "MA.<country>.<industry>.<registrant>.<product code>")
    expected = ma_check_digit(di[:-1])
    if di[-1] != expected:
        raise _error('msg_barcode_ma_check', barcode=raw, part='UDI-DI',
            found=di[-1], expected=expected)
    units = parts[5:]
    values = {'product_code': di}
    if units:
        if not units[-1].startswith('C') or len(units) < 2:
            raise _malformed(raw,
                "the production data of an MA code end with .C<check digit>")
        *units, check = units
        pi = ''.join('.' + unit for unit in units)
        expected = ma_check_digit(pi)
        if check[1:] != expected:
            raise _error('msg_barcode_ma_check', barcode=raw, part='UDI-PI',
                found=check[1:], expected=expected)
        validity = None
        for unit in units:
            qualifier, value = unit[:1], unit[1:]
            if not value:
                raise _malformed(raw, "empty MA data unit .%s" % qualifier)
            if qualifier in {'L', 'S'}:
                if not MA_FIELD.match(value):
                    raise _malformed(raw,
                        "MA %s must be letters or digits" % qualifier)
                values['lot' if qualifier == 'L' else 'serial'] = value
            elif qualifier in {'M', 'P'}:
                values['production_date'] = _ma_date(raw, qualifier, value)
            elif qualifier == 'E':
                values['expiry'] = _ma_date(raw, qualifier, value)
            elif qualifier == 'V':
                validity = _ma_date(raw, qualifier, value)
        if 'expiry' not in values and validity:
            values['expiry'] = validity
    return Scan(scheme='ma', raw=raw, **values)


def find_product(scan):
    "Return the active product the scan identifies or raise BarcodeError"
    Product = Pool().get('product.product')
    if scan.scheme == 'gs1':
        if not scan.gtin:
            raise _error('msg_barcode_no_product', barcode=scan.raw)
        product = Product.find_by_gtin(scan.gtin)
        if not product:
            raise _error('msg_barcode_unknown_gtin', gtin=scan.gtin)
        return product
    if not scan.product_code:
        raise _error('msg_barcode_no_product', barcode=scan.raw)
    products = Product.search([
            ('identifiers', 'where', [
                    ('type', '=', scan.scheme),
                    ('code', '=', scan.product_code),
                    ]),
            ], limit=1)
    if not products:
        raise _error('msg_barcode_unknown_code',
            scheme={'hibc': 'HIBC', 'ma': 'MA'}.get(scan.scheme, scan.scheme),
            code=scan.product_code)
    return products[0]
