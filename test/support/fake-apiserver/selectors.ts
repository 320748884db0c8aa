// labelSelector and fieldSelector query parameters, parsed once into predicates.

import type { Obj } from './resources.ts';
import { badRequest } from './status.ts';

export type Predicate = (obj: Obj) => boolean;

function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

/** Kubernetes label selector syntax: k=v, k==v, k!=v, k in (a,b), k notin (a), k, !k. */
export function labelSelector(s: string | null): Predicate {
  if (!s) return () => true;
  const reqs: Predicate[] = [];
  for (const part of splitTopLevel(s)) {
    let m: RegExpMatchArray | null;
    const labels = (o: Obj): Record<string, string> => o.metadata?.labels ?? {};
    if ((m = part.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, k, op, vs] = m;
      const set = new Set(vs!.split(',').map((v) => v.trim()));
      reqs.push(op === 'in' ? (o) => k! in labels(o) && set.has(labels(o)[k!]!) : (o) => !(k! in labels(o)) || !set.has(labels(o)[k!]!));
    } else if ((m = part.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) {
      const [, k, op, v] = m;
      reqs.push(op === '!=' ? (o) => labels(o)[k!] !== v : (o) => labels(o)[k!] === v);
    } else if ((m = part.match(/^!\s*([\w./-]+)$/))) {
      const k = m[1]!;
      reqs.push((o) => !(k in labels(o)));
    } else if ((m = part.match(/^([\w./-]+)$/))) {
      const k = m[1]!;
      reqs.push((o) => k in labels(o));
    } else {
      throw badRequest(`unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`);
    }
  }
  return (o) => reqs.every((r) => r(o));
}

function fieldValue(obj: Obj, path: string): string {
  let cur: any = obj;
  for (const seg of path.split('.')) cur = cur?.[seg];
  if (cur === undefined || cur === null) return '';
  return String(cur);
}

/** Field selectors: f=v, f==v, f!=v over dotted paths (metadata.name, involvedObject.uid, ...). */
export function fieldSelector(s: string | null): Predicate {
  if (!s) return () => true;
  const reqs: Predicate[] = [];
  for (const part of splitTopLevel(s)) {
    const m = part.match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${part}'`);
    const [, f, op, v] = m;
    reqs.push(op === '!=' ? (o) => fieldValue(o, f!) !== v : (o) => fieldValue(o, f!) === v);
  }
  return (o) => reqs.every((r) => r(o));
}
