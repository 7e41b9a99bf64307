// A site as the controller reaches it (SiteApi), over the member protocol through one of its
// locators: what the admin HTTP API answers in a real deployment (site-http-client.ts), for
// controllers running in the simulator against simulated sites.

import type { StraitClient } from '../client/client.ts';
import { StraitError } from '../errors.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import type { SiteApi } from '../controller/apply.ts';
import type { SiteFacts } from '../controller/plan.ts';

function asError(error: unknown): StraitError {
  return error instanceof StraitError ? error : new StraitError('STRAIT_INTERNAL', { reason: String(error) });
}

export function simSiteApi(client: StraitClient, locator: Address): SiteApi {
  return {
    describe(callback) {
      Promise.all([client.askMember(locator, 'getView', {}), client.askMember(locator, 'siteConfig', {})]).then(([view, config]) => {
        if (view.view === null) throw new StraitError('STRAIT_NOT_READY', { member: view.self.name, state: view.state });
        const members = view.view.members;
        const facts: SiteFacts = {
          site: view.view.site,
          locators: members.filter((member) => member.info.role === 'locator').map((member) => member.info.address),
          members: members.map((member) => ({ name: member.info.name, role: member.info.role, ready: member.ready })),
          servers: members.filter((member) => member.info.role === 'server').length,
          receivers: members.flatMap((member) => (member.info.receiver !== undefined && member.ready ? [member.info.receiver] : [])),
          config: config.config,
        };
        callback(undefined, facts);
      }).catch((error: unknown) => callback(asError(error), undefined));
    },
    change(change, callback) {
      client.askMember(locator, 'configChange', { change }).then((result) => callback(undefined, result), (error: unknown) => callback(asError(error), undefined));
    },
    senders(callback) {
      client.askMember(locator, 'getView', {}).then(async (view) => {
        const hosts = (view.view?.members ?? []).filter((member) => (member.info.senders ?? []).length > 0);
        const answers = await Promise.all(hosts.map((member) => client.askMember(member.info.address, 'senderStatus', {}).then((response) => response.senders, () => [] as SenderStatus[])));
        callback(undefined, answers.flat());
      }).catch((error: unknown) => callback(asError(error), undefined));
    },
  };
}
