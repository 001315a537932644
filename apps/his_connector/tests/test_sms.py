# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The SMS modem driver against known PDUs and the modem emulator on a real
pseudo-terminal (no database)."""
import json
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
import serial

from his_connector.sms import (
    GSM7_BASIC, GSM7_EXTENSION, InvalidMessage, Modem, ModemAbsent,
    ModemError, ModemTimeout, encode_address, encode_submit, encode_validity,
    gsm7_septets, normalise_number, pack_septets)
from his_connector.sms_emulator import ModemEmulator, PduError, decode_submit

pytestmark = pytest.mark.no_db

CHINESE = '请补货：一次性注射器二十盒，输液器十盒，医用口罩五十包。'


@pytest.fixture
def emulator():
    with ModemEmulator() as emulator:
        yield emulator


def modem(emulator, **kwargs):
    kwargs.setdefault('timeout', 2)
    kwargs.setdefault('retry_delay', 0.01)
    return Modem(emulator.device, **kwargs)


# PDU encoding: known vectors

def test_gsm7_packing_vectors():
    "Septet packing of TS 23.038 § 6.1.2.1.1"
    assert pack_septets([0x68, 0x65, 0x6C, 0x6C, 0x6F] * 2).hex().upper() \
        == 'E8329BFD4697D9EC37'
    # 1234567: seven septets leave 7 zero bits in the last octet
    assert pack_septets(
        [s for (s,) in gsm7_septets('1234567')]).hex().upper() \
        == '31D98C56B3DD00'
    # After a 6-octet UDH, one fill bit: 'A' (0x41) becomes 0x82
    assert pack_septets([0x41], fill_bits=1) == b'\x82'


def test_submit_gsm7_international_with_validity():
    "The classic SMS-SUBMIT of 'hellohello' to +46708251358, VP 4 days"
    (pdu,) = encode_submit(
        '+46708251358', 'hellohello', validity=timedelta(days=4))
    assert pdu.hex == '0011000B916407281553F80000AA0AE8329BFD4697D9EC37'
    assert pdu.length == 23
    assert (pdu.encoding, pdu.parts, pdu.reference) == ('gsm7', 1, None)


def test_submit_ucs2_chinese_national():
    "你好 to the national number 13800138000: TOA 0x81, DCS 0x08"
    (pdu,) = encode_submit('13800138000', '你好')
    assert pdu.hex == '0001000B813108108300F00008044F60597D'
    assert pdu.length == 17


def test_address_encoding():
    assert encode_address('+8613800138000').hex().upper() \
        == '0D91683108108300F0'
    assert encode_address('13800138000').hex().upper() \
        == '0B813108108300F0'
    assert encode_address('10086').hex().upper() == '05810180F6'
    assert encode_address('+86 138-0013-8000') \
        == encode_address('+8613800138000')


def test_gsm7_extension_costs_two_septets():
    (pdu,) = encode_submit('10086', '2 € par mois')
    # UDL 13 septets for 12 characters
    assert pdu.hex.endswith('0D32D0A60C8287E5A0F63B3D07')


def test_validity_period():
    assert encode_validity(300) == 0
    assert encode_validity(timedelta(hours=12)) == 143
    assert encode_validity(timedelta(hours=12, minutes=1)) == 144
    assert encode_validity(timedelta(hours=24)) == 167
    assert encode_validity(timedelta(hours=25)) == 168
    assert encode_validity(timedelta(days=30)) == 196
    assert encode_validity(timedelta(days=31)) == 197
    assert encode_validity(timedelta(weeks=63)) == 255
    with pytest.raises(InvalidMessage):
        encode_validity(timedelta(weeks=64))
    with pytest.raises(InvalidMessage):
        encode_validity(0)


@pytest.mark.parametrize('number', [
        '', '12', '+', '+12a45', '1' * 21, '++123', '+86 13x', None])
def test_invalid_number(number):
    with pytest.raises(InvalidMessage):
        encode_submit(number, 'text')


def test_number_normalised():
    assert normalise_number(' +86 (138) 0013-8000 ') == '+8613800138000'
    assert normalise_number('1' * 20) == '1' * 20


def test_empty_or_huge_text_refused():
    with pytest.raises(InvalidMessage):
        encode_submit('+8613800000000', '')
    with pytest.raises(InvalidMessage):
        encode_submit('+8613800000000', '中' * (67 * 255 + 1))
    assert len(encode_submit('+8613800000000', '中' * (67 * 255))) == 255


def test_concatenated_chinese_200():
    "200 Chinese characters: 3 UCS2 parts of 67, 67 and 66 with a UDH"
    text = ''.join(CHINESE[i % len(CHINESE)] for i in range(200))
    pdus = encode_submit('+8613800138000', text, reference=0x42)
    assert [len(p.text) for p in pdus] == [67, 67, 66]
    assert ''.join(p.text for p in pdus) == text
    for index, pdu in enumerate(pdus, 1):
        tpdu = pdu.tpdu
        assert tpdu[0] == 0x41  # SMS-SUBMIT with TP-UDHI
        assert tpdu[1] == 0x00  # TP-MR set by the modem
        # DA (9 octets), PID 00, DCS 08, UDL, UDH 05 00 03 42 03 seq
        assert tpdu[11:13] == b'\x00\x08'
        udl = tpdu[13]
        assert udl == 6 + 2 * len(pdu.text) == len(tpdu) - 14
        assert tpdu[14:20] == bytes([5, 0, 3, 0x42, 3, index])
        decoded = decode_submit(pdu.hex)
        assert decoded['concat'] == {
            'reference': 0x42, 'total': 3, 'sequence': index}
        assert decoded['text'] == pdu.text
    assert pdus[0].length == 154


def test_gsm7_long_text_never_splits_an_escape():
    text = 'x' * 152 + '€' + 'y' * 200
    pdus = encode_submit('+8613800138000', text, reference=7)
    assert [p.septets for p in pdus] == [152, 153, 49]
    assert [len(p.text) for p in pdus] == [152, 152, 49]
    assert pdus[1].text.startswith('€')
    first = decode_submit(pdus[0].hex)
    # UDH of 6 octets = 7 septets with the fill bit
    assert first['udl'] == 7 + 152
    assert ''.join(decode_submit(p.hex)['text'] for p in pdus) == text
    # One part holds 160 septets, then 153 per part
    assert len(encode_submit('10086', 'a' * 160)) == 1
    assert [p.septets for p in encode_submit('10086', 'a' * 161)] \
        == [153, 8]


def test_ucs2_never_splits_a_surrogate_pair():
    text = '中' * 66 + '😀' + '文' * 10
    pdus = encode_submit('+8613800138000', text)
    assert [p.text for p in pdus] == ['中' * 66, '😀' + '文' * 10]
    assert len(encode_submit('10086', '中' * 70)) == 1
    assert len(encode_submit('10086', '中' * 71)) == 2


def test_whole_gsm7_alphabet_round_trip():
    text = ''.join(c for i, c in enumerate(GSM7_BASIC) if i != 0x1B) + \
        ''.join(GSM7_EXTENSION.values())
    pdus = encode_submit('10086', text, reference=1)
    assert {p.encoding for p in pdus} == {'gsm7'}
    assert ''.join(decode_submit(p.hex)['text'] for p in pdus) == text
    # A character outside the alphabet switches the whole text to UCS2
    assert encode_submit('10086', 'ok ç')[0].encoding == 'ucs2'


def test_cross_check_with_smspdudecoder():
    "An independent decoder reads the same number, header and text"
    fields = pytest.importorskip('smspdudecoder.fields')
    for number, text in [
            ('+8613800138000', CHINESE * 5),
            ('13800138000', 'Stock low: syringes 5ml [x20] {ward 3} €12 ~'
                * 5),
            ('+46708251358', 'hellohello')]:
        pdus = encode_submit(number, text, reference=0x99,
            validity=timedelta(days=2))
        received = []
        for pdu in pdus:
            decoded = fields.SMSSubmit.decode(StringIO(pdu.hex))
            recipient = decoded['recipient']
            assert ('+' if recipient['toa']['ton'] == 'international'
                else '') + recipient['number'] == number
            assert decoded['vp'] == 168
            header = decoded['user_data']['header']
            if len(pdus) > 1:
                (element,) = header['elements']
                assert element['data'] == {
                    'reference': 0x99, 'parts_count': len(pdus),
                    'part_number': pdu.part}
            else:
                assert header is None
            received.append(decoded['user_data']['data'])
        assert ''.join(received) == text


def test_emulator_decoder_refuses_bad_pdus():
    (pdu,) = encode_submit('10086', 'hello')
    with pytest.raises(PduError):
        decode_submit(pdu.hex[:-2])     # user data shorter than TP-UDL
    with pytest.raises(PduError):
        decode_submit('zz')
    with pytest.raises(PduError):
        decode_submit('00' + '00' + pdu.hex[4:])    # SMS-DELIVER


# The AT dialogue on a pseudo-terminal

def test_dialogue_and_reassembly(emulator):
    text = ''.join(CHINESE[i % len(CHINESE)] for i in range(200))
    references = modem(emulator).send('+8613800000000', text)
    assert references == [0, 1, 2]
    assert emulator.commands == [
        'AT', 'ATE0', 'AT+CMEE=1', 'AT+CMGF=0', 'AT+CPIN?',
        'AT+CMGS=154', 'AT+CMGS=154', 'AT+CMGS=152']
    assert [p['concat']['sequence'] for p in emulator.parts] == [1, 2, 3]
    assert {p['encoding'] for p in emulator.parts} == {'ucs2'}
    (message,) = emulator.messages
    assert message['number'] == '+8613800000000'
    assert message['text'] == text
    assert message['parts'] == 3
    assert message['references'] == [0, 1, 2]


def test_modem_kept_open_sends_several_messages(emulator):
    with modem(emulator) as device:
        assert device.send('10086', 'first ' * 30) == [0, 1]
        assert device.send('+8613800000000', 'second') == [2]
        assert device.send('+8613800000000', '第三条' * 30) == [3, 4]
    # Initialised once; each long message has its own reference
    assert emulator.commands.count('AT+CMGF=0') == 1
    assert [m['text'] for m in emulator.messages] == [
        'first ' * 30, 'second', '第三条' * 30]
    first, _, third = emulator.messages
    assert first['concat_reference'] != third['concat_reference']


def test_transient_error_then_success(emulator):
    emulator.fail_submissions(38, count=2)
    references = modem(emulator, attempts=3).send('+8613800000000', 'hi')
    assert references == [0]
    assert [s['outcome'] for s in emulator.submissions] == [
        '+CMS ERROR: 38', '+CMS ERROR: 38', 'accepted']
    assert [m['text'] for m in emulator.messages] == ['hi']


def test_transient_errors_exhaust_the_attempts(emulator):
    emulator.fail_submissions(42, count=5)
    with pytest.raises(ModemError) as info:
        modem(emulator, attempts=2).send('+8613800000000', 'hi')
    assert (info.value.kind, info.value.code) == ('CMS', 42)
    assert info.value.transient
    assert len(emulator.submissions) == 2
    assert emulator.messages == []


def test_permanent_error_not_retried(emulator):
    emulator.fail_submissions(21)
    with pytest.raises(ModemError) as info:
        modem(emulator, attempts=5).send('+8613800000000', 'hi')
    error = info.value
    assert (error.kind, error.code, error.transient) == ('CMS', 21, False)
    assert error.meaning == "short message transfer rejected"
    assert "+CMS ERROR: 21 (short message transfer rejected)" in str(error)
    assert len(emulator.submissions) == 1


def test_error_in_a_later_part_reports_the_accepted_ones(emulator):
    emulator.fail_submissions(96, after=1)
    with pytest.raises(ModemError) as info:
        modem(emulator).send('10086', 'a' * 200)
    assert info.value.code == 96
    assert info.value.accepted == [0]
    assert len(emulator.parts) == 1
    assert emulator.messages == []


def test_verbose_errors_are_understood(emulator):
    "With AT+CMEE=2 the modem names the error; the driver finds its code"
    emulator.fail_submissions(42)
    references = modem(emulator, cmee=2).send('+8613800000000', 'hi')
    assert references == [0]
    assert emulator.submissions[0]['outcome'] == '+CMS ERROR: 42'


def test_bare_error_not_retried(emulator):
    emulator.error_submissions()
    with pytest.raises(ModemError) as info:
        modem(emulator, attempts=3).send('+8613800000000', 'hi')
    assert (info.value.kind, info.value.code) == (None, None)
    assert len(emulator.submissions) == 1


def test_silent_modem_times_out(emulator):
    emulator.silent = True
    started = time.monotonic()
    with pytest.raises(ModemTimeout) as info:
        modem(emulator, timeout=0.3, attempts=1).send('+8613800000000', 'hi')
    assert time.monotonic() - started < 3
    assert "no answer" in str(info.value)
    assert emulator.parts == []


def test_silent_submission_resynchronised_and_retried(emulator):
    emulator.silence_submissions()
    references = modem(emulator, timeout=0.5, attempts=2).send(
        '+8613800000000', 'hi')
    assert references == [0]
    assert [s['outcome'] for s in emulator.submissions] == [
        'silence', 'accepted']
    # The driver checked the modem answers again before the retry
    assert emulator.commands[-2:] == ['AT', 'AT+CMGS=16']


def test_silent_submission_timeout(emulator):
    emulator.silence_submissions(3)
    with pytest.raises(ModemTimeout):
        modem(emulator, timeout=0.3, attempts=1).send('10086', 'hi')


def test_length_mismatch_refused(emulator):
    (pdu,) = encode_submit('+8613800000000', 'hello')
    wrong = SimpleNamespace(length=pdu.length + 1, hex=pdu.hex)
    with modem(emulator) as device:
        device.initialise()
        with pytest.raises(ModemError) as info:
            device.submit(wrong)
        assert (info.value.code, info.value.transient) == (304, False)
        assert emulator.submissions[-1]['outcome'].startswith(
            'length mismatch')
        emulator.strict_length = False
        assert device.submit(wrong) == 0
        # A PDU that is not hexadecimal
        with pytest.raises(ModemError) as info:
            device.submit(SimpleNamespace(length=5, hex='00GG'))
        assert info.value.code == 304
    assert [m['text'] for m in emulator.messages] == ['hello']


def test_sim_not_ready(emulator):
    emulator.pin = 'SIM PIN'
    with pytest.raises(ModemError, match='not ready: SIM PIN'):
        modem(emulator).send('10086', 'hi')
    emulator.pin = None
    with pytest.raises(ModemError) as info:
        modem(emulator).send('10086', 'hi')
    assert (info.value.kind, info.value.code) == ('CME', 10)
    assert info.value.meaning == "SIM not inserted"
    # Without the check the modem itself refuses the submission
    with pytest.raises(ModemError) as info:
        modem(emulator, check_pin=False).send('10086', 'hi')
    assert info.value.code == 310


def test_escape_cancels_a_submission(emulator):
    with serial.Serial(emulator.device, timeout=0.05) as port:
        port.write(b'ATE0\rAT+CMGF=0\rAT+CMGS=17\r')
        received = b''
        deadline = time.monotonic() + 2
        while not received.endswith(b'> ') and time.monotonic() < deadline:
            received += port.read(64)
        assert received.endswith(b'\r\n> ')
        port.write(b'0001\x1b')
        received = b''
        while b'OK' not in received and time.monotonic() < deadline:
            received += port.read(64)
        assert b'OK' in received
    assert emulator.submissions[-1]['outcome'] == 'cancelled'
    assert emulator.parts == []


def test_device_absent(tmp_path):
    with pytest.raises(ModemAbsent, match='No such file'):
        Modem('/dev/hrp-no-such-modem').send('10086', 'hi')
    with pytest.raises(ModemAbsent):
        Modem(str(tmp_path)).send('10086', 'hi')


def test_device_in_use(emulator):
    with modem(emulator):
        with pytest.raises(ModemAbsent, match='in use'):
            modem(emulator).send('10086', 'hi')


def test_from_endpoint(emulator):
    endpoint = SimpleNamespace(url=emulator.device, read_timeout=1.5)
    device = Modem.from_endpoint(endpoint, retry_delay=0)
    assert (device.device, device.timeout) == (emulator.device, 1.5)
    assert device.send('10086', 'hi') == [0]


# Commands

def _hrp():
    script = Path(sys.executable).parent / 'hrp'
    if script.exists():
        return [str(script)]
    return [sys.executable, '-m', 'hrp']


def _run(*args, input=None):
    return subprocess.run(
        [*_hrp(), 'sms', 'send', *args], capture_output=True, text=True,
        timeout=30, input=input)


def test_cli_send(emulator):
    text = '请补货：' + '注射器' * 30
    result = _run('--device', emulator.device, '--to', '+8613800000000',
        '--timeout', '2', text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "sent 2 part(s) to +8613800000000: references 0 1")
    assert [m['text'] for m in emulator.messages] == [text]
    result = _run('--device', emulator.device, '--to', '10086', '-',
        input='from stdin\n')
    assert result.returncode == 0, result.stderr
    assert emulator.messages[-1]['text'] == 'from stdin'


def test_cli_errors(emulator):
    emulator.fail_submissions(21)
    result = _run('--device', emulator.device, '--to', '+8613800000000',
        '--timeout', '2', 'hi')
    assert result.returncode == 2
    assert "+CMS ERROR: 21 (short message transfer rejected)" \
        in result.stderr
    assert emulator.messages == []

    emulator.fail_submissions(331)
    result = _run('--device', emulator.device, '--to', '+8613800000000',
        '--attempts', '2', '--retry-delay', '0', 'hi')
    assert result.returncode == 0, result.stderr

    result = _run('--device', emulator.device, '--to', '12ab', 'hi')
    assert result.returncode == 1
    assert "invalid recipient number" in result.stderr

    result = _run('--device', '/dev/hrp-no-such-modem', '--to', '10086',
        'hi')
    assert result.returncode == 2
    assert "cannot open the modem device" in result.stderr


def test_emulator_command(tmp_path):
    log = tmp_path / 'sms.jsonl'
    process = subprocess.Popen(
        [sys.executable, '-m', 'his_connector.sms_emulator', '--log',
            str(log), '--quiet'],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        device = process.stdout.readline().strip()
        assert device.startswith('/dev/')
        assert Modem(device, timeout=2).send(
            '+8613800000000', '你好，世界') == [0]
        (line,) = log.read_text(encoding='utf-8').splitlines()
        message = json.loads(line)
        assert (message['number'], message['text'], message['parts']) == (
            '+8613800000000', '你好，世界', 1)
    finally:
        process.terminate()
        assert process.wait(10) == 0
