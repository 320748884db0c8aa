// The Kubernetes API surface the controller needs, and its implementation with
// @kubernetes/client-node 2.x. The controller (lb/k8s/controller.ts) sees only KubeApi, so
// tests can hand it a recorder; this file is the one place that knows client-node's quirks:
// - patches go as application/merge-patch+json only when asked (setHeaderOptions), else as
//   json-patch;
// - Event.eventTime must be a V1MicroTime, and core v1 Events with an eventTime need
//   reportingComponent, reportingInstance, action and reason;
// - an informer stops for good on a socket reset or server loss (its 'error' fires): the
//   controller restarts it; informer.stop() also fires an AbortError, which callers ignore.

import * as k8s from '@kubernetes/client-node';
import type { KEndpointSlice, KNode, KService, LoadBalancerIngress } from './convert.ts';

/** A list+watch cache of one kind of object. */
export interface ObjectWatch<T> {
  /** The objects as last seen (plain JSON shapes; a Date may stand for a timestamp string). */
  list(): T[];
  /** Lists (or resumes the watch) and watches; resolves once the cache is filled. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Called on every add, update and delete. */
  onChange(cb: () => void): void;
  /** Called when the watch ends with an error: the watch is stopped until start() again. */
  onError(cb: (err: unknown) => void): void;
}

export type EventType = 'Normal' | 'Warning';

/** The patch methods resolve to the Service's resourceVersion after the write. */
export interface KubeApi {
  services: ObjectWatch<KService>;
  nodes: ObjectWatch<KNode>;
  endpointSlices: ObjectWatch<KEndpointSlice>;
  /**
   * Merge patch on the status subresource: status.loadBalancer.ingress = ingress. A merge
   * patch replaces a list whole, so ports left out of an entry are gone afterwards.
   */
  patchServiceStatus(namespace: string, name: string, ingress: readonly LoadBalancerIngress[]): Promise<string | undefined>;
  /** Merge patch of metadata.finalizers; with resourceVersion, a stale view gets 409. */
  patchFinalizers(namespace: string, name: string, finalizers: readonly string[], resourceVersion?: string): Promise<string | undefined>;
  createEvent(namespace: string, svc: KService, type: EventType, reason: string, message: string): Promise<void>;
}

/** The HTTP status of a failed API call, when there is one. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function isAbort(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'AbortError';
}

function wrap<T extends k8s.KubernetesObject>(inf: k8s.Informer<T> & k8s.ObjectCache<T>): ObjectWatch<never> {
  return {
    list: () => inf.list() as never[],
    start: () => inf.start(),
    stop: () => inf.stop(),
    onChange: (cb) => {
      inf.on('add', () => cb());
      inf.on('update', () => cb());
      inf.on('delete', () => cb());
    },
    onError: (cb) => inf.on('error', (err) => cb(err)),
  };
}

export interface ClientOptions {
  /** A kubeconfig file; null or undefined: in-cluster config, then the default locations. */
  kubeconfig?: string | null;
  /** Events' reportingInstance (the node name). */
  instance: string;
  component?: string;
}

export function makeKubeConfig(path: string | null | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

/** KubeApi on client-node. */
export function createKubeApi(opts: ClientOptions & { kc?: k8s.KubeConfig }): KubeApi {
  const kc = opts.kc ?? makeKubeConfig(opts.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  const component = opts.component ?? 'edgeport';
  return {
    services: wrap(k8s.makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces())),
    nodes: wrap(k8s.makeInformer(kc, '/api/v1/nodes', () => core.listNode())),
    endpointSlices: wrap(k8s.makeInformer(kc, '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces())),
    async patchServiceStatus(namespace, name, ingress) {
      const body = { status: { loadBalancer: { ingress } } };
      return (await core.patchNamespacedServiceStatus({ namespace, name, body }, merge)).metadata?.resourceVersion;
    },
    async patchFinalizers(namespace, name, finalizers, resourceVersion) {
      const metadata: Record<string, unknown> = { finalizers: [...finalizers] };
      if (resourceVersion) metadata.resourceVersion = resourceVersion;
      return (await core.patchNamespacedService({ namespace, name, body: { metadata } }, merge)).metadata?.resourceVersion;
    },
    async createEvent(namespace, svc, type, reason, message) {
      const m = svc.metadata;
      await core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${m.name}.`, namespace },
          involvedObject: { apiVersion: 'v1', kind: 'Service', namespace, name: m.name, ...(m.uid ? { uid: m.uid } : {}) },
          type,
          reason,
          message,
          action: reason,
          eventTime: new k8s.V1MicroTime(),
          reportingComponent: component,
          reportingInstance: opts.instance,
          source: { component, host: opts.instance },
        },
      });
    },
  };
}
