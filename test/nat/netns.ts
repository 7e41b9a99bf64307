// Network namespaces for the NAT tests: a "public" network (a bridge in its own namespace, on
// 198.18.0.0/24, the range reserved for network tests) and sites attached to it either directly
// or behind a NAT namespace that masquerades their private network (10.20.N.0/24), with or
// without port forwards. Everything is created under one random prefix and removed by
// `destroy()` — processes first, then namespaces and the /etc/netns files — also when a test
// fails, and (synchronously) if the test process exits without that.
//
// Split-horizon names: `ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts, so a site's
// advertised name (`siteN.strait.test`) can resolve to its private address inside the site and
// to its NAT's public address everywhere else, as a real split-horizon DNS would.
//
// Requires root and iproute2 + iptables (.ci/run installs them); without them `create` fails
// with the command that failed, it never skips.

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { runCommand, type CommandResult } from '../../bench/processes.ts';

export type SiteKind =
  /** Members have public addresses: anyone can connect in. */
  | 'public'
  /** Private network behind a NAT that forwards the listed ports to the site (scenario 2). */
  | 'forwarded'
  /** Private network behind a masquerading NAT with no inbound port at all (dial-out). */
  | 'masquerade';

export interface SiteNetwork {
  readonly id: number;
  readonly kind: SiteKind;
  /** The namespace the site's members run in. */
  readonly namespace: string;
  /** The members' own address (public for a public site, private behind a NAT). */
  readonly address: string;
  /** Where the rest of the world reaches the site: its address, or its NAT's public address. */
  readonly publicAddress: string;
  /** The site's advertised host name, resolving to `address` inside, `publicAddress` outside. */
  readonly hostName: string;
}

/** Namespaces that only hold a public address (routers, a public client). */
export interface PublicHost {
  readonly namespace: string;
  readonly address: string;
}

const PUBLIC_PREFIX = '198.18.0';

function run(args: readonly string[]): void {
  try {
    execFileSync(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(`network setup failed: ${args.join(' ')}: ${stderr || (error as Error).message}`);
  }
}

function quietly(args: readonly string[]): void {
  try {
    execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' });
  } catch {
    // Cleanup: already gone.
  }
}

export class NetnsLab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly hostsDirs: string[] = [];
  private readonly sites: SiteNetwork[] = [];
  private readonly publicHosts: PublicHost[] = [];
  private readonly pids = new Set<number>();
  private nextPublic = 10;
  private nextVeth = 0;
  private destroyed = false;
  private readonly onExit = () => this.destroySync();

  constructor() {
    // Interface names are at most 15 characters: keep the prefix short.
    this.prefix = `st${randomBytes(3).toString('hex')}`;
    process.on('exit', this.onExit);
    this.namespace('pub');
    run(['ip', '-n', this.ns('pub'), 'link', 'add', 'br0', 'type', 'bridge']);
    run(['ip', '-n', this.ns('pub'), 'link', 'set', 'br0', 'up']);
  }

  private ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  private namespace(name: string): string {
    const namespace = this.ns(name);
    run(['ip', 'netns', 'add', namespace]);
    this.namespaces.push(namespace);
    run(['ip', '-n', namespace, 'link', 'set', 'lo', 'up']);
    return namespace;
  }

  /** A veth pair: `inside` end in `namespace` (named `device`), the other end on the public bridge. */
  private attachToPublic(namespace: string, device: string, address: string): void {
    const outer = `${this.prefix}v${this.nextVeth++}`;
    run(['ip', 'link', 'add', outer, 'type', 'veth', 'peer', 'name', `${outer}i`]);
    run(['ip', 'link', 'set', outer, 'netns', this.ns('pub')]);
    run(['ip', '-n', this.ns('pub'), 'link', 'set', outer, 'master', 'br0']);
    run(['ip', '-n', this.ns('pub'), 'link', 'set', outer, 'up']);
    run(['ip', 'link', 'set', `${outer}i`, 'netns', namespace]);
    run(['ip', '-n', namespace, 'link', 'set', `${outer}i`, 'name', device]);
    run(['ip', '-n', namespace, 'addr', 'add', `${address}/24`, 'dev', device]);
    run(['ip', '-n', namespace, 'link', 'set', device, 'up']);
  }

  /** A host with only a public address (a router, a client of the public network). */
  publicHost(name: string): PublicHost {
    const namespace = this.namespace(name);
    const address = `${PUBLIC_PREFIX}.${this.nextPublic++}`;
    this.attachToPublic(namespace, 'eth0', address);
    const host = { namespace, address };
    this.publicHosts.push(host);
    return host;
  }

  /**
   * A site of `kind`. `forwardPorts` (forwarded sites) are the TCP ports its NAT forwards from
   * its public address to the site. Call `writeHosts()` once every site exists.
   */
  site(id: number, kind: SiteKind, forwardPorts: readonly number[] = []): SiteNetwork {
    const namespace = this.namespace(`s${id}`);
    const hostName = `site${id}.strait.test`;
    if (kind === 'public') {
      const address = `${PUBLIC_PREFIX}.${this.nextPublic++}`;
      this.attachToPublic(namespace, 'eth0', address);
      const site = { id, kind, namespace, address, publicAddress: address, hostName };
      this.sites.push(site);
      return site;
    }
    const nat = this.namespace(`n${id}`);
    const publicAddress = `${PUBLIC_PREFIX}.${this.nextPublic++}`;
    this.attachToPublic(nat, 'wan0', publicAddress);
    const privateGateway = `10.20.${id}.1`;
    const address = `10.20.${id}.2`;
    const veth = `${this.prefix}p${id}`;
    run(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}i`]);
    run(['ip', 'link', 'set', veth, 'netns', nat]);
    run(['ip', '-n', nat, 'link', 'set', veth, 'name', 'lan0']);
    run(['ip', '-n', nat, 'addr', 'add', `${privateGateway}/24`, 'dev', 'lan0']);
    run(['ip', '-n', nat, 'link', 'set', 'lan0', 'up']);
    run(['ip', 'link', 'set', `${veth}i`, 'netns', namespace]);
    run(['ip', '-n', namespace, 'link', 'set', `${veth}i`, 'name', 'eth0']);
    run(['ip', '-n', namespace, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    run(['ip', '-n', namespace, 'link', 'set', 'eth0', 'up']);
    run(['ip', '-n', namespace, 'route', 'add', 'default', 'via', privateGateway]);
    run(['ip', 'netns', 'exec', nat, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const iptables = (...args: string[]) => run(['ip', 'netns', 'exec', nat, 'iptables', '-w', ...args]);
    iptables('-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE');
    // Only connections the site opened come back in; nothing else is forwarded to it...
    iptables('-A', 'FORWARD', '-i', 'wan0', '-o', 'lan0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
    // ...except the ports a forwarded site's NAT forwards.
    for (const port of kind === 'forwarded' ? forwardPorts : []) {
      iptables('-t', 'nat', '-A', 'PREROUTING', '-i', 'wan0', '-p', 'tcp', '--dport', String(port), '-j', 'DNAT', '--to-destination', `${address}:${port}`);
      iptables('-A', 'FORWARD', '-i', 'wan0', '-o', 'lan0', '-p', 'tcp', '-d', address, '--dport', String(port), '-j', 'ACCEPT');
    }
    iptables('-A', 'FORWARD', '-i', 'lan0', '-o', 'wan0', '-j', 'ACCEPT');
    iptables('-P', 'FORWARD', 'DROP');
    const site = { id, kind, namespace, address, publicAddress, hostName };
    this.sites.push(site);
    return site;
  }

  /** Writes each namespace's /etc/hosts: every site's name, as seen from inside that namespace. */
  writeHosts(): void {
    const everyNamespace = [...this.sites.map((site) => site.namespace), ...this.publicHosts.map((host) => host.namespace)];
    for (const namespace of everyNamespace) {
      const lines = ['127.0.0.1 localhost', '::1 localhost'];
      for (const site of this.sites) lines.push(`${site.namespace === namespace ? site.address : site.publicAddress} ${site.hostName}`);
      const dir = `/etc/netns/${namespace}`;
      mkdirSync(dir, { recursive: true });
      this.hostsDirs.push(dir);
      writeFileSync(`${dir}/hosts`, `${lines.join('\n')}\n`);
    }
  }

  /** Runs a command inside `namespace` to completion. */
  exec(namespace: string, file: string, args: readonly string[], timeoutMs?: number): Promise<CommandResult> {
    return runCommand('ip', ['netns', 'exec', namespace, file, ...args], timeoutMs === undefined ? {} : { timeoutMs });
  }

  /** A process to kill (SIGKILL) if `destroy` finds it still running. */
  track(pid: number): void {
    this.pids.add(pid);
  }

  untrack(pid: number): void {
    this.pids.delete(pid);
  }

  /** Cuts a public host off the network: its link goes down, its connections go silent. */
  cutLink(host: PublicHost): void {
    run(['ip', '-n', host.namespace, 'link', 'set', 'eth0', 'down']);
  }

  /** Kills what is still tracked, removes the namespaces and /etc/netns files. Idempotent. */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const namespace of [...this.namespaces].reverse()) quietly(['ip', 'netns', 'del', namespace]);
    for (const dir of this.hostsDirs) rmSync(dir, { recursive: true, force: true });
  }
}
