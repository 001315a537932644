# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""Sending SMS through a GSM modem (短信猫) on a serial port.

Pure Python: no Tryton import, so the ``hrp sms send`` command, the modem
emulator and the tests use it without a database.

Two layers:

- the PDU encoder for SMS-SUBMIT (3GPP TS 23.040, TS 23.038, TS 27.005):
  :func:`encode_submit` turns a number and a text into one PDU per part
  (GSM 7-bit default alphabet when the text fits it, UCS2 otherwise,
  concatenated with an 8-bit reference user data header when it is long);
- :class:`Modem`: the AT dialogue in PDU mode over pyserial, with retries
  of the transient errors.

    with Modem('/dev/ttyUSB0', timeout=30) as modem:
        references = modem.send('+8613800000000', '请补货：注射器 200 支')
"""
import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

__all__ = [
    'SmsError', 'InvalidMessage', 'ModemError', 'ModemTimeout',
    'ModemAbsent', 'SubmitPdu', 'Modem', 'encode_submit', 'encode_address',
    'encode_validity', 'normalise_number', 'gsm7_septets', 'pack_septets',
    'error_meaning', 'is_transient',
    ]

logger = logging.getLogger(__name__)

# GSM 7-bit default alphabet (3GPP TS 23.038 § 6.2.1): the index is the
# septet.  0x1B is the escape to the extension table.
GSM7_BASIC = (
    '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ'
    ' !"#¤%&\'()*+,-./0123456789:;<=>?'
    '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§'
    '¿abcdefghijklmnopqrstuvwxyzäöñüà')
assert len(GSM7_BASIC) == 128
GSM7_ESCAPE = 0x1B
# Default alphabet extension table (§ 6.2.1.1): character after ESC
GSM7_EXTENSION = {
    0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[',
    0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€',
    }
_GSM7_BASIC_INDEX = {c: i for i, c in enumerate(GSM7_BASIC) if i != 0x1B}
_GSM7_EXTENSION_INDEX = {c: i for i, c in GSM7_EXTENSION.items()}

# Data coding schemes (TS 23.038 § 4, general data coding, no class)
DCS_GSM7 = 0x00
DCS_UCS2 = 0x08

# User data capacity: one part, and one part of a concatenated message
# (the 6-octet UDH 05 00 03 ref total seq takes 7 septets / 6 octets).
GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67
MAX_PARTS = 255

TOA_INTERNATIONAL = 0x91    # type of number international, ISDN plan
TOA_UNKNOWN = 0x81          # type of number unknown (national), ISDN plan

NUMBER = re.compile(r'\+?[0-9]{3,20}')
# Separators accepted (and dropped) in a number typed by a person
NUMBER_SEPARATORS = re.compile(r'[\s\-.()/]')

# +CMS ERROR codes: TS 24.011 § 8.2.5.4 (RP causes, 0-127), TS 23.040
# § 9.2.3.22 (TP-FCS, 128-255) and TS 27.005 § 3.2.5 (300-).
CMS_ERRORS = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    17: "network failure",
    21: "short message transfer rejected",
    22: "memory capacity exceeded",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message, unspecified",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error, unspecified",
    127: "interworking, unspecified",
    128: "telematic interworking not supported",
    129: "short message type 0 not supported",
    130: "cannot replace short message",
    143: "unspecified TP-PID error",
    144: "data coding scheme (alphabet) not supported",
    145: "message class not supported",
    159: "unspecified TP-DCS error",
    160: "command cannot be actioned",
    161: "command unsupported",
    175: "unspecified TP-Command error",
    176: "TPDU not supported",
    192: "SC busy",
    193: "no SC subscription",
    194: "SC system failure",
    195: "invalid SME address",
    196: "destination SME barred",
    197: "SM rejected, duplicate SM",
    198: "TP-VPF not supported",
    199: "TP-VP not supported",
    208: "SIM SMS storage full",
    209: "no SMS storage capability in SIM",
    210: "error in MS",
    211: "memory capacity exceeded",
    212: "SIM application toolkit busy",
    213: "SIM data download error",
    255: "unspecified error cause",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    317: "SIM PIN2 required",
    318: "SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
    }
# +CME ERROR codes: TS 27.007 § 9.2
CME_ERRORS = {
    0: "phone failure",
    1: "no connection to phone",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "PH-SIM PIN required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "SIM PUK required",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    100: "unknown",
    }
# Errors worth another attempt after a delay: the network or the SIM is
# momentarily unable, the message itself is fine.
TRANSIENT_CMS = frozenset({
        17, 38, 41, 42, 47, 98, 111, 192, 194, 212, 300, 314, 331, 332,
        500})
TRANSIENT_CME = frozenset({14, 30, 31, 100})

CTRL_Z = b'\x1a'
ESC = b'\x1b'
# Seconds a modem has to answer AT: it answers at once when it is there
PROBE_TIMEOUT = 5.0


def error_meaning(kind, code):
    "The readable meaning of a +CMS or +CME error code"
    table = CMS_ERRORS if kind == 'CMS' else CME_ERRORS
    return table.get(code, "unknown error code")


def is_transient(kind, code):
    "Test if a +CMS/+CME error code is worth another attempt"
    if kind == 'CMS':
        return code in TRANSIENT_CMS
    if kind == 'CME':
        return code in TRANSIENT_CME
    return False


class SmsError(Exception):
    "Base of the errors of this module"


class InvalidMessage(SmsError, ValueError):
    "The number or the text cannot be sent"


class ModemError(SmsError):
    """The modem answered an error.

    ``kind`` is 'CMS', 'CME' or None (a bare ERROR), ``code`` the number
    (None for a bare ERROR), ``meaning`` its text, ``command`` the AT command
    that failed, ``transient`` whether another attempt may succeed and
    ``accepted`` the references of the parts the modem accepted before."""

    def __init__(self, message=None, *, kind=None, code=None, command=None,
            transient=False, answer=None):
        self.kind = kind
        self.code = code
        self.meaning = error_meaning(kind, code) if kind else None
        self.command = command
        self.transient = transient
        self.answer = answer
        self.accepted = []
        if message is None:
            if kind:
                message = f"+{kind} ERROR: {code} ({self.meaning})"
            else:
                message = "ERROR"
            if command:
                message = f"the modem answered {message} to {command}"
        super().__init__(message)


class ModemTimeout(SmsError):
    "The modem did not answer in time"

    def __init__(self, message, command=None):
        super().__init__(message)
        self.command = command
        self.transient = True
        self.accepted = []


class ModemAbsent(SmsError):
    "The modem device cannot be opened"

    def __init__(self, message, device=None):
        super().__init__(message)
        self.device = device
        self.accepted = []


# Encoding

def normalise_number(number):
    """Return the number without separators, checked: an optional + then
    3 to 20 digits (the most a TP-DA holds)"""
    if not isinstance(number, str):
        raise InvalidMessage(f"invalid recipient number {number!r}")
    value = NUMBER_SEPARATORS.sub('', number.strip())
    if not NUMBER.fullmatch(value):
        raise InvalidMessage(
            f"invalid recipient number {number!r}: expected an optional + "
            "and 3 to 20 digits")
    return value


def _semi_octets(digits):
    "Digits as swapped semi-octets, padded with F (TS 23.040 § 9.1.2.3)"
    if len(digits) % 2:
        digits += 'F'
    return bytes.fromhex(''.join(
            digits[i + 1] + digits[i] for i in range(0, len(digits), 2)))


def encode_address(number):
    """TP-DA of number: number of digits, type of address (0x91
    international when it starts with +, else 0x81), semi-octets"""
    number = normalise_number(number)
    if number.startswith('+'):
        toa, digits = TOA_INTERNATIONAL, number[1:]
    else:
        toa, digits = TOA_UNKNOWN, number
    return bytes([len(digits), toa]) + _semi_octets(digits)


def encode_smsc(number=None):
    """The SMSC information that prefixes the TPDU given to AT+CMGS: 00 to
    use the SMSC stored in the SIM (AT+CSCA), else its length in octets,
    type of address and semi-octets"""
    if not number:
        return b'\x00'
    address = encode_address(number)
    return bytes([len(address) - 1]) + address[1:]


def encode_validity(validity):
    """Relative TP-VP octet (TS 23.040 § 9.2.3.12.1) for a timedelta or a
    number of seconds: the shortest period not shorter than asked, from 5
    minutes to 63 weeks"""
    if isinstance(validity, timedelta):
        seconds = validity.total_seconds()
    else:
        seconds = float(validity)
    if seconds <= 0:
        raise InvalidMessage("the validity period must be positive")
    minutes = seconds / 60
    if minutes <= 12 * 60:
        return max(0, _ceil(minutes / 5) - 1)
    if minutes <= 24 * 60:
        return 143 + _ceil((minutes - 12 * 60) / 30)
    days = minutes / (24 * 60)
    if days <= 30:
        return 166 + max(2, _ceil(days))
    weeks = days / 7
    if weeks <= 63:
        return 192 + max(5, _ceil(weeks))
    raise InvalidMessage("the validity period is longer than 63 weeks")


def _ceil(value):
    integer = int(value)
    return integer + (1 if value > integer + 1e-9 else 0)


def gsm7_septets(text):
    """The septets of each character of text in the GSM 7-bit default
    alphabet (two for the extension table), or None if a character is not
    in it"""
    septets = []
    for char in text:
        if char in _GSM7_BASIC_INDEX:
            septets.append((_GSM7_BASIC_INDEX[char],))
        elif char in _GSM7_EXTENSION_INDEX:
            septets.append((GSM7_ESCAPE, _GSM7_EXTENSION_INDEX[char]))
        else:
            return None
    return septets


def _utf16_units(text):
    "The UTF-16 code units of each character (two for a surrogate pair)"
    units = []
    for char in text:
        encoded = char.encode('utf-16-be')
        units.append(tuple(
                int.from_bytes(encoded[i:i + 2], 'big')
                for i in range(0, len(encoded), 2)))
    return units


def pack_septets(septets, fill_bits=0):
    """Pack septets into octets, least significant bit first, after
    fill_bits zero bits (TS 23.038 § 6.1.2.1.1)"""
    value, position = 0, fill_bits
    for septet in septets:
        value |= (septet & 0x7F) << position
        position += 7
    return value.to_bytes((position + 7) // 8, 'little')


def _split(units, single, multi):
    """Split the per-character units into parts: one if they fit single,
    else parts of at most multi that never cut a character's units (a GSM
    escape sequence or a UTF-16 surrogate pair)"""
    if sum(len(u) for u in units) <= single:
        return [units]
    parts, current, size = [], [], 0
    for unit in units:
        if size + len(unit) > multi:
            parts.append(current)
            current, size = [], 0
        current.append(unit)
        size += len(unit)
    parts.append(current)
    return parts


@dataclass
class SubmitPdu:
    "One SMS-SUBMIT PDU: the part ``part`` of ``parts`` of a message"
    number: str
    text: str
    encoding: str
    tpdu: bytes
    smsc: bytes = b'\x00'
    part: int = 1
    parts: int = 1
    reference: int = None
    septets: int = field(default=None, repr=False)

    @property
    def length(self):
        "The TPDU length in octets, as given to AT+CMGS"
        return len(self.tpdu)

    @property
    def hex(self):
        "The SMSC information and the TPDU in hexadecimal, for AT+CMGS"
        return (self.smsc + self.tpdu).hex().upper()


def encode_submit(number, text, reference=0, validity=None, smsc=None,
        status_report=False):
    """Encode text to number as a list of SMS-SUBMIT PDUs.

    reference is the 8-bit concatenation reference (used when the text
    takes more than one part), validity an optional relative validity
    period (timedelta or seconds), smsc an optional service centre number
    (default: the one stored in the SIM)."""
    address = encode_address(number)
    number = normalise_number(number)
    if not isinstance(text, str) or not text:
        raise InvalidMessage("the text is empty")
    if not 0 <= reference <= 255:
        raise InvalidMessage("the concatenation reference is 0 to 255")
    smsc_info = encode_smsc(smsc)

    septets = gsm7_septets(text)
    if septets is not None:
        encoding, units, dcs = 'gsm7', septets, DCS_GSM7
        parts = _split(units, GSM7_SINGLE, GSM7_MULTI)
    else:
        encoding, units, dcs = 'ucs2', _utf16_units(text), DCS_UCS2
        parts = _split(units, UCS2_SINGLE, UCS2_MULTI)
    if len(parts) > MAX_PARTS:
        raise InvalidMessage(
            f"the text is too long: {len(parts)} parts, at most {MAX_PARTS}")

    # TP-MTI SMS-SUBMIT (01), TP-RD 0, TP-VPF, TP-SRR, TP-UDHI, TP-RP 0
    first = 0x01
    vp = b''
    if validity is not None:
        first |= 0x10   # TP-VPF relative
        vp = bytes([encode_validity(validity)])
    if status_report:
        first |= 0x20
    concatenated = len(parts) > 1
    if concatenated:
        first |= 0x40

    # Characters of the text, to give each part its text
    chars = list(text)
    pdus = []
    offset = 0
    for index, part in enumerate(parts, 1):
        part_text = ''.join(chars[offset:offset + len(part)])
        offset += len(part)
        flat = [v for unit in part for v in unit]
        udh = b''
        if concatenated:
            udh = bytes([5, 0x00, 3, reference, len(parts), index])
        if encoding == 'gsm7':
            header_bits = len(udh) * 8
            fill = (7 - header_bits % 7) % 7
            header_septets = (header_bits + fill) // 7
            user_data = udh + pack_septets(flat, fill)
            udl = header_septets + len(flat)
        else:
            user_data = udh + b''.join(u.to_bytes(2, 'big') for u in flat)
            udl = len(user_data)
        tpdu = (bytes([first, 0x00]) + address + bytes([0x00, dcs]) + vp
            + bytes([udl]) + user_data)
        pdus.append(SubmitPdu(
                number=number, text=part_text, encoding=encoding, tpdu=tpdu,
                smsc=smsc_info, part=index, parts=len(parts),
                reference=reference if concatenated else None,
                septets=len(flat) if encoding == 'gsm7' else None))
    return pdus


# The modem

FINAL_ERROR = re.compile(r'\+(CMS|CME) ERROR:\s*(.*)')
CMGS = re.compile(r'\+CMGS:\s*(\d+)')


def _parse_error(line, command):
    """The ModemError of a final error line, or None if line is not
    one"""
    if line in {'ERROR', 'COMMAND NOT SUPPORT', '+CMS ERROR', '+CME ERROR'}:
        return ModemError(command=command, answer=line)
    match = FINAL_ERROR.fullmatch(line)
    if not match:
        return None
    kind, value = match.group(1), match.group(2).strip()
    if value.isdigit():
        code = int(value)
    else:
        # Verbose errors (AT+CMEE=2): back to the code when known
        table = CMS_ERRORS if kind == 'CMS' else CME_ERRORS
        codes = [c for c, t in table.items() if t.lower() == value.lower()]
        if not codes:
            return ModemError(
                f"the modem answered +{kind} ERROR: {value} to {command}",
                kind=kind, command=command, answer=line,
                transient=False)
        code = codes[0]
    return ModemError(
        kind=kind, code=code, command=command, answer=line,
        transient=is_transient(kind, code))


class Modem:
    """A GSM modem on a serial device, driven with AT commands in PDU mode.

    device: the serial device path (/dev/ttyUSB0); baudrate; timeout: the
    seconds to wait for any answer of the modem (at most PROBE_TIMEOUT for
    the first AT, which a modem answers at once); attempts: how many times
    a part is tried on a transient error (network out of order,
    congestion, no answer…), retry_delay seconds apart; check_pin: ask
    AT+CPIN? and require READY.  A bare ERROR is not retried (the modem
    gives no reason); a timeout is, after cancelling the pending
    submission (ESC) and resynchronising with AT, but a submission that
    timed out may have reached the network: its retry may deliver the part
    twice."""

    def __init__(self, device, baudrate=115200, timeout=30.0, attempts=3,
            retry_delay=5.0, check_pin=True, cmee=1, validity=None,
            smsc=None):
        self.device = device
        self.baudrate = int(baudrate)
        self.timeout = float(timeout)
        self.attempts = max(1, int(attempts))
        self.retry_delay = float(retry_delay)
        self.check_pin = check_pin
        self.cmee = cmee
        self.validity = validity
        self.smsc = smsc
        self._serial = None
        self._buffer = bytearray()
        self._initialised = False
        self._reference = random.randrange(256)

    @classmethod
    def from_endpoint(cls, endpoint, **kwargs):
        """A modem for an his.endpoint of kind sms_modem: its URL is the
        device, its read timeout the answer timeout"""
        kwargs.setdefault('timeout', endpoint.read_timeout or 30.0)
        return cls(endpoint.url, **kwargs)

    def __repr__(self):
        return f'<Modem {self.device} {self.baudrate} baud>'

    # Connection

    @property
    def is_open(self):
        return self._serial is not None

    def open(self):
        import serial
        if self._serial is not None:
            return
        try:
            self._serial = serial.Serial(
                port=self.device, baudrate=self.baudrate, bytesize=8,
                parity='N', stopbits=1, timeout=0.05,
                write_timeout=self.timeout, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exception:
            errno = getattr(exception, 'errno', None)
            if errno == 11:
                reason = "it is in use by another process"
            elif errno:
                import os
                reason = os.strerror(errno)
            else:
                reason = str(exception)
            raise ModemAbsent(
                f"cannot open the modem device {self.device}: {reason}",
                device=self.device) from exception
        self._buffer.clear()
        self._initialised = False
        try:
            self._serial.reset_input_buffer()
        except Exception:
            pass

    def close(self):
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None
                self._initialised = False

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    # Low level

    def _write(self, data):
        if isinstance(data, str):
            data = data.encode('ascii')
        logger.debug("%s <- %r", self.device, data)
        import serial
        try:
            self._serial.write(data)
            self._serial.flush()
        except serial.SerialTimeoutException as exception:
            raise ModemTimeout(
                f"the modem on {self.device} did not take the data in "
                f"{self.timeout:g} s") from exception
        except (serial.SerialException, OSError) as exception:
            raise ModemAbsent(
                f"the modem device {self.device} failed: {exception}",
                device=self.device) from exception

    def _fill(self, deadline):
        "Read what the modem sent, waiting until deadline at most"
        import serial
        if time.monotonic() >= deadline:
            return False
        try:
            data = self._serial.read(max(1, self._serial.in_waiting))
        except (serial.SerialException, OSError) as exception:
            raise ModemAbsent(
                f"the modem device {self.device} failed: {exception}",
                device=self.device) from exception
        if data:
            logger.debug("%s -> %r", self.device, data)
            self._buffer += data
        return True

    def _take_line(self):
        "The next complete non-empty line in the buffer, or None"
        while True:
            positions = [
                i for i in (self._buffer.find(b'\r'), self._buffer.find(b'\n'))
                if i >= 0]
            if not positions:
                return None
            end = min(positions)
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            line = line.decode('latin-1').strip()
            if line:
                return line

    def _read_line(self, deadline, command, seconds):
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if not self._fill(deadline):
                raise ModemTimeout(
                    f"no answer from the modem on {self.device} to "
                    f"{command} within {seconds:g} s", command=command)

    def _final(self, command, seconds):
        """Read the lines up to the final result code within seconds: the
        information lines if OK, else raise its ModemError"""
        deadline = time.monotonic() + seconds
        lines = []
        while True:
            line = self._read_line(deadline, command, seconds)
            if line == 'OK':
                return lines
            error = _parse_error(line, command)
            if error is not None:
                raise error
            if line.upper() == command.upper():
                continue    # echo
            lines.append(line)

    def command(self, command, timeout=None):
        """Send an AT command; return its information lines once OK, raise
        ModemError or ModemTimeout"""
        self._write(command + '\r')
        return self._final(command, timeout or self.timeout)

    def _drain(self, seconds=0.2):
        "Discard what the modem sends for a moment"
        deadline = time.monotonic() + seconds
        while self._fill(deadline):
            pass
        self._buffer.clear()

    def resync(self):
        "Cancel a pending submission and check the modem answers AT"
        self._write(ESC + b'\r')
        self._drain()
        self.command('AT', timeout=min(self.timeout, PROBE_TIMEOUT))

    def initialise(self):
        """The set-up dialogue: AT, ATE0, AT+CMEE, AT+CMGF=0 (PDU mode) and
        AT+CPIN? (READY)"""
        self.open()
        try:
            self.command('AT', timeout=min(self.timeout, PROBE_TIMEOUT))
        except (ModemTimeout, ModemError):
            # A modem left waiting for a PDU or a half line
            self.resync()
        self.command('ATE0')
        if self.cmee is not None:
            try:
                self.command(f'AT+CMEE={self.cmee}')
            except ModemError:
                logger.info("%s: the modem refused AT+CMEE", self.device)
        try:
            self.command('AT+CMGF=0')
        except ModemError as exception:
            raise ModemError(
                f"the modem on {self.device} refused the PDU mode "
                f"(AT+CMGF=0): {exception}", kind=exception.kind,
                code=exception.code, command='AT+CMGF=0') from exception
        if self.check_pin:
            lines = self.command('AT+CPIN?')
            states = [
                line.split(':', 1)[1].strip() for line in lines
                if line.upper().startswith('+CPIN:')]
            if not states or states[0].upper() != 'READY':
                state = states[0] if states else "no +CPIN answer"
                raise ModemError(
                    f"the SIM of the modem on {self.device} is not ready: "
                    f"{state}", command='AT+CPIN?')
        self._initialised = True

    # Sending

    def _wait_prompt(self, command):
        "Wait for the '> ' of AT+CMGS; raise its error if it refuses"
        deadline = time.monotonic() + self.timeout
        while True:
            while self._buffer[:1] in (b'\r', b'\n'):
                del self._buffer[:1]
            if self._buffer[:1] == b'>':
                del self._buffer[:1]
                if self._buffer[:1] == b' ':
                    del self._buffer[:1]
                return
            line = self._take_line()
            if line is not None:
                error = _parse_error(line, command)
                if error is not None:
                    raise error
                continue    # echo or unsolicited result code
            if not self._fill(deadline):
                raise ModemTimeout(
                    f"no '> ' prompt from the modem on {self.device} after "
                    f"{command} within {self.timeout:g} s", command=command)

    def submit(self, pdu):
        "Submit one PDU; return the message reference the modem gives"
        command = f'AT+CMGS={pdu.length}'
        self._write(command + '\r')
        self._wait_prompt(command)
        self._write(pdu.hex.encode('ascii') + CTRL_Z)
        lines = self._final(command, self.timeout)
        for line in lines:
            match = CMGS.match(line)
            if match:
                return int(match.group(1))
        return None

    def _submit_with_retries(self, pdu):
        last = None
        for attempt in range(1, self.attempts + 1):
            try:
                if isinstance(last, ModemTimeout):
                    self.resync()
                return self.submit(pdu)
            except ModemTimeout as exception:
                last = exception
            except ModemError as exception:
                if not exception.transient:
                    raise
                last = exception
            logger.warning(
                "%s: part %d/%d attempt %d/%d failed: %s", self.device,
                pdu.part, pdu.parts, attempt, self.attempts, last)
            if attempt < self.attempts:
                time.sleep(self.retry_delay)
        raise last

    def send(self, number, text, validity=None):
        """Send text to number; return the message references of its parts
        once the modem accepted every part.

        Raise InvalidMessage, ModemAbsent, ModemTimeout or ModemError (whose
        ``accepted`` lists the references of the parts sent before)."""
        self._reference = (self._reference + 1) % 256
        pdus = encode_submit(
            number, text, reference=self._reference,
            validity=validity if validity is not None else self.validity,
            smsc=self.smsc)
        opened = not self.is_open
        references = []
        try:
            if not self._initialised:
                self.initialise()
            for pdu in pdus:
                references.append(self._submit_with_retries(pdu))
        except (ModemError, ModemTimeout, ModemAbsent) as exception:
            exception.accepted = list(references)
            raise
        finally:
            if opened:
                self.close()
        logger.info(
            "%s: sent %d part(s) to %s, references %s", self.device,
            len(pdus), pdus[0].number, references)
        return references
