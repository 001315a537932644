# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""``hrp sms send``: send a text through a GSM modem on a serial device.

    hrp sms send --device /dev/ttyUSB0 --to +8613800000000 "文本"

Exit status: 0 once the modem accepted every part (their message
references are printed), 1 for an invalid number or text, 2 when the modem
is absent, silent or answers an error (printed on the standard error)."""
import sys

__all__ = ['add_parser', 'cmd_sms_send']

EXIT_INVALID = 1
EXIT_MODEM = 2


def cmd_sms_send(options):
    from his_connector.sms import (
        InvalidMessage, Modem, ModemAbsent, ModemError, ModemTimeout,
        normalise_number)
    text = options.text
    if text == '-':
        text = sys.stdin.read().rstrip('\n')
    modem = Modem(
        options.device, baudrate=options.baudrate, timeout=options.timeout,
        attempts=options.attempts, retry_delay=options.retry_delay,
        check_pin=not options.no_pin_check)
    try:
        references = modem.send(options.to, text)
    except InvalidMessage as exception:
        print(f"hrp sms: {exception}", file=sys.stderr, flush=True)
        return EXIT_INVALID
    except (ModemAbsent, ModemTimeout, ModemError) as exception:
        message = f"hrp sms: {exception}"
        if exception.accepted:
            message += (f" ({len(exception.accepted)} part(s) sent before, "
                f"references {' '.join(map(str, exception.accepted))})")
        print(message, file=sys.stderr, flush=True)
        return EXIT_MODEM
    print(f"sent {len(references)} part(s) to "
        f"{normalise_number(options.to)}: references "
        + ' '.join('?' if r is None else str(r) for r in references),
        flush=True)
    return 0


def add_parser(commands):
    "Add the ``sms`` command and its sub-commands to the hrp commands"
    sms = commands.add_parser('sms', help="send SMS through a GSM modem")
    sms_commands = sms.add_subparsers(dest='sms_command',
        metavar='SUBCOMMAND')
    sms_commands.required = True
    send = sms_commands.add_parser('send',
        help="send a text message through the modem on a serial device",
        description="Send a text message through a GSM modem (AT commands, "
        "PDU mode). Exit 0 once every part was accepted, 2 on a modem "
        "error.")
    send.add_argument('--device', required=True, metavar='PATH',
        help="the modem's serial device, e.g. /dev/ttyUSB0")
    send.add_argument('--to', required=True, metavar='NUMBER',
        help="the recipient: +8613800000000 (international) or national "
        "digits")
    send.add_argument('--baudrate', type=int, default=115200,
        help="serial speed (default: %(default)s)")
    send.add_argument('--timeout', type=float, default=30.0, metavar='S',
        help="seconds to wait for each answer of the modem "
        "(default: %(default)s)")
    send.add_argument('--attempts', type=int, default=3, metavar='N',
        help="attempts per part on a transient error (default: %(default)s)")
    send.add_argument('--retry-delay', type=float, default=5.0, metavar='S',
        help="seconds between attempts (default: %(default)s)")
    send.add_argument('--no-pin-check', action='store_true',
        help="do not require AT+CPIN? to answer READY")
    send.add_argument('text',
        help="the message (UTF-8; '-' reads it from the standard input)")
    send.set_defaults(func=cmd_sms_send)
    return sms
