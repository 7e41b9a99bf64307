// A WAN proxy child process (bench/wan/proxy-process.ts, the same code as `strait proxy`)
// steered over its stdin: one command, one reply line. Listed on the bench's cleanup list so
// it is stopped by pid whatever happens.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Cleanup, waitForExit } from '../processes.ts';

const PROXY_SCRIPT_PATH = fileURLToPath(new URL('./proxy-process.ts', import.meta.url));
/** How long the proxy may take to answer a command or to start listening. */
const PROXY_REPLY_TIMEOUT_MS = 10_000;
const PROXY_STOP_TIMEOUT_MS = 5_000;

export interface ProxyStats {
  readonly delayMs: number;
  readonly partitioned: boolean;
  readonly openConnections: number;
  readonly connectionsAccepted: number;
}

export class ProxyProcess {
  readonly label: string;
  readonly listen: string;
  readonly target: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly replies: string[] = [];
  /** The end of the proxy's standard error, for error messages. */
  private readonly errorLines: string[] = [];
  private waiting: ((line: string) => void) | undefined;
  private exited = false;

  private constructor(label: string, listen: string, target: string, child: ChildProcess) {
    this.label = label;
    this.listen = listen;
    this.target = target;
    this.child = child;
    this.pid = child.pid!;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting !== undefined) waiting(line);
      else this.replies.push(line);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.errorLines.push(line);
      if (this.errorLines.length > 20) this.errorLines.shift();
    });
    child.on('exit', (status) => {
      this.exited = true;
      const waiting = this.waiting;
      this.waiting = undefined;
      // Give stderr a moment to be read, so the reason is in the message.
      if (waiting !== undefined) setTimeout(() => waiting(`error proxy exited with status ${status}: ${this.errorLines.join(' ')}`), 50);
    });
  }

  /** Starts `proxy-process.ts --listen <listen> --target <target>`; resolves once it listens. */
  static async start(cleanup: Cleanup, label: string, listen: string, target: string): Promise<ProxyProcess> {
    const child = spawn(process.execPath, [PROXY_SCRIPT_PATH, '--listen', listen, '--target', target], { stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error(`could not start the proxy ${label}`);
    const proxy = new ProxyProcess(label, listen, target, child);
    cleanup.add(`proxy ${label} (${listen} → ${target})`, proxy.pid, () => proxy.stop());
    const banner = await proxy.nextLine();
    if (!banner.startsWith('Proxy listening')) throw new Error(`proxy ${label} did not start: ${banner} ${proxy.errorLines.join('\n')}`);
    return proxy;
  }

  private nextLine(): Promise<string> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        const stderr = this.errorLines.length > 0 ? `; its stderr:\n${this.errorLines.join('\n')}` : '';
        reject(new Error(`proxy ${this.label} (pid ${this.pid}) did not answer within ${PROXY_REPLY_TIMEOUT_MS} ms${this.exited ? ' (it exited)' : ''}${stderr}`));
      }, PROXY_REPLY_TIMEOUT_MS);
      this.waiting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
    });
  }

  /** Sends one control line; resolves with the reply, rejects on an `error` reply. */
  async command(line: string): Promise<string> {
    this.child.stdin!.write(`${line}\n`);
    const reply = await this.nextLine();
    if (reply.startsWith('error ')) throw new Error(`proxy ${this.label}: ${line}: ${reply}`);
    return reply;
  }

  /** Sets the one-way delay (round trip = 2 × delayMs). */
  async setDelay(delayMs: number): Promise<void> {
    await this.command(`delay ${delayMs}`);
  }

  async partition(): Promise<void> {
    await this.command('partition');
  }

  async heal(): Promise<void> {
    await this.command('heal');
  }

  async stats(): Promise<ProxyStats> {
    const reply = await this.command('stats');
    return JSON.parse(reply.slice('stats '.length)) as ProxyStats;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    if (!(await waitForExit(this.pid, PROXY_STOP_TIMEOUT_MS))) throw new Error(`proxy ${this.label} did not exit after SIGTERM`);
  }
}
