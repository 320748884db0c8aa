// The ARP worker thread: reads ARP frames from the announce interface with a blocking recv()
// (SO_RCVTIMEO bounds each wait so a stop request is noticed) and answers who-has requests for
// owned VIPs right here, without a round trip to the main thread. Owned VIPs, the answering
// flag and the counters live in shared memory (shared.ts). Messages to the main thread:
// {type:'ready'} once reading, {type:'conflict', vip, mac} (at most one a second per VIP and
// MAC), {type:'error', message, errno, fatal}.

import { parentPort, workerData } from 'node:worker_threads';
import { ETH_P_ARP, parseMac } from './arp.ts';
import { EAGAIN, EINTR, ENETDOWN, PACKET_OUTGOING, PacketSocket, PacketSocketError } from './packet.ts';
import { SharedArpState } from './shared.ts';

export interface ArpWorkerData {
  ifindex: number;
  mac: string;
  buffer: SharedArrayBuffer;
  recvTimeoutMs: number;
}

export type ArpWorkerMessage =
  | { type: 'ready' }
  | { type: 'conflict'; vip: string; mac: string }
  | { type: 'error'; message: string; errno: number; fatal: boolean };

const data = workerData as ArpWorkerData;
const port = parentPort!;
const post = (m: ArpWorkerMessage) => port.postMessage(m);

function run(): void {
  const state = new SharedArpState(data.buffer);
  const ourMac = parseMac(data.mac)!;
  let sock: PacketSocket;
  try {
    sock = new PacketSocket({ ifindex: data.ifindex, protocol: ETH_P_ARP, recvTimeoutMs: data.recvTimeoutMs });
  } catch (e) {
    post({ type: 'error', message: (e as Error).message, errno: e instanceof PacketSocketError ? e.errno : 0, fatal: true });
    return;
  }
  post({ type: 'ready' });
  const buf = Buffer.alloc(2048);
  const lastConflict = new Map<string, { mac: string; at: number }>();
  let lastErrorAt = 0;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  try {
    while (!state.stopRequested) {
      const n = sock.recv(buf);
      if (n < 0) {
        const errno = -n;
        if (errno === EAGAIN || errno === EINTR) continue;
        // The link went down (the socket resumes when it comes back) or something worse:
        // report at most once a second and do not spin.
        const now = Date.now();
        if (errno !== ENETDOWN && now - lastErrorAt > 1000) {
          lastErrorAt = now;
          post({ type: 'error', message: `Cannot read ARP frames: errno ${errno}`, errno, fatal: false });
        }
        Atomics.wait(nap, 0, 0, 50);
        continue;
      }
      if (sock.pkttype === PACKET_OUTGOING) continue;
      const d = state.process(buf.subarray(0, n), ourMac);
      if (d.reply) {
        const r = sock.trySend(d.reply);
        if (r >= 0) state.countReply();
        else {
          const now = Date.now();
          if (now - lastErrorAt > 1000) {
            lastErrorAt = now;
            post({ type: 'error', message: `Cannot send an ARP reply: errno ${-r}`, errno: -r, fatal: false });
          }
        }
      }
      if (d.conflict) {
        const now = Date.now();
        const last = lastConflict.get(d.conflict.vip);
        if (!last || last.mac !== d.conflict.mac || now - last.at >= 1000) {
          lastConflict.set(d.conflict.vip, { mac: d.conflict.mac, at: now });
          post({ type: 'conflict', vip: d.conflict.vip, mac: d.conflict.mac });
        }
      }
    }
  } finally {
    sock.close();
  }
}

run();
