# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A GSM modem emulator on a pseudo-terminal, for the tests and the demo.

It opens a pseudo-terminal pair, gives the path of its slave side (e.g.
/dev/pts/5) as the modem device, and answers the AT commands a real modem
answers, in a thread: AT, ATE0/ATE1, AT+CMEE, AT+CMGF=0/1, AT+CPIN?,
AT+CMGS with its '> ' prompt.  It decodes every SMS-SUBMIT PDU it receives
with its own decoder (number, data coding, user data header, text),
records each part and reassembles the concatenated messages, so a test
asserts on what the modem really received.

Faults are injected with :meth:`ModemEmulator.fail_submissions` (+CMS
ERROR for the next submissions), :meth:`~ModemEmulator.error_submissions`
(bare ERROR), :meth:`~ModemEmulator.silence_submissions` (no answer after
the PDU) and the ``silent`` attribute (no answer at all).  A PDU whose
length does not match AT+CMGS=<length> is refused with +CMS ERROR: 304
unless ``strict_length`` is false.

    python -m his_connector.sms_emulator [--log FILE] [--link PATH]

prints the device path and runs until it is stopped (Ctrl-C, SIGTERM)."""
import argparse
import datetime as dt
import json
import os
import select
import signal
import sys
import threading
import tty

from .sms import (
    CME_ERRORS, CMS_ERRORS, GSM7_BASIC, GSM7_ESCAPE, GSM7_EXTENSION)

__all__ = ['ModemEmulator', 'decode_submit', 'PduError', 'main']

CTRL_Z = 0x1A
ESC = 0x1B


class PduError(ValueError):
    "The PDU is not a valid SMS-SUBMIT"


# Decoding (independent of the encoder of his_connector.sms)

SEMI_OCTETS = '0123456789*#abc'


def _semi_octet_digits(data, count):
    "count digits of swapped semi-octets (F fills the last one)"
    digits = []
    for octet in data:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble != 0x0F:
                digits.append(SEMI_OCTETS[nibble])
    return ''.join(digits)[:count]


def unpack_septets(data, count, skip_bits=0):
    "count septets packed in data, least significant bit first"
    value = int.from_bytes(data, 'little') >> skip_bits
    return [(value >> (7 * i)) & 0x7F for i in range(count)]


def gsm7_text(septets):
    chars = []
    escaped = False
    for septet in septets:
        if escaped:
            # An unknown extension shows as the basic character (§ 6.2.1.1)
            chars.append(GSM7_EXTENSION.get(septet, GSM7_BASIC[septet]))
            escaped = False
        elif septet == GSM7_ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC[septet])
    if escaped:
        raise PduError("the GSM text ends with an escape")
    return ''.join(chars)


class _Reader:
    def __init__(self, data):
        self.data = data
        self.position = 0

    def take(self, count, what):
        if count < 0 or self.position + count > len(self.data):
            raise PduError(f"the PDU ends in the {what}")
        chunk = self.data[self.position:self.position + count]
        self.position += count
        return chunk

    def octet(self, what):
        return self.take(1, what)[0]


def decode_submit(pdu, with_smsc=True):
    """Decode an SMS-SUBMIT given as hexadecimal (or bytes), with the SMSC
    information first when with_smsc (as given to AT+CMGS in PDU mode).

    Return a dict: smsc, tpdu_length, mr, number, toa, pid, dcs,
    encoding, vpf, vp, srr, udhi, udl, udh (a list of (iei, data)),
    concat ({reference, total, sequence} or None) and text."""
    if isinstance(pdu, str):
        try:
            pdu = bytes.fromhex(pdu.strip())
        except ValueError as exception:
            raise PduError(f"not hexadecimal: {exception}") from None
    reader = _Reader(bytes(pdu))
    result = {'smsc': None}
    if with_smsc:
        smsc_length = reader.octet('SMSC length')
        if smsc_length:
            smsc = reader.take(smsc_length, 'SMSC')
            number = _semi_octet_digits(smsc[1:], 2 * (smsc_length - 1))
            result['smsc'] = ('+' if smsc[0] == 0x91 else '') + number
    result['tpdu_length'] = len(reader.data) - reader.position
    first = reader.octet('first octet')
    if (first & 0x03) != 0x01:
        raise PduError(f"not an SMS-SUBMIT (TP-MTI {first & 0x03})")
    result['rd'] = bool(first & 0x04)
    result['vpf'] = (first >> 3) & 0x03
    result['srr'] = bool(first & 0x20)
    result['udhi'] = bool(first & 0x40)
    result['rp'] = bool(first & 0x80)
    result['mr'] = reader.octet('TP-MR')
    digits = reader.octet('TP-DA length')
    if digits > 20:
        raise PduError(f"TP-DA of {digits} digits")
    toa = reader.octet('TP-DA type')
    if not toa & 0x80:
        raise PduError(f"invalid type of address {toa:#04x}")
    number = _semi_octet_digits(reader.take((digits + 1) // 2, 'TP-DA'),
        digits)
    if (toa & 0x70) == 0x50:
        raise PduError("alphanumeric recipient")
    if not number.isdigit() and number:
        raise PduError(f"invalid recipient digits {number!r}")
    result['toa'] = toa
    result['number'] = ('+' if (toa & 0x70) == 0x10 else '') + number
    result['pid'] = reader.octet('TP-PID')
    dcs = reader.octet('TP-DCS')
    result['dcs'] = dcs
    if (dcs & 0xC0) == 0x00:
        # General data coding: bit 5 compressed, bits 3-2 the alphabet
        if dcs & 0x20:
            raise PduError("compressed text")
        alphabet = (dcs >> 2) & 0x03
    elif (dcs & 0xF0) == 0xF0:
        # Data coding/message class: bit 2 8-bit data
        alphabet = (dcs >> 2) & 0x01
    else:
        raise PduError(f"data coding scheme {dcs:#04x} not handled")
    result['encoding'] = {0: 'gsm7', 1: '8bit', 2: 'ucs2'}.get(alphabet)
    if result['encoding'] is None:
        raise PduError(f"reserved alphabet in TP-DCS {dcs:#04x}")
    vp = None
    if result['vpf'] == 2:
        vp = reader.octet('TP-VP')
    elif result['vpf'] in {1, 3}:
        vp = reader.take(7, 'TP-VP').hex().upper()
    result['vp'] = vp
    udl = reader.octet('TP-UDL')
    result['udl'] = udl
    user_data = reader.data[reader.position:]
    if result['encoding'] == 'gsm7':
        if udl > 160:
            raise PduError(f"TP-UDL {udl} septets")
        expected = (udl * 7 + 7) // 8
    else:
        if udl > 140:
            raise PduError(f"TP-UDL {udl} octets")
        expected = udl
    if len(user_data) != expected:
        raise PduError(
            f"user data of {len(user_data)} octets for TP-UDL {udl} "
            f"({expected} expected)")
    udh, header_octets = [], 0
    if result['udhi']:
        if not user_data:
            raise PduError("no user data header")
        udhl = user_data[0]
        header_octets = udhl + 1
        if header_octets > len(user_data):
            raise PduError("the user data header is longer than the data")
        header = user_data[1:header_octets]
        position = 0
        while position < len(header):
            if position + 2 > len(header):
                raise PduError("truncated information element")
            iei, length = header[position], header[position + 1]
            data = header[position + 2:position + 2 + length]
            if len(data) != length:
                raise PduError("truncated information element")
            udh.append((iei, bytes(data)))
            position += 2 + length
    result['udh'] = udh
    concat = None
    for iei, data in udh:
        if iei == 0x00 and len(data) == 3:
            concat = {
                'reference': data[0], 'total': data[1], 'sequence': data[2]}
        elif iei == 0x08 and len(data) == 4:
            concat = {
                'reference': int.from_bytes(data[:2], 'big'),
                'total': data[2], 'sequence': data[3]}
    if concat and not (1 <= concat['sequence'] <= concat['total']):
        raise PduError(f"invalid concatenation {concat}")
    result['concat'] = concat
    if result['encoding'] == 'gsm7':
        header_septets = (header_octets * 8 + 6) // 7
        if header_septets > udl:
            raise PduError("the user data header is longer than TP-UDL")
        septets = unpack_septets(user_data, udl)[header_septets:]
        result['text'] = gsm7_text(septets)
    elif result['encoding'] == 'ucs2':
        body = user_data[header_octets:]
        if len(body) % 2:
            raise PduError("odd UCS2 length")
        result['text'] = body.decode('utf-16-be', errors='surrogatepass')
    else:
        result['text'] = None
        result['data'] = bytes(user_data[header_octets:]).hex().upper()
    return result


def _join_text(parts):
    "The text of the parts, pairing surrogates split between parts"
    text = ''.join(p['text'] or '' for p in parts)
    return text.encode('utf-16-be', 'surrogatepass').decode(
        'utf-16-be', 'replace')


class ModemEmulator:
    """A modem answering AT commands on the slave side of a
    pseudo-terminal.

    After start(), ``device`` is the path to give the modem driver.
    ``commands`` lists the command lines received, ``parts`` the decoded
    parts the modem accepted, ``messages`` the complete messages (a dict
    with number, text, encoding, parts, references), ``submissions`` every
    AT+CMGS with its outcome.  log_path: a file where each complete message
    is appended as a JSON line."""

    def __init__(self, echo=True, cmee=0, pin='READY', strict_length=True,
            log_path=None, first_reference=0, prompt=b'\r\n> ',
            out=None):
        self.echo = echo
        self.cmee = cmee
        self.pin = pin
        self.strict_length = strict_length
        self.log_path = log_path
        self.prompt = prompt
        self.out = out
        self.pdu_mode = False
        self.silent = False
        self.device = None
        self.commands = []
        self.parts = []
        self.messages = []
        self.submissions = []
        self._faults = []
        self._pending = {}
        self._next_mr = first_reference % 256
        self._lock = threading.RLock()
        self._master = self._slave = None
        self._thread = None
        self._stop = threading.Event()
        self._state = 'command'
        self._line = bytearray()
        self._pdu = bytearray()
        self._cmgs = None
        self._cmgs_line = None
        self._wake = None

    # Life cycle

    def start(self):
        "Open the pseudo-terminal, answer in a thread, return the device"
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.device = os.ttyname(self._slave)
        self._wake = os.pipe()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f'modem-emulator {self.device}',
            daemon=True)
        self._thread.start()
        return self.device

    def stop(self):
        if self._thread is None:
            return
        self._stop.set()
        os.write(self._wake[1], b'x')
        self._thread.join(5)
        self._thread = None
        for fd in (self._master, self._slave, *self._wake):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = self._wake = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    # Faults

    # Each fault applies to one submission, in order; after=n first lets n
    # submissions through.

    def _inject(self, fault, count, after):
        with self._lock:
            self._faults.extend([None] * after + [fault] * count)

    def fail_submissions(self, code, count=1, kind='CMS', after=0):
        "Answer +CMS ERROR: code (or +CME) to the next count submissions"
        self._inject(('error', kind, code), count, after)

    def error_submissions(self, count=1, after=0):
        "Answer a bare ERROR to the next count submissions"
        self._inject(('error', None, None), count, after)

    def silence_submissions(self, count=1, after=0):
        "Never answer the next count submissions once their PDU is in"
        self._inject(('silence', None, None), count, after)

    def clear(self):
        "Forget the faults and what was received"
        with self._lock:
            self._faults.clear()
            self.commands.clear()
            self.parts.clear()
            self.messages.clear()
            self.submissions.clear()
            self._pending.clear()

    # The thread

    def _run(self):
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(
                    [self._master, self._wake[0]], [], [], 1)
            except (OSError, ValueError):
                return
            if self._wake[0] in ready or self._stop.is_set():
                return
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            with self._lock:
                for byte in data:
                    self._feed(byte)

    def _send(self, data):
        if isinstance(data, str):
            data = data.encode('latin-1')
        try:
            os.write(self._master, data)
        except OSError:
            pass

    def _respond(self, *lines):
        if self.silent:
            return
        self._send(b''.join(b'\r\n' + line.encode('utf-8') + b'\r\n'
                for line in lines))

    def _error(self, kind=None, code=None):
        if kind is None or self.cmee == 0:
            self._respond('ERROR')
        elif self.cmee == 2:
            table = CMS_ERRORS if kind == 'CMS' else CME_ERRORS
            self._respond(f'+{kind} ERROR: {table.get(code, code)}')
        else:
            self._respond(f'+{kind} ERROR: {code}')

    def _feed(self, byte):
        if self.echo and not self.silent:
            self._send(bytes([byte]))
        if self._state == 'pdu':
            if byte == CTRL_Z:
                self._state = 'command'
                self._submitted(bytes(self._pdu))
            elif byte == ESC:
                self._state = 'command'
                self.submissions.append({
                        'command': self._cmgs_line, 'outcome': 'cancelled'})
                self._respond('OK')
            elif byte == 0x08 and self._pdu:   # backspace
                self._pdu.pop()
            elif byte not in b'\r\n':
                self._pdu.append(byte)
            return
        if byte in b'\r\n':
            line = self._line.decode('latin-1').strip()
            self._line.clear()
            if line:
                self._command(line)
        elif byte == 0x08:
            if self._line:
                self._line.pop()
        elif byte != ESC:
            self._line.append(byte)

    def _command(self, line):
        self.commands.append(line)
        if self.silent:
            return
        upper = line.upper()
        if not upper.startswith('AT'):
            self._respond('ERROR')
            return
        body = upper[2:]
        if body in {'', 'Z', '&F', 'E0V1', 'V1'}:
            if body in {'Z', '&F'}:
                self.echo = True
                self.cmee = 0
            self._respond('OK')
        elif body in {'E0', 'E1', 'E'}:
            self.echo = body == 'E1'
            self._respond('OK')
        elif body in {'+CMEE=0', '+CMEE=1', '+CMEE=2'}:
            self.cmee = int(body[-1])
            self._respond('OK')
        elif body == '+CMEE?':
            self._respond(f'+CMEE: {self.cmee}', 'OK')
        elif body in {'+CMGF=0', '+CMGF=1'}:
            self.pdu_mode = body == '+CMGF=0'
            self._respond('OK')
        elif body == '+CMGF?':
            self._respond(f'+CMGF: {0 if self.pdu_mode else 1}', 'OK')
        elif body == '+CPIN?':
            if self.pin is None:
                self._error('CME', 10)
            else:
                self._respond(f'+CPIN: {self.pin}', 'OK')
        elif body == '+CSQ':
            self._respond('+CSQ: 21,99', 'OK')
        elif body == '+CREG?':
            self._respond('+CREG: 0,1', 'OK')
        elif body in {'I', '+CGMI'}:
            self._respond('HRP modem emulator', 'OK')
        elif body.startswith('+CMGS='):
            self._cmgs_command(line, line[len('AT+CMGS='):].strip())
        else:
            self._respond('ERROR')

    def _cmgs_command(self, line, argument):
        if self.pin != 'READY':
            self._error('CMS', 311 if self.pin == 'SIM PIN' else 310)
            return
        if self.pdu_mode:
            if not argument.isdigit() or not 7 <= int(argument) <= 164:
                self._error('CMS', 304)
                return
            self._cmgs = int(argument)
        else:
            number = argument.split(',')[0].strip().strip('"')
            if not number:
                self._error('CMS', 305)
                return
            self._cmgs = number
        self._cmgs_line = line
        self._pdu.clear()
        self._state = 'pdu'
        if not self.silent:
            self._send(self.prompt)

    def _submitted(self, raw):
        submission = {'command': self._cmgs_line, 'pdu': raw.decode(
                'latin-1')}
        self.submissions.append(submission)
        if self.pdu_mode:
            try:
                part = decode_submit(raw.decode('ascii'))
            except (PduError, UnicodeDecodeError) as exception:
                submission['outcome'] = f'invalid PDU: {exception}'
                self._error('CMS', 304)
                return
            if self.strict_length and part['tpdu_length'] != self._cmgs:
                submission['outcome'] = (
                    f"length mismatch: AT+CMGS={self._cmgs}, TPDU of "
                    f"{part['tpdu_length']} octets")
                self._error('CMS', 304)
                return
        else:
            text = raw.decode('utf-8', 'replace')
            part = {
                'number': self._cmgs, 'text': text, 'encoding': 'text',
                'concat': None, 'udh': [], 'dcs': None}
        submission['decoded'] = part
        fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            fault, kind, code = fault
            if fault == 'silence':
                submission['outcome'] = 'silence'
                return
            submission['outcome'] = (
                f'+{kind} ERROR: {code}' if kind else 'ERROR')
            self._error(kind, code)
            return
        if self.silent:
            submission['outcome'] = 'silent'
            return
        reference = self._next_mr
        self._next_mr = (self._next_mr + 1) % 256
        part['message_reference'] = reference
        submission['outcome'] = 'accepted'
        self.parts.append(part)
        self._assemble(part)
        self._respond(f'+CMGS: {reference}', 'OK')

    def _assemble(self, part):
        concat = part.get('concat')
        if not concat or concat['total'] == 1:
            self._complete([part])
            return
        key = (part['number'], concat['reference'], concat['total'])
        pending = self._pending.setdefault(key, {})
        pending[concat['sequence']] = part
        if len(pending) == concat['total']:
            del self._pending[key]
            self._complete([pending[i] for i in sorted(pending)])

    def _complete(self, parts):
        concat = parts[0].get('concat')
        message = {
            'time': dt.datetime.now(dt.timezone.utc).isoformat(
                timespec='seconds'),
            'number': parts[0]['number'],
            'text': _join_text(parts),
            'encoding': parts[0]['encoding'],
            'parts': len(parts),
            'concat_reference': concat['reference'] if concat else None,
            'references': [p.get('message_reference') for p in parts],
            }
        self.messages.append(message)
        if self.log_path:
            with open(self.log_path, 'a', encoding='utf-8') as log:
                log.write(json.dumps(message, ensure_ascii=False) + '\n')
        if self.out:
            self.out(f"message to {message['number']} "
                f"({message['parts']} part(s)): {message['text']}")


# python -m his_connector.sms_emulator

def get_parser():
    parser = argparse.ArgumentParser(
        prog='python -m his_connector.sms_emulator',
        description="Emulate a GSM SMS modem on a pseudo-terminal: print "
        "its device path, then answer AT commands until stopped.")
    parser.add_argument('--log', metavar='FILE',
        help="append each received message as a JSON line to FILE")
    parser.add_argument('--link', metavar='PATH',
        help="also make PATH a symbolic link to the device (e.g. "
        "/dev/ttyHRPSMS0, a stable path for his.endpoint), removed on exit")
    parser.add_argument('--no-echo', dest='echo', action='store_false',
        help="start with the echo off (as after ATE0)")
    parser.add_argument('--pin', default='READY',
        help="the SIM state answered to AT+CPIN? (default: %(default)s)")
    parser.add_argument('--fail', type=int, metavar='CODE',
        help="answer +CMS ERROR: CODE to the first submissions")
    parser.add_argument('--fail-count', type=int, default=1, metavar='N',
        help="how many submissions --fail refuses (default: %(default)s)")
    parser.add_argument('--silent', action='store_true',
        help="never answer (a dead modem)")
    parser.add_argument('--quiet', action='store_true',
        help="do not print the received messages")
    return parser


def main(argv=None):
    options = get_parser().parse_args(argv)
    emulator = ModemEmulator(
        echo=options.echo, pin=options.pin, log_path=options.log,
        out=None if options.quiet else (lambda s: print(s, flush=True)))
    emulator.silent = options.silent
    if options.fail is not None:
        emulator.fail_submissions(options.fail, options.fail_count)
    stop = threading.Event()

    def stop_handler(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, stop_handler)
    signal.signal(signal.SIGINT, stop_handler)
    device = emulator.start()
    try:
        if options.link:
            if os.path.lexists(options.link):
                os.remove(options.link)
            os.symlink(device, options.link)
        print(device, flush=True)
        if options.link:
            print(f"linked as {options.link}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if options.link and os.path.islink(options.link):
            os.remove(options.link)
        emulator.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
