// The smallest OpenAPI v3 documents kubectl 1.32 needs. kubectl apply (--validate=strict, the
// default) asks /openapi/v3 whether the PATCH of the object's kind accepts the fieldValidation
// query parameter; with no OpenAPI at all it refuses to apply ("failed to download openapi").
// Saying yes makes kubectl rely on server-side validation (this fake accepts unknown fields).
// No strategic-merge-patch content type is listed, so kubectl computes its apply patch from its
// compiled-in types, exactly as it does for built-in kinds when OpenAPI v3 lacks them.

import { groupVersion, RESOURCES, type Obj } from './resources.ts';

const HASH = 'FAKEAPISERVER0000000000000000000000000000000000000000000000000000';

function docPath(gv: string): string {
  return gv === 'v1' ? 'api/v1' : `apis/${gv}`;
}

/** GET /openapi/v3 */
export function openapiRoot(): Obj {
  const paths: Obj = {};
  for (const r of RESOURCES) paths[docPath(groupVersion(r))] = { serverRelativeURL: `/openapi/v3/${docPath(groupVersion(r))}?hash=${HASH}` };
  return { paths };
}

/** GET /openapi/v3/api/v1, /openapi/v3/apis/G/V; undefined when not served. */
export function openapiGroupVersion(path: string): Obj | undefined {
  const rs = RESOURCES.filter((r) => docPath(groupVersion(r)) === path);
  if (rs.length === 0) return undefined;
  const paths: Obj = {};
  const param = (name: string, where: string) => ({ name, in: where, required: where === 'path', schema: { type: 'string', uniqueItems: true } });
  for (const r of rs) {
    const base = `/${docPath(groupVersion(r))}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}/{name}`;
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    const params = [param('name', 'path'), ...(r.namespaced ? [param('namespace', 'path')] : []), param('dryRun', 'query'), param('fieldManager', 'query'), param('fieldValidation', 'query'), param('pretty', 'query')];
    // The parameters sit on the operation: that is where kubectl's verifier looks.
    const op = (verb: string) => ({
      tags: [],
      parameters: params,
      operationId: `${verb}${r.kind}`,
      ...(verb === 'patch' ? { requestBody: { content: { 'application/merge-patch+json': { schema: { type: 'object' } }, 'application/json-patch+json': { schema: { type: 'object' } } }, required: true } } : {}),
      responses: { '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } } },
      'x-kubernetes-action': verb,
      'x-kubernetes-group-version-kind': gvk,
    });
    paths[base] = { get: op('get'), put: op('put'), patch: op('patch'), delete: op('delete') };
    if (r.status) paths[`${base}/status`] = { get: op('get'), put: op('put'), patch: op('patch') };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.4' },
    paths,
    components: { schemas: {} },
  };
}
