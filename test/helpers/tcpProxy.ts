/**
 * A TCP proxy on 127.0.0.1 for fault injection: forwards to a target, and for the first
 * `faultyConnections` connections cuts (RST) or stalls the link once `afterBytes` bytes have
 * gone from the client to the server. Later connections pass untouched.
 */
import net from 'node:net';

export interface ProxyFault {
  /** Client-to-server bytes forwarded before the fault strikes. */
  afterBytes: number;
  /** How many connections (the first ones) get the fault. Default 1. */
  faultyConnections?: number;
  /** `reset`: both sides get a TCP RST. `stall`: nothing more is forwarded either way, nothing is closed. */
  mode?: 'reset' | 'stall';
}

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections that got the fault. */
  readonly faults: number;
  stop(): Promise<void>;
}

export function startTcpProxy(target: { host: string; port: number }, fault?: ProxyFault): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let faults = 0;
  const server = net.createServer((client) => {
    connections++;
    const faulty = fault !== undefined && connections <= (fault.faultyConnections ?? 1);
    const upstream = net.connect(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', teardown);
    upstream.on('close', teardown);
    let forwarded = 0;
    let struck = false;
    client.on('data', (chunk: Buffer) => {
      if (struck) return;
      if (faulty && forwarded + chunk.length >= fault.afterBytes) {
        struck = true;
        faults++;
        const head = chunk.subarray(0, Math.max(0, fault.afterBytes - forwarded));
        if (head.length > 0) upstream.write(head);
        if ((fault.mode ?? 'reset') === 'reset') {
          client.resetAndDestroy();
          upstream.resetAndDestroy();
        }
        return;
      }
      forwarded += chunk.length;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (struck) return;
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        port,
        get connections() {
          return connections;
        },
        get faults() {
          return faults;
        },
        stop: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
