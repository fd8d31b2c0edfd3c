// Differential runs against etcd 3.6.8: the same steps on a fresh single-member etcd 3.6.8 and a
// fresh Cairn, one after the other, each giving a transcript for the caller to compare.
import type { TestContext } from 'node:test';
import { refBinOrSkip } from './bins.js';
import { EtcdClient } from './client.js';
import { startCairn, startEtcd, type ServerOpts, type ServerProc } from './procs.js';

export interface Transcripts {
  readonly etcd: string[];
  readonly cairn: string[];
}

/** Runs `steps` on etcd 3.6.8 and then on Cairn; undefined when etcd 3.6.8 is missing (skipOrFail). Servers stop after the test. */
export async function onEtcd36AndCairn(t: TestContext, steps: (c: EtcdClient, s: ServerProc) => Promise<string[]>, opts: ServerOpts = {}): Promise<Transcripts | undefined> {
  const bin = refBinOrSkip(t, 'etcd-3.6');
  if (bin === undefined) return undefined;
  const servers: ServerProc[] = [];
  const clients: EtcdClient[] = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.stop()));
  });
  const run = async (s: ServerProc): Promise<string[]> => {
    servers.push(s);
    const c = new EtcdClient(s.endpoint);
    clients.push(c);
    return steps(c, s);
  };
  const etcd = await run(await startEtcd({ ...opts, etcdBin: bin }));
  const cairn = await run(await startCairn(opts));
  return { etcd, cairn };
}
