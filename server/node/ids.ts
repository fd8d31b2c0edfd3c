// Proposal ids, unique across members and restarts (etcd's idutil): the member id's low 16 bits, then
// a counter that starts at the current Unix milliseconds shifted left by 8, so a restarted member
// does not reuse the ids of entries it may still find in its log.
export class RequestIds {
  private readonly prefix: bigint;
  private suffix: bigint;

  constructor(memberId: bigint) {
    this.prefix = (memberId & 0xffffn) << 48n;
    this.suffix = (BigInt(Date.now()) << 8n) & 0xffffffffffffn;
  }

  next(): bigint {
    this.suffix = (this.suffix + 1n) & 0xffffffffffffn;
    return this.prefix | this.suffix;
  }
}
