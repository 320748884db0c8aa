// metav1.Status failures as the real API server writes them, and the error that carries one.

import type { Obj, ResourceType } from './resources.ts';

export class ApiError extends Error {
  readonly status: Obj;
  constructor(status: Obj) {
    super(String(status.message));
    this.status = status;
  }
  get code(): number {
    return this.status.code as number;
  }
}

function failure(code: number, reason: string, message: string, details?: Obj): ApiError {
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  });
}

/** `services "x"` or `leases.coordination.k8s.io "x"`. */
function qualified(r: ResourceType, name: string): string {
  return `${r.group ? `${r.plural}.${r.group}` : r.plural} "${name}"`;
}

function details(r: ResourceType, name: string): Obj {
  return { name, ...(r.group ? { group: r.group } : {}), kind: r.plural };
}

export function notFound(r: ResourceType, name: string): ApiError {
  return failure(404, 'NotFound', `${qualified(r, name)} not found`, details(r, name));
}

export function namespaceNotFound(ns: string): ApiError {
  return failure(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
}

export function alreadyExists(r: ResourceType, name: string): ApiError {
  return failure(409, 'AlreadyExists', `${qualified(r, name)} already exists`, details(r, name));
}

export function conflict(r: ResourceType, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError {
  return failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r, name)}: ${why}`, details(r, name));
}

export interface Cause {
  field: string;
  /** FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueForbidden, FieldValueDuplicate */
  reason: string;
  message: string;
}

export function invalidCause(field: string, value: unknown, detail: string): Cause {
  return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${detail}` };
}
export function requiredCause(field: string, detail = ''): Cause {
  return { reason: 'FieldValueRequired', field, message: `Required value${detail ? `: ${detail}` : ''}` };
}
export function notSupportedCause(field: string, value: unknown, supported: string[]): Cause {
  return {
    reason: 'FieldValueNotSupported',
    field,
    message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`,
  };
}

/** 422 `Service "x" is invalid: spec.ports: Required value` (details name the Kind, as upstream). */
export function invalid(r: ResourceType, name: string, causes: Cause[]): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  return failure(422, 'Invalid', `${r.kind} "${name}" is invalid: ${summary}`, {
    name,
    ...(r.group ? { group: r.group } : {}),
    kind: r.kind,
    causes,
  });
}

export function badRequest(message: string): ApiError {
  return failure(400, 'BadRequest', message);
}

/** Body that does not decode as the kind: `Lease in version "v1" cannot be handled as a Lease: …`. */
export function cannotBeHandled(r: ResourceType, why: string): ApiError {
  return badRequest(`${r.kind} in version "${r.version}" cannot be handled as a ${r.kind}: ${why}`);
}

/** What the watch cache answers for a resourceVersion older than its window. */
export function expired(rv: number, oldest: number): ApiError {
  return failure(410, 'Expired', `too old resource version: ${rv} (${oldest})`);
}

export function methodNotAllowed(): ApiError {
  return failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

export function unsupportedMediaType(contentType: string): ApiError {
  return failure(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
    { causes: [{ reason: 'UnexpectedServerResponse', message: contentType }] },
  );
}

export function pathNotFound(): ApiError {
  return failure(404, 'NotFound', 'the server could not find the requested resource', { causes: [{ reason: 'UnexpectedServerResponse', message: '404 page not found' }] });
}

export function success(r: ResourceType, name: string, uid: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { ...details(r, name), uid } };
}
