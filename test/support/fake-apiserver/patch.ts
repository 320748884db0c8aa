// The three patch formats of PATCH requests: JSON merge patch (RFC 7386), JSON patch
// (RFC 6902) and a subset of strategic merge patch, the one kubectl apply and kubectl patch
// send for the types this fake serves.

import type { Obj } from './resources.ts';

export class PatchError extends Error {
  readonly code: number;
  constructor(message: string, code = 400) {
    super(message);
    this.code = code;
  }
}

function isMap(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386: maps merge, null removes, everything else (lists too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return structuredClone(patch);
  const out: Obj = isMap(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// --- JSON patch ------------------------------------------------------------------------------

function unescape(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`invalid JSON pointer "${p}"`);
  return p.slice(1).split('/').map(unescape);
}

function parentOf(doc: unknown, path: string[], op: string): { parent: any; key: string } {
  let cur: any = doc;
  for (const seg of path.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(seg)] : isMap(cur) ? cur[seg] : undefined;
    if (cur === undefined) throw new PatchError(`${op} operation does not apply: doc is missing path: "/${path.join('/')}": missing value`, 422);
  }
  return { parent: cur, key: path[path.length - 1]! };
}

function getPath(doc: unknown, p: string): unknown {
  let cur: any = doc;
  for (const seg of parsePointer(p)) {
    cur = Array.isArray(cur) ? cur[Number(seg)] : isMap(cur) ? cur[seg] : undefined;
    if (cur === undefined) throw new PatchError(`doc is missing path: "${p}": missing value`, 422);
  }
  return cur;
}

/** RFC 6902 on a copy of doc. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let out: any = structuredClone(doc);
  for (const op of ops as Obj[]) {
    const path = parsePointer(String(op.path ?? ''));
    const remove = () => {
      const { parent, key } = parentOf(out, path, 'remove');
      if (Array.isArray(parent)) {
        const i = Number(key);
        if (!(i >= 0 && i < parent.length)) throw new PatchError(`remove operation does not apply: doc is missing path: "${op.path}": missing value`, 422);
        return parent.splice(i, 1)[0];
      }
      if (!(key in parent)) throw new PatchError(`remove operation does not apply: doc is missing path: "${op.path}": missing value`, 422);
      const v = parent[key];
      delete parent[key];
      return v;
    };
    const add = (value: unknown) => {
      if (path.length === 0) {
        out = value;
        return;
      }
      const { parent, key } = parentOf(out, path, 'add');
      if (Array.isArray(parent)) {
        const i = key === '-' ? parent.length : Number(key);
        if (!(i >= 0 && i <= parent.length)) throw new PatchError(`add operation does not apply: doc is missing path: "${op.path}": missing value`, 422);
        parent.splice(i, 0, value);
      } else parent[key] = value;
    };
    switch (op.op) {
      case 'add':
        add(structuredClone(op.value));
        break;
      case 'remove':
        remove();
        break;
      case 'replace':
        getPath(out, String(op.path));
        remove();
        add(structuredClone(op.value));
        break;
      case 'move': {
        const from = String(op.from);
        const v = getPath(out, from);
        jsonPatchInPlaceRemove(out, from);
        add(v);
        break;
      }
      case 'copy':
        add(structuredClone(getPath(out, String(op.from))));
        break;
      case 'test':
        if (JSON.stringify(getPath(out, String(op.path))) !== JSON.stringify(op.value)) throw new PatchError(`testing value ${op.path} failed: test failed`, 422);
        break;
      default:
        throw new PatchError(`Unexpected kind: ${String(op.op)}`);
    }
  }
  return out;
}

function jsonPatchInPlaceRemove(doc: unknown, p: string): void {
  const path = parsePointer(p);
  const { parent, key } = parentOf(doc, path, 'move');
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete parent[key];
}

// --- strategic merge patch -------------------------------------------------------------------

/**
 * List fields that merge instead of being replaced, by path from the object root ('*' for
 * a list element), with their merge key; '' merges a list of scalars as a set. Taken from
 * the patchStrategy/patchMergeKey tags of k8s.io/api for the kinds served here.
 */
const MERGE_LISTS: Record<string, string> = {
  'metadata.finalizers': '',
  'metadata.ownerReferences': 'uid',
  'spec.ports': 'port', // ServiceSpec.Ports: patchMergeKey port
  'status.conditions': 'type', // Node and Service conditions
  'status.addresses': 'type', // NodeAddress (famously lossy, as upstream)
};

function smp(target: unknown, patch: unknown, path: string): unknown {
  if (!isMap(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Obj = isMap(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const drop = new Set((v as unknown[]).map((x) => JSON.stringify(x)));
      if (Array.isArray(out[field])) out[field] = (out[field] as unknown[]).filter((x) => !drop.has(JSON.stringify(x)));
      continue;
    }
    const sub = path ? `${path}.${k}` : k;
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v) && sub in MERGE_LISTS) {
      out[k] = mergeList(out[k], v, MERGE_LISTS[sub]!, sub);
      const order = patch[`$setElementOrder/${k}`];
      if (Array.isArray(order)) out[k] = reorder(out[k] as unknown[], order, MERGE_LISTS[sub]!);
    } else if (Array.isArray(v)) {
      out[k] = stripDirectives(v);
    } else if (isMap(v)) {
      const merged = smp(out[k], v, sub);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else out[k] = v;
  }
  if (isMap(patch.$retainKeys) || Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys as string[]);
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

/** $setElementOrder/<list>: the listed elements in that order, the others after them. */
function reorder(list: unknown[], order: unknown[], key: string): unknown[] {
  const id = (x: unknown) => JSON.stringify(key && isMap(x) ? x[key] : x);
  const rank = new Map(order.map((o, i) => [id(o), i]));
  const at = (x: unknown) => rank.get(id(x)) ?? order.length;
  return list.map((x, i) => [x, i] as const).sort((a, b) => at(a[0]) - at(b[0]) || a[1] - b[1]).map(([x]) => x);
}

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isMap(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

function mergeList(target: unknown, patch: unknown[], key: string, path: string): unknown[] {
  const cur = Array.isArray(target) ? [...target] : [];
  if (key === '') {
    for (const x of patch) if (!cur.some((y) => JSON.stringify(y) === JSON.stringify(x))) cur.push(x);
    return cur;
  }
  // A {$patch: replace} element replaces the whole list.
  if (patch.some((e) => isMap(e) && e.$patch === 'replace')) return patch.filter((e) => !(isMap(e) && e.$patch)).map(stripDirectives);
  for (const e of patch) {
    if (!isMap(e)) continue;
    const i = cur.findIndex((c) => isMap(c) && c[key] === e[key]);
    if (e.$patch === 'delete') {
      if (i >= 0) cur.splice(i, 1);
      continue;
    }
    if (i >= 0) cur[i] = smp(cur[i], e, `${path}.*`);
    else cur.push(stripDirectives(e));
  }
  return cur;
}

/** Strategic merge patch of the subset described at MERGE_LISTS, plus the $patch directives. */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) throw new PatchError('json: cannot unmarshal array into Go value of type map[string]interface {}');
  return smp(target, patch, '');
}
