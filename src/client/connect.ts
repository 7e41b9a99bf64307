// `connect()`: the client over the Node runtime, for applications — the one client module that
// knows which runtime it runs on (client.ts takes any Runtime; the simulator passes its own).
// The runtime it creates belongs to the client: its sockets and timers hold the process only
// while an operation is pending, and closing the client closes it.

import { createClientRuntime } from '../runtime/node/client-runtime.ts';
import { connectThrough, type ConnectOptions, type StraitClient } from './client.ts';

/**
 * Connects to a site through its locators (`options.runtime`, when given, is used instead of
 * the Node runtime). See connectThrough for what it resolves to and how it fails.
 */
export async function connect(options: ConnectOptions): Promise<StraitClient> {
  if (options.runtime !== undefined) return connectThrough(options.runtime, options);
  const tls = options.tls;
  const created = createClientRuntime(tls === undefined ? {} : { tls });
  return connectThrough(created.runtime, options, created);
}
