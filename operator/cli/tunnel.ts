// A local TCP port that reaches one pod's port through the Kubernetes API (the pods/portforward
// subresource over a WebSocket, @kubernetes/client-node's PortForward): what `kubectl port-forward`
// does, so the plugin needs no network path to the pods. Each accepted connection gets its own
// WebSocket; either side closing closes the other.
import { createServer, type Server, type Socket } from 'node:net';
import { PortForward, type KubeConfig } from '@kubernetes/client-node';

export interface Tunnel {
  /** "127.0.0.1:port", what gRPC clients take. */
  readonly endpoint: string;
  close(): Promise<void>;
}

interface Closable {
  close(): void;
  on(event: 'close', cb: () => void): unknown;
}

function pipe(pf: PortForward, namespace: string, pod: string, port: number, socket: Socket): void {
  pf.portForward(namespace, pod, [port], socket, null, socket).then(
    (ws: unknown) => {
      // retryCount 0: the WebSocket itself (a getter only with retries).
      const w = (typeof ws === 'function' ? (ws as () => unknown)() : ws) as Closable | null;
      if (w === null) {
        socket.destroy();
        return;
      }
      w.on('close', () => socket.end());
      socket.on('close', () => w.close());
    },
    (e: unknown) => socket.destroy(e instanceof Error ? e : new Error(String(e))),
  );
}

/** Listens on 127.0.0.1 (an ephemeral port) and forwards each connection to namespace/pod:port. */
export async function openTunnel(kc: KubeConfig, namespace: string, pod: string, port: number): Promise<Tunnel> {
  const pf = new PortForward(kc, true);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    pipe(pf, namespace, pod, port, socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('tunnel: no local port');
  return {
    endpoint: `127.0.0.1:${String(addr.port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
