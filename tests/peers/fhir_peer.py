# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""A small FHIR R4 server holding the test hospital of his_data.

Run as a process: ``python -m tests.peers.fhir_peer [--port N]``.  It
listens on 127.0.0.1 (a free port by default), prints one JSON line
``{"url": <FHIR base>, "control": <control URL>}`` and serves until it is
terminated.  Built on ``http.server.ThreadingHTTPServer``; every resource
it receives is parsed and validated with the ``fhir.resources`` R4B models,
and every resource it serves was validated the same way at start-up.

Interactions: read of Patient, Encounter, Procedure, ChargeItem and
ChargeItemDefinition; search of Encounter (identifier, class, _include
Encounter:subject), Procedure (identifier, encounter, _include
Procedure:encounter), ChargeItem (identifier, context, entered-date) and
ChargeItemDefinition (status), paged with _count/_offset; conditional create
of ChargeItem (If-None-Exist); update of ChargeItem (If-Match).  Unknown
search parameters are refused (400), as a strict server does."""
import argparse
import base64
import copy
import datetime as dt
import json
import re
import signal
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.chargeitemdefinition import ChargeItemDefinition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

try:
    from . import his_data
except ImportError:  # run as a script
    import his_data

BASE_PATH = '/fhir'
V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203'
ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode'
# The systems this HIS uses (HRP's FHIR profile, see FHIR-HL7.md)
INPATIENT_SYSTEM = 'urn:his:inpatient-number'
PATIENT_SYSTEM = 'urn:his:patient'
SURGERY_SYSTEM = 'urn:his:surgery-number'
CHARGE_CODE_SYSTEM = 'urn:his:charge-item'
INSURANCE_SYSTEM = 'urn:hrp:insurance-code'
UNIT_EXTENSION = 'urn:hrp:fhir:StructureDefinition/charge-unit'
MODELS = {
    'Patient': Patient,
    'Encounter': Encounter,
    'Procedure': Procedure,
    'ChargeItem': ChargeItem,
    'ChargeItemDefinition': ChargeItemDefinition,
    }


def _iso(value):
    return value.isoformat() if value else None


def _json_default(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value))


def _dumps(data):
    return json.dumps(data, ensure_ascii=False, default=_json_default)


def _clean(data):
    "Drop the None values of a resource dict, recursively"
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_clean(v) for v in data]
    return data


def build_resources():
    "Return {type: {id: resource dict}} of the hospital"
    resources = {name: {} for name in MODELS}
    for p in his_data.PATIENTS:
        resources['Patient'][p.id] = {
            'resourceType': 'Patient', 'id': p.id,
            'identifier': [{
                    'type': {'coding': [{'system': V2_0203, 'code': 'MR'}]},
                    'system': PATIENT_SYSTEM, 'value': p.id}],
            'name': [{
                    'use': 'official', 'text': p.name,
                    'family': p.family, 'given': [p.given]}],
            'gender': p.sex,
            'birthDate': _iso(p.birth_date),
            }
    for a in his_data.ADMISSIONS:
        resources['Encounter'][a.encounter_id] = {
            'resourceType': 'Encounter', 'id': a.encounter_id,
            'identifier': [{
                    'type': {'coding': [{'system': V2_0203, 'code': 'VN'}]},
                    'system': INPATIENT_SYSTEM, 'value': a.number}],
            'status': 'finished' if a.discharged else 'in-progress',
            'class': {'system': ACT_CODE, 'code': a.klass},
            'subject': {'reference': f'Patient/{a.patient}'},
            'period': {
                'start': _iso(a.admitted), 'end': _iso(a.discharged)},
            'location': [{'location': {'display': a.ward}}]
            if a.ward else None,
            'serviceProvider': {
                'identifier': {'value': a.department},
                'display': a.department},
            }
    for s in his_data.SURGERIES:
        admission = his_data.admission(s.admission)
        resources['Procedure'][s.procedure_id] = {
            'resourceType': 'Procedure', 'id': s.procedure_id,
            'identifier': [{'system': SURGERY_SYSTEM, 'value': s.number}],
            'status': s.status,
            'code': {
                'coding': [{
                        'system': 'http://hl7.org/fhir/sid/icd-9-cm',
                        'code': s.code, 'display': s.display}],
                'text': s.display},
            'subject': {'reference': f'Patient/{admission.patient}'},
            'encounter': {'reference': f'Encounter/{admission.encounter_id}'},
            'performedDateTime': _iso(s.date),
            'performer': [{'actor': {'display': s.surgeon}}],
            'location': {'display': s.theatre},
            }
    for c in his_data.CHARGE_ITEMS:
        codings = [{
                'system': CHARGE_CODE_SYSTEM, 'code': c.code,
                'display': c.name}]
        if c.insurance_code:
            codings.append({
                    'system': INSURANCE_SYSTEM, 'code': c.insurance_code})
        resources['ChargeItemDefinition'][c.code] = {
            'resourceType': 'ChargeItemDefinition', 'id': c.code,
            'url': f'{CHARGE_CODE_SYSTEM}:{c.code}',
            'extension': [{'url': UNIT_EXTENSION, 'valueString': c.unit}],
            'status': 'active' if c.active else 'retired',
            'title': c.name,
            'code': {'coding': codings},
            'propertyGroup': [{'priceComponent': [{
                            'type': 'base',
                            'amount': {'value': c.price,
                                'currency': 'CNY'}}]}],
            }
    for f in his_data.FOREIGN_CHARGES:
        admission = his_data.admission(f.admission)
        resources['ChargeItem'][f.his_reference] = {
            'resourceType': 'ChargeItem', 'id': f.his_reference,
            'meta': {'versionId': '1'},
            'identifier': [{
                    'system': 'urn:his:pharmacy-order', 'value': f.key}],
            'status': 'billable',
            'code': {'coding': [{
                        'system': CHARGE_CODE_SYSTEM,
                        'code': f.charge_item}]},
            'subject': {'reference': f'Patient/{admission.patient}'},
            'context': {'reference': f'Encounter/{admission.encounter_id}'},
            'quantity': {'value': f.quantity},
            'enteredDate': '2026-11-01T09:00:00+08:00',
            }
    for name, by_id in resources.items():
        for id_, resource in list(by_id.items()):
            by_id[id_] = _clean(json.loads(_dumps(resource)))
            MODELS[name].model_validate(by_id[id_])
    return resources


class FHIRError(Exception):
    def __init__(self, status, code, diagnostics):
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics

    def outcome(self):
        return {
            'resourceType': 'OperationOutcome',
            'issue': [{
                    'severity': 'error', 'code': self.code,
                    'diagnostics': self.diagnostics}],
            }


def _token_match(identifiers, token):
    "Test a FHIR token search value against a list of identifiers"
    parts = re.split(r'(?<!\\)\|', token, maxsplit=1)
    if len(parts) == 2:
        system, value = parts
    else:
        system, value = None, token
    value = re.sub(r'\\([\\|,$])', r'\1', value)
    for identifier in identifiers or []:
        if system is not None and identifier.get('system', '') != system:
            continue
        if value and identifier.get('value') != value:
            continue
        return True
    return False


def _reference_target(value, resource_type):
    value = value.rstrip('/')
    if '/' in value:
        kind, id_ = value.split('/')[-2:]
        return id_ if kind == resource_type else None
    return value


def _parse_date_param(value):
    prefix = value[:2] if value[:2] in {'ge', 'le', 'gt', 'lt', 'eq'} else 'eq'
    text = value[2:] if value[:2] == prefix else value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FHIRError(400, 'invalid', f"invalid date {value!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return prefix, when


class Hospital:
    "The resources and the operations of the FHIR server"

    def __init__(self, state, page_size):
        self.state = state
        self.page_size = page_size
        self.lock = threading.RLock()
        self.initial = build_resources()
        self.reset()

    def reset(self):
        with self.lock:
            self.resources = copy.deepcopy(self.initial)
            self.sequence = 0
            # ChargeItem ids by (identifier system, value), as a server's
            # index: a conditional create does not scan every charge
            self.charge_index = {}
            for id_, resource in self.resources['ChargeItem'].items():
                self._index_charge(id_, resource)

    def _index_charge(self, id_, resource):
        for identifier in resource.get('identifier') or []:
            self.charge_index.setdefault(
                (identifier.get('system', ''), identifier.get('value')),
                set()).add(id_)

    def _find_charges(self, tokens):
        "The ChargeItems whose identifiers match every token"
        candidates = None
        for token in tokens:
            parts = re.split(r'(?<!\\)\|', token, maxsplit=1)
            if len(parts) != 2 or not parts[1]:
                candidates = None
                break
            system, value = parts[0], re.sub(r'\\([\\|,$])', r'\1', parts[1])
            ids = self.charge_index.get((system, value), set())
            candidates = ids if candidates is None else candidates & ids
        if candidates is None:
            resources = self.resources['ChargeItem'].values()
        else:
            resources = [self.resources['ChargeItem'][i]
                for i in sorted(candidates)]
        return [r for r in resources
            if all(_token_match(r.get('identifier'), t) for t in tokens)]

    def read(self, resource_type, id_):
        with self.lock:
            resource = self.resources[resource_type].get(id_)
            if resource is None:
                raise FHIRError(
                    404, 'not-found', f"{resource_type}/{id_} is not known")
            return copy.deepcopy(resource)

    # Search

    def search(self, resource_type, query, base):
        params = parse_qs(query, keep_blank_values=True)
        count = min(int(params.pop('_count', [self.page_size])[0]),
            self.page_size)
        offset = int(params.pop('_offset', ['0'])[0])
        includes = params.pop('_include', [])
        with self.lock:
            matches = [
                copy.deepcopy(r)
                for r in self.resources[resource_type].values()
                if self._matches(resource_type, r, params)]
        matches.sort(key=lambda r: r['id'])
        page = matches[offset:offset + count]
        entries = [{
                'fullUrl': f'{base}/{resource_type}/{r["id"]}',
                'resource': r, 'search': {'mode': 'match'}}
            for r in page]
        included = {}
        for include in includes:
            source, _, element = include.partition(':')
            if source != resource_type or element not in {
                    'subject', 'encounter'}:
                raise FHIRError(
                    400, 'not-supported', f"_include {include} not supported")
            target = 'Patient' if element == 'subject' else 'Encounter'
            for r in page:
                ref = (r.get(element) or {}).get('reference', '')
                id_ = _reference_target(ref, target)
                if id_ and id_ in self.resources[target]:
                    included[(target, id_)] = self.read(target, id_)
        entries += [{
                'fullUrl': f'{base}/{t}/{i}', 'resource': r,
                'search': {'mode': 'include'}}
            for (t, i), r in sorted(included.items())]
        self_params = [(k, v) for k, vs in params.items() for v in vs]
        self_params += [('_include', i) for i in includes]
        links = [{
                'relation': 'self',
                'url': f'{base}/{resource_type}?' + urlencode(
                    self_params + [('_count', count), ('_offset', offset)]),
                }]
        if offset + count < len(matches):
            links.append({
                    'relation': 'next',
                    'url': f'{base}/{resource_type}?' + urlencode(
                        self_params + [
                            ('_count', count),
                            ('_offset', offset + count)]),
                    })
        return {
            'resourceType': 'Bundle', 'type': 'searchset',
            'total': len(matches), 'link': links, 'entry': entries,
            }

    def _matches(self, resource_type, resource, params):
        for name, values in params.items():
            for value in values:
                if not self._match(resource_type, resource, name, value):
                    return False
        return True

    def _match(self, resource_type, resource, name, value):
        supported = {
            'Encounter': {'identifier', 'class'},
            'Procedure': {'identifier', 'encounter'},
            'ChargeItem': {'identifier', 'context', 'entered-date'},
            'ChargeItemDefinition': {'status'},
            'Patient': {'identifier'},
            }
        if name not in supported.get(resource_type, set()):
            raise FHIRError(
                400, 'not-supported',
                f"search parameter {name} is not supported on "
                f"{resource_type}")
        if name == 'identifier':
            return _token_match(resource.get('identifier'), value)
        if name == 'class':
            klass = resource.get('class', {})
            return _token_match(
                [{'system': klass.get('system'), 'value': klass.get('code')}],
                value)
        if name in {'encounter', 'context'}:
            id_ = _reference_target(value, 'Encounter')
            ref = (resource.get(name) or {}).get('reference', '')
            return bool(id_) and _reference_target(ref, 'Encounter') == id_
        if name == 'entered-date':
            prefix, when = _parse_date_param(value)
            entered = resource.get('enteredDate')
            if not entered:
                return False
            entered = dt.datetime.fromisoformat(entered)
            return {
                'ge': entered >= when, 'gt': entered > when,
                'le': entered <= when, 'lt': entered < when,
                'eq': entered == when}[prefix]
        if name == 'status':
            return resource.get('status') == value
        return False

    # Writes

    @staticmethod
    def _validate(data):
        if not isinstance(data, dict) or data.get(
                'resourceType') != 'ChargeItem':
            raise FHIRError(400, 'invalid', "a ChargeItem is expected")
        try:
            return ChargeItem.model_validate(data)
        except ValidationError as exception:
            raise FHIRError(400, 'invalid', "invalid ChargeItem: " + str(
                    exception).splitlines()[0] + ' ' + ' '.join(
                    s.strip() for s in str(exception).splitlines()[1:3]))

    def _check_business(self, item):
        codes = [c.code for c in item.code.coding or []
            if c.system != INSURANCE_SYSTEM]
        if not codes:
            raise FHIRError(422, 'business-rule', "the charge has no code")
        definition = self.resources['ChargeItemDefinition'].get(codes[0])
        if definition is None or definition['status'] != 'active':
            raise FHIRError(
                422, 'business-rule',
                f"charge item {codes[0]} is unknown or inactive")
        patient = _reference_target(item.subject.reference or '', 'Patient')
        if patient not in self.resources['Patient']:
            raise FHIRError(422, 'business-rule', "unknown patient")
        encounter_id = _reference_target(
            (item.context.reference or '') if item.context else '',
            'Encounter')
        encounter = self.resources['Encounter'].get(encounter_id)
        if (encounter is None
                or encounter['class']['code'] != 'IMP'
                or encounter['subject']['reference'] != f'Patient/{patient}'):
            raise FHIRError(
                422, 'business-rule',
                "the charge is not on an inpatient admission of the patient")
        if item.quantity is None or not item.quantity.value > 0:
            raise FHIRError(
                422, 'business-rule', "the quantity must be positive")

    @staticmethod
    def _key(item):
        for identifier in item.identifier or []:
            if identifier.system == his_data.HRP_KEY_SYSTEM:
                return identifier.value
        return None

    def create_charge(self, data, if_none_exist):
        "Return (status, resource)"
        item = self._validate(data)
        with self.lock:
            if if_none_exist:
                query = parse_qs(if_none_exist)
                if set(query) != {'identifier'}:
                    raise FHIRError(
                        400, 'not-supported',
                        "If-None-Exist supports identifier only")
                found = self._find_charges(query['identifier'])
                if len(found) > 1:
                    raise FHIRError(
                        412, 'duplicate', "several ChargeItems match")
                if found:
                    return 200, copy.deepcopy(found[0])
            self._check_business(item)
            self.sequence += 1
            id_ = f'CI{self.sequence:05d}'
            resource = json.loads(item.json())
            resource['id'] = id_
            resource['meta'] = {
                'versionId': '1',
                'lastUpdated': dt.datetime.now(dt.timezone.utc).isoformat(),
                }
            self.resources['ChargeItem'][id_] = resource
            self._index_charge(id_, resource)
            self.state.record(
                'charge', self._key(item), id_,
                quantity=str(item.quantity.value))
            return 201, copy.deepcopy(resource)

    def update_charge(self, id_, data, if_match):
        item = self._validate(data)
        with self.lock:
            current = self.resources['ChargeItem'].get(id_)
            if current is None:
                raise FHIRError(404, 'not-found', f"ChargeItem/{id_}")
            if item.id != id_:
                raise FHIRError(400, 'invalid', "the id does not match")
            version = current['meta']['versionId']
            if if_match and if_match.strip('W/"') != version:
                raise FHIRError(412, 'conflict', "version conflict")
            if current['status'] == 'entered-in-error' and (
                    item.status != 'entered-in-error'):
                raise FHIRError(
                    422, 'business-rule', "a cancelled charge stays so")
            resource = json.loads(item.json())
            resource['meta'] = {
                'versionId': str(int(version) + 1),
                'lastUpdated': dt.datetime.now(dt.timezone.utc).isoformat(),
                }
            self.resources['ChargeItem'][id_] = resource
            self._index_charge(id_, resource)
            if (item.status == 'entered-in-error'
                    and current['status'] != 'entered-in-error'):
                self.state.record('cancel', self._key(item), id_)
            return copy.deepcopy(resource)


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body are written separately: without this, Nagle and
    # delayed ACKs add 40 ms to each answer
    disable_nagle_algorithm = True
    server_version = 'HRPTestFHIR/1'

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    @property
    def hospital(self):
        return self.server.hospital

    def _send(self, status, data=None, headers=None, raw=None,
            content_type='application/fhir+json; charset=utf-8'):
        body = raw if raw is not None else (
            _dumps(data).encode('utf-8') if data is not None else b'')
        try:
            self.send_response(status)
            if body:
                self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _authorised(self):
        required = self.hospital.state.auth
        if not required:
            return True
        header = self.headers.get('Authorization', '')
        if 'bearer' in required:
            return header == f'Bearer {required["bearer"]}'
        expected = base64.b64encode(required['basic'].encode()).decode()
        return header == f'Basic {expected}'

    def _handle(self, method):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        url = urlsplit(self.path)
        path = url.path
        if not path.startswith(BASE_PATH + '/'):
            return self._send(404, FHIRError(
                    404, 'not-found', 'not a FHIR path').outcome())
        parts = path[len(BASE_PATH) + 1:].strip('/').split('/')
        resource_type = parts[0]
        fault = self.hospital.state.take_fault(f'{method} {resource_type}')
        if fault and fault['mode'] == 'drop':
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault and fault['mode'] == 'error':
            return self._send(500, FHIRError(
                    500, 'exception', 'injected server error').outcome())
        if fault and fault['mode'] == 'reject':
            return self._send(422, FHIRError(
                    422, 'business-rule', 'injected rejection').outcome())
        if fault and fault['mode'] == 'garbage':
            return self._send(
                200, raw=b'<html><body>502 Bad Gateway</body></html>')
        if fault and fault['mode'] == 'invalid':
            return self._send(200, {
                    'resourceType': 'Bundle' if method == 'GET'
                    else resource_type,
                    'type': 'searchset',
                    'entry': [{'resource': {
                                'resourceType': 'Encounter',
                                'status': 'in-progress',
                                'period': {'start': 'yesterday'}}}],
                    'status': 'billable'})
        if not self._authorised():
            return self._send(401, FHIRError(
                    401, 'login', 'authentication required').outcome(),
                headers={'WWW-Authenticate': 'Basic realm="fhir"'})
        base = f'http://{self.headers.get("Host")}{BASE_PATH}'
        try:
            status, data, headers = self._dispatch(
                method, resource_type, parts[1:], url.query, body, base)
        except FHIRError as error:
            status, data, headers = error.status, error.outcome(), {}
        if fault and fault['mode'] == 'delay':
            time.sleep(fault['delay'])
        self._send(status, data, headers)

    def _dispatch(self, method, resource_type, rest, query, body, base):
        if resource_type not in MODELS:
            raise FHIRError(
                404, 'not-supported', f"{resource_type} is not served")
        if method == 'GET' and not rest:
            return 200, self.hospital.search(resource_type, query, base), {}
        if method == 'GET':
            resource = self.hospital.read(resource_type, rest[0])
            return 200, resource, self._version_headers(resource, base)
        if resource_type != 'ChargeItem':
            raise FHIRError(405, 'not-supported', "read-only resource")
        try:
            data = json.loads(body)
        except ValueError:
            raise FHIRError(400, 'invalid', "the body is not JSON")
        if method == 'POST' and not rest:
            status, resource = self.hospital.create_charge(
                data, self.headers.get('If-None-Exist'))
            return status, resource, self._version_headers(resource, base)
        if method == 'PUT' and len(rest) == 1:
            resource = self.hospital.update_charge(
                rest[0], data, self.headers.get('If-Match'))
            return 200, resource, self._version_headers(resource, base)
        raise FHIRError(405, 'not-supported', f"{method} is not supported")

    @staticmethod
    def _version_headers(resource, base):
        version = resource.get('meta', {}).get('versionId')
        if not version:
            return {}
        return {
            'ETag': f'W/"{version}"',
            'Location': f'{base}/{resource["resourceType"]}/'
            f'{resource["id"]}/_history/{version}',
            }

    def do_GET(self):
        self._handle('GET')

    def do_POST(self):
        self._handle('POST')

    def do_PUT(self):
        self._handle('PUT')

    def do_DELETE(self):
        self._handle('DELETE')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--control-port', type=int, default=0)
    parser.add_argument('--page-size', type=int, default=50)
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)

    state = his_data.PeerState()
    hospital = Hospital(state, args.page_size)
    state._on_reset = hospital.reset
    server = ThreadingHTTPServer(('127.0.0.1', args.port), Handler)
    server.daemon_threads = True
    server.hospital = hospital
    server.verbose = args.verbose
    control = his_data.start_control_server(state, args.control_port)

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({
                'url': f'http://127.0.0.1:{server.server_address[1]}'
                f'{BASE_PATH}',
                'control': f'http://127.0.0.1:{control.server_address[1]}',
                }), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        control.server_close()


if __name__ == '__main__':
    sys.exit(main())
