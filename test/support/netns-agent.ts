// A helper process the l2 tests run inside a network namespace (`ip netns exec NS node
// test/support/netns-agent.ts`). It reads one JSON command a line on stdin and writes one JSON
// answer a line on stdout ({id, ok, value} or {id, ok:false, error}). It plays either side:
// Edgeport's (sysctls, local routes, ArpResponder, a TCP server on the VIP) or the client's
// (ARP requests and captures with its own AF_PACKET socket, raw frames, TCP connects).
// When run as a worker thread (workerData.capture) it is the capture loop.

import net from 'node:net';
import { createInterface } from 'node:readline';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ARP_REPLY, decodeArp, encodeArp, ETH_P_ARP, type ArpPacket } from '../../lb/l2/arp.ts';
import { checkSysctls, ensureSysctls, LocalVips, runIp } from '../../lb/l2/host.ts';
import { interfaceInfo, PacketSocket } from '../../lb/l2/packet.ts';
import { ArpResponder, type ConflictRecord } from '../../lb/l2/responder.ts';

/** Wall clock with sub-millisecond precision, comparable across processes on one host. */
const now = () => performance.timeOrigin + performance.now();

interface CaptureData {
  capture: { ifindex: number; stop: SharedArrayBuffer };
}

if (!isMainThread && (workerData as CaptureData | undefined)?.capture) {
  const { ifindex, stop } = (workerData as CaptureData).capture;
  const flag = new Int32Array(stop);
  const sock = new PacketSocket({ ifindex, protocol: ETH_P_ARP, recvTimeoutMs: 20 });
  parentPort!.postMessage({ armed: true });
  const buf = Buffer.alloc(2048);
  const frames: { at: number; hex: string; pkttype: number }[] = [];
  while (Atomics.load(flag, 0) === 0 && frames.length < 10_000) {
    const n = sock.recv(buf);
    if (n > 0) frames.push({ at: now(), hex: buf.subarray(0, n).toString('hex'), pkttype: sock.pkttype });
  }
  sock.close();
  parentPort!.postMessage({ frames });
} else if (isMainThread) {
  main();
}

function main(): void {
  let responder: ArpResponder | undefined;
  const vips = new LocalVips();
  const servers: net.Server[] = [];
  const conflicts: ConflictRecord[] = [];
  const announced: { vip: string; at: number }[] = [];
  const errors: string[] = [];
  let capture: { worker: Worker; stop: Int32Array; done: Promise<{ frames: { at: number; hex: string; pkttype: number }[] }> } | undefined;

  const handlers: Record<string, (a: Record<string, unknown>) => unknown> = {
    info: (a) => interfaceInfo(String(a.iface)),
    ensureSysctls: (a) => ensureSysctls(String(a.iface)),
    addLocal: (a) => vips.addLocal(String(a.vip)),
    removeAll: () => vips.removeAll(),
    localRoutes: () => runIp(['-4', 'route', 'show', 'table', 'local', 'dev', 'lo']),
    listen: (a) =>
      new Promise<void>((resolve, reject) => {
        const s = net.createServer((c) => c.end(`hello from ${String(a.host)}\n`));
        s.once('error', reject);
        s.listen(Number(a.port), String(a.host), () => resolve());
        servers.push(s);
      }),
    start: async (a) => {
      responder = new ArpResponder({
        iface: String(a.iface),
        linkPollMs: Number(a.linkPollMs ?? 250),
        onConflict: (c) => conflicts.push(c),
        onAnnounced: (vip) => announced.push({ vip, at: now() }),
        onError: (e) => errors.push(e.message),
      });
      await responder.start();
      return { mac: responder.mac };
    },
    setOwned: (a) => responder!.setOwned(a.vips as string[]),
    announce: (a) => {
      const at = now();
      return { at, sent: responder!.announce(String(a.vip)) };
    },
    stats: () => ({ ...responder!.stats(), conflictEvents: conflicts, announced, errors, allAnnounced: responder!.allAnnounced() }),
    stopAnswering: () => responder!.stopAnswering(),
    close: () => responder?.close(),
    // Client side.
    checkSysctls: (a) => checkSysctls(String(a.iface)),
    arpRequest: (a) => arpRequest(String(a.iface), String(a.senderIp), String(a.targetIp), Number(a.timeoutMs ?? 300), Number(a.count ?? 1)),
    sendFrame: (a) => {
      const { index } = interfaceInfo(String(a.iface));
      const s = new PacketSocket({ ifindex: index, protocol: 0 });
      try {
        s.send(Buffer.from(String(a.hex), 'hex'));
      } finally {
        s.close();
      }
      return { at: now() };
    },
    captureStart: async (a) => {
      const { index } = interfaceInfo(String(a.iface));
      const stopBuf = new SharedArrayBuffer(4);
      const worker = new Worker(new URL(import.meta.url), { workerData: { capture: { ifindex: index, stop: stopBuf } } satisfies CaptureData });
      const done = new Promise<{ frames: { at: number; hex: string; pkttype: number }[] }>((resolve, reject) => {
        worker.on('message', (m: { armed?: boolean; frames?: { at: number; hex: string; pkttype: number }[] }) => {
          if (m.frames) resolve({ frames: m.frames });
        });
        worker.once('error', reject);
      });
      await new Promise<void>((resolve, reject) => {
        worker.on('message', (m: { armed?: boolean }) => m.armed && resolve());
        worker.once('error', reject);
      });
      capture = { worker, stop: new Int32Array(stopBuf), done };
      return { at: now() };
    },
    captureStop: async () => {
      const c = capture!;
      Atomics.store(c.stop, 0, 1);
      const { frames } = await c.done;
      await c.worker.terminate();
      capture = undefined;
      return frames.map((f) => ({ at: f.at, pkttype: f.pkttype, arp: decodeArp(Buffer.from(f.hex, 'hex')) ?? null, len: f.hex.length / 2 }));
    },
    connect: (a) =>
      new Promise<string>((resolve, reject) => {
        const c = net.connect({ host: String(a.host), port: Number(a.port), timeout: 2000 });
        let data = '';
        c.on('data', (d) => (data += d.toString()));
        c.on('end', () => resolve(data));
        c.on('timeout', () => c.destroy(new Error('connect timed out')));
        c.on('error', reject);
      }),
    exit: async () => {
      await responder?.close();
      for (const s of servers) s.close();
      setImmediate(() => process.exit(0));
    },
  };

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const { id, cmd, args } = JSON.parse(line) as { id: number; cmd: string; args: Record<string, unknown> };
    const reply = (m: Record<string, unknown>) => process.stdout.write(JSON.stringify({ id, ...m }) + '\n');
    Promise.resolve()
      .then(() => {
        const h = handlers[cmd];
        if (!h) throw new Error(`unknown command ${cmd}`);
        return h(args ?? {});
      })
      .then((value) => reply({ ok: true, value: value ?? null }), (e: Error) => reply({ ok: false, error: e.message }));
  });
  rl.on('close', () => process.exit(0));
}

/**
 * Sends one who-has for `targetIp` from this interface (sender `senderIp`) and waits for the
 * reply; blocking (this process does nothing else meanwhile). `count` > 1 repeats it on one
 * socket and returns every round trip.
 */
function arpRequest(iface: string, senderIp: string, targetIp: string, timeoutMs: number, count = 1): { mac?: string; ms?: number; reply?: ArpPacket; all: number[] } {
  const { index, mac } = interfaceInfo(iface);
  const sock = new PacketSocket({ ifindex: index, protocol: ETH_P_ARP, recvTimeoutMs: 20 });
  const all: number[] = [];
  let last: { mac?: string; ms?: number; reply?: ArpPacket } = {};
  try {
    const req = encodeArp({ op: 1, ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: mac, senderMac: mac, senderIp, targetMac: '00:00:00:00:00:00', targetIp });
    const buf = Buffer.alloc(2048);
    for (let i = 0; i < count; i++) {
      last = {};
      const t0 = performance.now();
      sock.send(req);
      while (performance.now() - t0 < timeoutMs) {
        const n = sock.recv(buf);
        if (n <= 0) continue;
        const p = decodeArp(buf.subarray(0, n));
        if (p && p.op === ARP_REPLY && p.senderIp === targetIp && p.targetMac === mac) {
          last = { mac: p.senderMac, ms: performance.now() - t0, reply: p };
          all.push(last.ms!);
          break;
        }
      }
    }
    return { ...last, all };
  } finally {
    sock.close();
  }
}
