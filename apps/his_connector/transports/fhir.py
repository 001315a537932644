# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The HIS over FHIR R4 REST (JSON).

Resources are read and written with the models of ``fhir.resources`` 8,
whose ``R4B`` subpackage is the FHIR 4.3 edition of R4: the elements used
here (Encounter, Patient, Procedure, ChargeItem, ChargeItemDefinition,
Bundle, OperationOutcome) have the same JSON as in FHIR 4.0.1, so the
transport talks to R4 and R4B servers alike (no release of
``fhir.resources`` built on pydantic 2 ships a 4.0.1 subpackage).

- patient: ``GET Encounter?identifier=<number>&class=IMP
  &_include=Encounter:subject`` (the Patient read separately if the server
  ignores ``_include``);
- surgeries: ``GET Procedure?encounter=Encounter/<id>`` or
  ``GET Procedure?identifier=<surgery number>&_include=Procedure:encounter``;
- charge: ``POST ChargeItem`` with ``If-None-Exist:
  identifier=<key system>|<key>`` (a conditional create: a retry answers
  200 with the charge already created, never a second one);
- cancel: ``PUT ChargeItem/<id>`` with status ``entered-in-error``;
- reconciliation: ``GET ChargeItem?identifier=<key system>|``;
- catalogue: ``GET ChargeItemDefinition``.

Errors: timeouts, connection failures, HTTP 408/429/5xx raise
PeerUnavailable; a reply that is not JSON or not a valid resource raises
MalformedReply; 404/410 and an unknown admission or charge raise NotFound
(an unknown surgery number answers an empty list, as his.py says); other
4xx raise PeerRejected with the OperationOutcome's diagnostics."""
import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.chargeitem import ChargeItem as FHIRChargeItem
from fhir.resources.R4B.chargeitemdefinition import ChargeItemDefinition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FHIRPatient
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

from ..his import (
    ChargeAck, ChargeItem, HISTransport, MalformedReply, NotFound, Patient,
    PeerRejected, PeerUnavailable, Surgery)

FHIR_JSON = 'application/fhir+json'
# HL7 v2 table 0203 identifier type of a visit number, as FHIR codes it
VISIT_NUMBER_TYPE = 'VN'
ENTERED_IN_ERROR = 'entered-in-error'
# Bound on the pages of one search, so that a peer looping on its "next"
# link cannot hold a worker forever
MAX_PAGES = 200
PAGE_SIZE = 100


def _utc_naive(value):
    """Return value (date, naive or aware datetime) as a naive UTC datetime,
    the way Tryton stores timestamps"""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _instant(value):
    "Return the FHIR dateTime of a naive UTC or aware datetime"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _cjk(text):
    return any('\u4e00' <= c <= '\u9fff' for c in text)


def join_name(family, given):
    """Render a name: Chinese names family first without a space, others
    given names first"""
    family = (family or '').strip()
    given = ' '.join(g.strip() for g in given or [] if g and g.strip())
    if _cjk(family + given):
        return family + given.replace(' ', '')
    return ' '.join(p for p in (given, family) if p)


def _code_text(concept):
    "Return 'code text' of a CodeableConcept"
    if concept is None:
        return None
    code = display = None
    for coding in concept.coding or []:
        if coding.code:
            code, display = coding.code, coding.display
            break
    text = concept.text or display
    return ' '.join(p for p in (code, text) if p) or None


def _reference_id(reference, resource_type):
    """Return the logical id of a Reference to resource_type, or None.

    Accepts relative (Patient/1), absolute (http://…/Patient/1) and
    versioned (Patient/1/_history/2) references."""
    if reference is None or not reference.reference:
        return None
    parts = reference.reference.split('?')[0].rstrip('/').split('/')
    if '_history' in parts:
        parts = parts[:parts.index('_history')]
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return None


def _outcome_message(data):
    "Return the text of an OperationOutcome, or None"
    try:
        outcome = OperationOutcome.model_validate(data)
    except (ValidationError, ValueError, TypeError):
        return None
    texts = []
    for issue in outcome.issue or []:
        text = issue.diagnostics or (
            issue.details.text if issue.details else None) or issue.code
        if text:
            texts.append(f'{issue.severity}: {text}')
    return '; '.join(texts) or None


class FHIRTransport(HISTransport):
    """HIS transport over FHIR R4 REST.

    config.url is the FHIR base URL (http(s)://host[:port]/path). With a
    username and a password the requests use HTTP Basic authentication;
    with a password alone, the password is sent as a Bearer token."""
    # The identifier system of HRP's idempotency keys on ChargeItem
    key_system = 'urn:hrp:charge-key'
    # The coding system of the medical-insurance code (医保编码) in
    # ChargeItem.code and ChargeItemDefinition.code
    insurance_system = 'urn:hrp:insurance-code'
    # The identifier system of a device's UDI in ChargeItem.productReference
    udi_system = 'urn:hrp:udi'
    # Extensions carrying the lot of a charged item and the unit of a
    # catalogue entry
    lot_extension = 'urn:hrp:fhir:StructureDefinition/charge-lot'
    unit_extension = 'urn:hrp:fhir:StructureDefinition/charge-unit'
    currency = 'CNY'

    def __init__(self, config, key_system=None, currency=None):
        super().__init__(config)
        if key_system:
            self.key_system = key_system
        if currency:
            self.currency = currency
        parts = urlsplit(config.url)
        if parts.scheme not in {'http', 'https'} or not parts.hostname:
            raise ValueError("The FHIR base URL must be an http(s) URL")
        self.base = config.url.rstrip('/') + '/'
        self._origin = (parts.scheme, parts.netloc)
        self.session = requests.Session()
        self.session.headers.update({
                'Accept': FHIR_JSON,
                'User-Agent': 'HRP-his-connector',
                })
        if config.password and config.username:
            self.session.auth = (config.username, config.password)
        elif config.password:
            self.session.headers['Authorization'] = (
                f'Bearer {config.password}')

    def close(self):
        self.session.close()

    # HTTP

    def _request(self, method, path, params=None, body=None, headers=None):
        """Send a request and return (status, headers, JSON or None).

        Map transport failures and error statuses to the HIS errors."""
        url = path if '://' in path else urljoin(self.base, path)
        what = f'{method} {urlsplit(url).path}'
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = body.encode('utf-8')
            all_headers['Content-Type'] = f'{FHIR_JSON}; charset=utf-8'
        try:
            response = self.session.request(
                method, url, params=params, data=data, headers=all_headers,
                timeout=(self.config.connect_timeout,
                    self.config.read_timeout),
                allow_redirects=False)
        except requests.Timeout as exception:
            raise PeerUnavailable(
                f"FHIR peer did not answer {what} in time") from exception
        except requests.RequestException as exception:
            raise PeerUnavailable(
                f"FHIR peer unreachable for {what}: "
                f"{type(exception).__name__}") from exception
        status = response.status_code
        payload = self._json(response, what)
        if status >= 500 or status in {408, 429}:
            raise PeerUnavailable(
                f"FHIR peer answered {what} with HTTP {status}")
        if status in {404, 410}:
            raise NotFound(
                _outcome_message(payload)
                or f"FHIR peer has no {urlsplit(url).path}")
        if 400 <= status < 500:
            error = PeerRejected(
                f"FHIR peer refused {what} (HTTP {status}): "
                + (_outcome_message(payload) or 'no OperationOutcome'))
            error.http_status = status
            raise error
        if not 200 <= status < 300:
            raise MalformedReply(
                f"FHIR peer answered {what} with HTTP {status}")
        return status, response.headers, payload

    @staticmethod
    def _json(response, what):
        if not response.content:
            return None
        content_type = response.headers.get('Content-Type', '')
        if 'json' not in content_type:
            if response.status_code >= 400:
                return None
            raise MalformedReply(
                f"FHIR peer answered {what} with {content_type or 'no type'}"
                " instead of JSON")
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exception:
            if response.status_code >= 400:
                return None
            raise MalformedReply(
                f"FHIR peer answered {what} with invalid JSON") from exception

    @staticmethod
    def _parse(data, model):
        name = model.__name__
        if not isinstance(data, dict):
            raise MalformedReply(f"FHIR peer sent no {name} resource")
        try:
            return model.model_validate(data)
        except (ValidationError, ValueError, TypeError) as exception:
            first = str(exception).splitlines()[:3]
            raise MalformedReply(
                f"FHIR peer sent an invalid {name}: "
                + ' '.join(s.strip() for s in first)) from exception

    def _search(self, resource_type, params):
        """Return the resources of a search, following the next links;
        a list of (resource, raw JSON)"""
        params = list(params) + [('_count', str(PAGE_SIZE))]
        url = resource_type
        results = []
        for _ in range(MAX_PAGES):
            _, _, data = self._request('GET', url, params=params)
            bundle = self._parse(data, Bundle)
            if bundle.type != 'searchset':
                raise MalformedReply(
                    f"FHIR peer answered a {resource_type} search with a "
                    f"{bundle.type} bundle")
            for entry, raw in zip(bundle.entry or [], data.get('entry', [])):
                if entry.resource is not None:
                    results.append((entry.resource, raw.get('resource')))
            next_url = next(
                (link.url for link in bundle.link or []
                    if link.relation == 'next'), None)
            if not next_url:
                return results
            next_url = urljoin(self.base, next_url)
            parts = urlsplit(next_url)
            if (parts.scheme, parts.netloc) != self._origin:
                raise MalformedReply(
                    "FHIR peer sent a next link to another server")
            url, params = next_url, None
        raise MalformedReply(
            f"FHIR peer sent more than {MAX_PAGES} pages for "
            f"{resource_type}")

    # Admissions and patients

    @staticmethod
    def _has_identifier(resource, value, system=None):
        return any(
            i.value == value and (system is None or i.system == system)
            for i in resource.identifier or [])

    def _admission(self, inpatient_number):
        "Return (Encounter, Patient or None) of the inpatient admission"
        if not inpatient_number:
            raise NotFound("No inpatient number given")
        found = self._search('Encounter', [
                ('identifier', inpatient_number),
                ('class', 'IMP'),
                ('_include', 'Encounter:subject'),
                ])
        encounters = [
            r for r, _ in found
            if isinstance(r, Encounter)
            and r.class_fhir is not None and r.class_fhir.code == 'IMP'
            and self._has_identifier(r, inpatient_number)]
        if not encounters:
            raise NotFound(
                f"FHIR peer has no inpatient admission {inpatient_number}")
        if len(encounters) > 1:
            raise PeerRejected(
                f"FHIR peer has {len(encounters)} inpatient admissions "
                f"numbered {inpatient_number}")
        encounter, = encounters
        patient_id = _reference_id(encounter.subject, 'Patient')
        if not patient_id:
            raise MalformedReply(
                f"FHIR admission {inpatient_number} has no Patient subject")
        patient = next(
            (r for r, _ in found
                if isinstance(r, FHIRPatient) and r.id == patient_id), None)
        return encounter, patient_id, patient

    def find_patient(self, inpatient_number):
        encounter, patient_id, patient = self._admission(inpatient_number)
        if patient is None:
            _, _, data = self._request('GET', f'Patient/{patient_id}')
            patient = self._parse(data, FHIRPatient)
        name = ''
        names = patient.name or []
        official = next((n for n in names if n.use == 'official'), None)
        human = official or (names[0] if names else None)
        if human is not None:
            name = human.text or join_name(human.family, human.given)
        sex = patient.gender if patient.gender in {
            'male', 'female', 'other'} else None
        ward = None
        for location in encounter.location or []:
            if location.location is not None:
                ward = (location.location.display
                    or _reference_id(location.location, 'Location'))
                if ward:
                    break
        department = None
        provider = encounter.serviceProvider
        if provider is not None:
            department = (
                (provider.identifier.value if provider.identifier else None)
                or provider.display
                or _reference_id(provider, 'Organization'))
        period = encounter.period
        return Patient(
            inpatient_number=inpatient_number,
            patient_id=patient_id,
            name=name,
            sex=sex,
            birth_date=patient.birthDate,
            ward=ward,
            department=department,
            admission_date=_utc_naive(period.start if period else None),
            discharge_date=_utc_naive(period.end if period else None),
            )

    # Surgeries

    @staticmethod
    def _inpatient_number_of(encounter):
        identifiers = encounter.identifier or []
        for identifier in identifiers:
            codings = identifier.type.coding if identifier.type else None
            if any(c.code == VISIT_NUMBER_TYPE for c in codings or []):
                return identifier.value
        return identifiers[0].value if identifiers else None

    def find_surgeries(self, inpatient_number=None, surgery_number=None):
        if not inpatient_number and not surgery_number:
            raise ValueError("inpatient_number or surgery_number is required")
        encounter_numbers = {}
        if inpatient_number:
            encounter, _, _ = self._admission(inpatient_number)
            encounter_numbers[encounter.id] = inpatient_number
            params = [('encounter', f'Encounter/{encounter.id}')]
            if surgery_number:
                params.append(('identifier', surgery_number))
        else:
            params = [
                ('identifier', surgery_number),
                ('_include', 'Procedure:encounter'),
                ]
        found = self._search('Procedure', params)
        for resource, _ in found:
            if isinstance(resource, Encounter) and resource.id:
                encounter_numbers.setdefault(
                    resource.id, self._inpatient_number_of(resource))
        surgeries = []
        for resource, _ in found:
            if not isinstance(resource, Procedure):
                continue
            identifiers = [i.value for i in resource.identifier or []
                if i.value]
            if surgery_number:
                if surgery_number not in identifiers:
                    continue
                number = surgery_number
            elif identifiers:
                number = identifiers[0]
            else:
                # Not a surgery HRP can refer to
                continue
            encounter_id = _reference_id(resource.encounter, 'Encounter')
            if inpatient_number and encounter_id not in encounter_numbers:
                continue
            performed = resource.performedDateTime
            if performed is None and resource.performedPeriod is not None:
                performed = resource.performedPeriod.start
            surgeon = None
            for performer in resource.performer or []:
                if performer.actor is not None:
                    surgeon = (performer.actor.display
                        or _reference_id(performer.actor, 'Practitioner'))
                    if surgeon:
                        break
            theatre = None
            if resource.location is not None:
                theatre = (resource.location.display
                    or _reference_id(resource.location, 'Location'))
            surgeries.append(Surgery(
                    surgery_number=number,
                    inpatient_number=encounter_numbers.get(encounter_id),
                    patient_id=_reference_id(resource.subject, 'Patient')
                    or '',
                    procedure=_code_text(resource.code),
                    date=_utc_naive(performed),
                    theatre=theatre,
                    surgeon=surgeon,
                    state=resource.status,
                    ))
        surgeries.sort(key=lambda s: (s.date or dt.datetime.min,
                s.surgery_number))
        return surgeries

    # Charges

    def _key_token(self, key=''):
        "The token search value of a key (FHIR escapes \\ | , $ with \\)"
        for char in '\\|,$':
            key = key.replace(char, '\\' + char)
        return f'{self.key_system}|{key}'

    def _key_of(self, item):
        for identifier in item.identifier or []:
            if identifier.system == self.key_system and identifier.value:
                return identifier.value
        return None

    def _ack(self, item, key=None, duplicate=False):
        if not item.id:
            raise MalformedReply("FHIR peer sent a ChargeItem without id")
        return ChargeAck(
            key=key or self._key_of(item),
            his_reference=item.id,
            duplicate=duplicate,
            cancelled=item.status == ENTERED_IN_ERROR)

    def _charge_resource(self, charge, encounter, patient_id):
        codings = [{'code': charge.charge_item}]
        if charge.description:
            codings[0]['display'] = charge.description
        if charge.insurance_code:
            codings.append({
                    'system': self.insurance_system,
                    'code': charge.insurance_code,
                    })
        quantity = Decimal(charge.quantity)
        data = {
            'resourceType': 'ChargeItem',
            'identifier': [{'system': self.key_system, 'value': charge.key}],
            'status': 'billable',
            'code': {'coding': codings},
            'subject': {'reference': f'Patient/{patient_id}'},
            'context': {'reference': f'Encounter/{encounter.id}'},
            'quantity': {'value': quantity},
            'priceOverride': {
                'value': quantity * Decimal(charge.unit_price),
                'currency': self.currency,
                },
            'overrideReason': 'HRP unit price '
            f'{Decimal(charge.unit_price)} {self.currency}',
            'enteredDate': _instant(
                dt.datetime.now(dt.timezone.utc).replace(microsecond=0)),
            }
        if charge.date:
            data['occurrenceDateTime'] = _instant(charge.date)
        if charge.department:
            data['requestingOrganization'] = {
                'identifier': {'value': charge.department},
                }
        if charge.surgery_number:
            data['service'] = [{
                    'type': 'Procedure',
                    'identifier': {'value': charge.surgery_number},
                    }]
        if charge.udi:
            data['productReference'] = {
                'type': 'Device',
                'identifier': {'system': self.udi_system,
                    'value': charge.udi},
                }
        if charge.lot:
            data['extension'] = [{
                    'url': self.lot_extension,
                    'valueString': charge.lot,
                    }]
        if charge.description:
            data['note'] = [{'text': charge.description}]
        try:
            return FHIRChargeItem.model_validate(data)
        except ValidationError as exception:
            raise ValueError(
                f"Charge {charge.key} makes an invalid ChargeItem: "
                f"{exception}") from exception

    def post_charge(self, charge):
        if not charge.key:
            raise ValueError("A charge needs an idempotency key")
        encounter, patient_id, _ = self._admission(charge.inpatient_number)
        item = self._charge_resource(charge, encounter, patient_id)
        status, headers, data = self._request(
            'POST', 'ChargeItem', body=item.json(), headers={
                'If-None-Exist': urlencode(
                    {'identifier': self._key_token(charge.key)}),
                'Prefer': 'return=representation',
                })
        duplicate = status == 200
        if data is None:
            # The server did not return the resource: read it back
            location = headers.get('Location') or headers.get(
                'Content-Location')
            if location:
                _, _, data = self._request('GET', location.split(
                        '/_history/')[0])
            else:
                return self._by_key(charge.key, duplicate)
        created = self._parse(data, FHIRChargeItem)
        if self._key_of(created) != charge.key:
            raise MalformedReply(
                "FHIR peer answered a ChargeItem that does not carry the "
                "posted key")
        return self._ack(created, charge.key, duplicate)

    def _find_by_key(self, key):
        found = [
            (r, raw) for r, raw in self._search(
                'ChargeItem', [('identifier', self._key_token(key))])
            if isinstance(r, FHIRChargeItem) and self._key_of(r) == key]
        if not found:
            raise NotFound(f"FHIR peer has no charge {key}")
        if len(found) > 1:
            raise PeerRejected(
                f"FHIR peer has {len(found)} charges with key {key}")
        return found[0]

    def _by_key(self, key, duplicate):
        item, _ = self._find_by_key(key)
        return self._ack(item, key, duplicate)

    def cancel_charge(self, key):
        for _ in range(3):
            item, _ = self._find_by_key(key)
            if item.status == ENTERED_IN_ERROR:
                return self._ack(item, key, duplicate=True)
            # Re-serialised through the model: numbers stay JSON numbers
            update = json.loads(item.json())
            update['status'] = ENTERED_IN_ERROR
            headers = {}
            version = item.meta.versionId if item.meta else None
            if version:
                headers['If-Match'] = f'W/"{version}"'
            try:
                _, _, data = self._request(
                    'PUT', f'ChargeItem/{item.id}',
                    body=json.dumps(update, ensure_ascii=False),
                    headers=headers)
            except PeerRejected as exception:
                # A concurrent update: read again and retry
                if getattr(exception, 'http_status', None) in {409, 412}:
                    continue
                raise
            if data is None:
                item, _ = self._find_by_key(key)
            else:
                item = self._parse(data, FHIRChargeItem)
            if item.status != ENTERED_IN_ERROR:
                raise MalformedReply(
                    f"FHIR peer did not cancel the charge {key}")
            return self._ack(item, key)
        raise PeerUnavailable(
            f"FHIR peer kept changing the charge {key} while cancelling")

    def list_charges(self, inpatient_number=None, since=None):
        params = [('identifier', self._key_token())]
        if inpatient_number:
            encounter, _, _ = self._admission(inpatient_number)
            params.append(('context', f'Encounter/{encounter.id}'))
        if since:
            params.append(('entered-date', 'ge' + _instant(since)))
        acks = []
        for resource, _ in self._search('ChargeItem', params):
            if not isinstance(resource, FHIRChargeItem):
                continue
            key = self._key_of(resource)
            if key:
                acks.append(self._ack(resource, key))
        return acks

    # Catalogue

    def list_charge_items(self):
        items = []
        for resource, _ in self._search('ChargeItemDefinition', []):
            if not isinstance(resource, ChargeItemDefinition):
                continue
            code = insurance = None
            name = resource.title
            codings = resource.code.coding if resource.code else []
            for coding in codings or []:
                if coding.system == self.insurance_system:
                    insurance = insurance or coding.code
                elif coding.code and code is None:
                    code = coding.code
                    name = name or coding.display
            if not code:
                continue
            name = name or (resource.code.text if resource.code else None)
            price = None
            for group in resource.propertyGroup or []:
                for component in group.priceComponent or []:
                    if component.type == 'base' and component.amount:
                        price = component.amount.value
                        break
                if price is not None:
                    break
            unit = next(
                (e.valueString for e in resource.extension or []
                    if e.url == self.unit_extension), None)
            try:
                price = Decimal(str(price)) if price is not None else None
            except InvalidOperation as exception:
                raise MalformedReply(
                    f"FHIR peer sent an invalid price for {code}"
                    ) from exception
            items.append(ChargeItem(
                    code=code,
                    name=name or code,
                    unit=unit,
                    price=price,
                    insurance_code=insurance,
                    active=resource.status == 'active'))
        return items
