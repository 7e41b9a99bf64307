// The live topology dashboard: one page that draws every topology (sites as nodes, edges as
// arrows labelled with their state, queue depth, lag and events/s) with cytoscape, refreshed
// from a JSON feed every second without a reload; a click on a site lists its members and
// regions; problems are written out in words. The controller serves it for its topologies and
// every locator for its own site (the feed has the same shape).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyPluginCallback } from 'fastify';
import { StraitError } from '../errors.ts';
import type { MemberAdmin } from '../core/member-admin.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { EdgeStatus, SiteStatus } from '../controller/controller.ts';

/** What the page draws: one graph per entry (a controller's topologies; a locator's site and its WAN). */
export interface DashboardGraph {
  readonly name: string;
  readonly state: string;
  readonly lastError: string | null;
  readonly sites: readonly SiteStatus[];
  readonly edges: readonly (EdgeStatus | (Omit<EdgeStatus, 'state'> & { state: 'remote' }))[];
}

/**
 * A locator's feed: its site (members, regions, receivers) and every site of the WAN catalogue
 * as nodes; its own senders as edges with their figures, the other sites' edges as the
 * catalogue knows them (state `remote`: this site has no figures for them).
 */
export function siteDashboardFeed(admin: MemberAdmin, samples: Map<string, { eventsSent: number; atMs: number; rate: number }>, nowMs: number): Promise<{ topologies: DashboardGraph[] }> {
  const view = admin.view();
  if (view === null) return Promise.reject(new StraitError('STRAIT_NOT_READY', { member: admin.status().info.name, state: 'no view installed' }));
  return new Promise((resolve) => admin.siteSenders((senders: SenderStatus[]) => {
    const own = view.site;
    const catalogue = admin.catalogue();
    const name = (site: number) => `site ${site}`;
    const sites: SiteStatus[] = [{
      name: name(own), reachable: true, site: own,
      servers: view.members.filter((member) => member.info.role === 'server').length,
      members: view.members.map((member) => ({ name: member.info.name, role: member.info.role, ready: member.ready })),
      locators: view.members.filter((member) => member.info.role === 'locator').map((member) => formatAddress(member.info.address)),
      receivers: view.members.flatMap((member) => (member.info.receiver !== undefined ? [formatAddress(member.info.receiver)] : [])),
      regions: [...new Set(view.members.flatMap((member) => member.info.regions))].sort(),
    }];
    for (const entry of catalogue) {
      if (entry.site === own) continue;
      sites.push({ name: name(entry.site), reachable: true, site: entry.site, locators: entry.locators.map(formatAddress), receivers: entry.receivers.map(formatAddress), regions: [] });
    }
    const edges: DashboardGraph['edges'][number][] = [];
    for (const primary of senders.filter((sender) => sender.role === 'primary')) {
      const key = `${own}>${primary.remoteSite}/${primary.id}`;
      const previous = samples.get(key);
      const rate = previous !== undefined && nowMs - previous.atMs >= 500 ? Math.max(0, ((primary.eventsSent - previous.eventsSent) * 1000) / (nowMs - previous.atMs)) : previous?.rate ?? 0;
      if (previous === undefined || nowMs - previous.atMs >= 500) samples.set(key, { eventsSent: primary.eventsSent, atMs: nowMs, rate });
      const connected = primary.connectedReceiver !== null || primary.dialInFrom !== undefined;
      if (!sites.some((site) => site.site === primary.remoteSite)) sites.push({ name: name(primary.remoteSite), reachable: false, site: primary.remoteSite, error: 'not in the WAN catalogue yet' });
      edges.push({
        from: name(own), to: name(primary.remoteSite), sender: primary.id,
        state: primary.state === 'running' ? (connected ? 'connected' : 'connecting') : primary.state,
        queueEvents: primary.queueEvents, lagMs: primary.lagMs, eventsPerSecond: Math.round(rate * 10) / 10, eventsSent: primary.eventsSent, lastError: primary.problem,
      });
    }
    for (const entry of catalogue) {
      if (entry.site === own) continue;
      for (const to of entry.edges) {
        if (!sites.some((site) => site.site === to)) continue;
        edges.push({ from: name(entry.site), to: name(to), sender: '', state: 'remote', queueEvents: 0, lagMs: 0, eventsPerSecond: 0, eventsSent: 0, lastError: null });
      }
    }
    resolve({ topologies: [{ name: `site ${own} WAN`, state: `view ${view.id}`, lastError: null, sites, edges }] });
  }));
}

/** How often the page asks the feed again. */
export const DASHBOARD_REFRESH_MS = 1000;

const require = createRequire(import.meta.url);
let cytoscapeSource: string | undefined;

function cytoscape(): string {
  cytoscapeSource ??= readFileSync(require.resolve('cytoscape/dist/cytoscape.min.js'), 'utf8');
  return cytoscapeSource;
}

function page(title: string, feed: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>
  body { margin: 0; font: 14px system-ui, sans-serif; color: #1d2733; display: grid; grid-template-columns: 1fr 320px; height: 100vh; }
  #graphs { overflow: auto; padding: 12px; }
  .topology { margin-bottom: 16px; border: 1px solid #d0d7de; border-radius: 6px; }
  .topology h2 { font-size: 15px; margin: 0; padding: 8px 12px; background: #f6f8fa; border-bottom: 1px solid #d0d7de; }
  .graph { height: 420px; }
  aside { border-left: 1px solid #d0d7de; padding: 12px; overflow: auto; background: #fbfcfd; }
  #problems li { color: #b42318; margin-bottom: 6px; }
  #updated { color: #57606a; font-size: 12px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  td { padding: 2px 4px; vertical-align: top; }
</style>
</head>
<body>
<main id="graphs"><p id="empty">No topology yet: POST one to /v1/topologies/NAME (docs/TOPOLOGY.md).</p></main>
<aside>
  <div id="updated">connecting…</div>
  <h3>Problems</h3><ul id="problems"><li id="no-problems" style="color:#1a7f37">none</li></ul>
  <h3>Site</h3><div id="site">Click a site.</div>
</aside>
<script src="/dashboard/cytoscape.js"></script>
<script src="/dashboard/app.js" data-feed="${feed}" data-refresh="${DASHBOARD_REFRESH_MS}"></script>
</body>
</html>`;
}

/** The page's script: plain browser JavaScript, no build step. */
const APP = String.raw`
(() => {
  const script = document.currentScript;
  const feed = script.dataset.feed;
  const refreshMs = Number(script.dataset.refresh);
  // A token-protected API: open the page as …/#token=THE-TOKEN (the fragment never leaves the browser).
  const fromFragment = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromFragment) window.straitToken = fromFragment;
  const graphs = new Map();
  let selected = null;
  let latest = [];
  const colors = { connected: '#1a7f37', connecting: '#bf8700', paused: '#8250df', stopped: '#57606a', unknown: '#b42318', remote: '#8c959f' };

  function edgeLabel(edge) {
    if (edge.state === 'remote') return 'another site\'s edge';
    return edge.state + ' · q ' + edge.queueEvents + ' · lag ' + edge.lagMs + ' ms · ' + edge.eventsPerSecond + ' ev/s';
  }

  function elements(status) {
    const nodes = status.sites.map((site) => ({ data: {
      id: status.name + '/' + site.name, site: site.name, topology: status.name,
      label: site.name + (site.site !== undefined && site.name !== 'site ' + site.site ? ' (site ' + site.site + ')' : '') + (site.reachable ? '' : ' — unreachable'),
      reachable: site.reachable ? 'yes' : 'no',
    } }));
    const edges = status.edges.map((edge) => ({ data: {
      id: status.name + '/' + edge.from + '>' + edge.to, source: status.name + '/' + edge.from, target: status.name + '/' + edge.to,
      label: edgeLabel(edge), state: edge.state, queue: edge.queueEvents, lag: edge.lagMs, rate: edge.eventsPerSecond,
    } }));
    return { nodes, edges };
  }

  function draw(status) {
    const key = status.name.replace(/[^A-Za-z0-9_-]/g, '_');
    let entry = graphs.get(status.name);
    if (entry === undefined) {
      const box = document.createElement('section');
      box.className = 'topology';
      box.dataset.topology = status.name;
      box.innerHTML = '<h2></h2><div class="graph"></div>';
      document.getElementById('graphs').appendChild(box);
      const cy = cytoscape({
        container: box.querySelector('.graph'),
        style: [
          { selector: 'node', style: { label: 'data(label)', 'background-color': '#0969da', color: '#1d2733', 'text-valign': 'bottom', 'text-margin-y': 6, width: 36, height: 36 } },
          { selector: 'node[reachable = "no"]', style: { 'background-color': '#b42318' } },
          { selector: 'edge', style: { label: 'data(label)', 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', width: 3, 'font-size': 11, 'text-rotation': 'autorotate', 'text-background-color': '#fff', 'text-background-opacity': 0.85 } },
        ].concat(Object.entries(colors).map(([state, color]) => ({ selector: 'edge[state = "' + state + '"]', style: { 'line-color': color, 'target-arrow-color': color } }))),
        layout: { name: 'circle' },
      });
      cy.on('tap', 'node', (event) => {
        selected = { topology: event.target.data('topology'), site: event.target.data('site') };
        showSite();
      });
      entry = { box, cy };
      graphs.set(status.name, entry);
      window.straitGraphs = window.straitGraphs || {};
      window.straitGraphs[key] = cy;
    }
    entry.box.querySelector('h2').textContent = status.name + ' — ' + status.state + (status.lastError ? ' — ' + status.lastError : '');
    const { nodes, edges } = elements(status);
    const cy = entry.cy;
    let added = false;
    cy.batch(() => {
      const wanted = new Set(nodes.concat(edges).map((element) => element.data.id));
      cy.elements().forEach((element) => { if (!wanted.has(element.id())) element.remove(); });
      for (const element of nodes.concat(edges)) {
        const existing = cy.getElementById(element.data.id);
        if (existing.empty()) { cy.add(element); added = true; } else existing.data(element.data);
      }
    });
    if (added) cy.layout({ name: 'circle' }).run();
  }

  function showSite() {
    const target = document.getElementById('site');
    if (selected === null) return;
    const status = latest.find((candidate) => candidate.name === selected.topology);
    const site = status && status.sites.find((candidate) => candidate.name === selected.site);
    if (!site) { target.textContent = 'Click a site.'; return; }
    const rows = [['site', site.name + (site.site !== undefined ? ' (id ' + site.site + ')' : '')], ['reachable', site.reachable ? 'yes' : 'no: ' + site.error]];
    if (site.reachable) {
      rows.push(['servers', String(site.servers)], ['members', (site.members || []).map((member) => member.name + ' (' + member.role + (member.ready ? '' : ', starting') + ')').join(', ')], ['locators', site.locators.join(', ')], ['receivers', site.receivers.join(', ') || '-'], ['regions', site.regions.join(', ') || '-']);
    }
    target.innerHTML = '<table>' + rows.map((row) => '<tr><td><b>' + row[0] + '</b></td><td></td></tr>').join('') + '</table>';
    target.querySelectorAll('tr').forEach((tr, index) => { tr.children[1].textContent = rows[index][1]; });
  }

  function problems(statuses) {
    const lines = [];
    for (const status of statuses) {
      if (status.lastError) lines.push(status.name + ': ' + status.lastError);
      for (const site of status.sites) if (!site.reachable) lines.push(status.name + ': site ' + site.name + ' does not answer: ' + site.error);
      for (const edge of status.edges) {
        const wait = edge.queueEvents > 0 ? '; ' + edge.queueEvents + ' events wait, the oldest for ' + edge.lagMs + ' ms' : '';
        if (edge.state === 'remote') continue;
        if (edge.state !== 'connected') lines.push(status.name + ': ' + edge.from + ' → ' + edge.to + ' is ' + edge.state + wait + (edge.lastError ? ': ' + edge.lastError : ''));
        else if (edge.lastError) lines.push(status.name + ': ' + edge.from + ' → ' + edge.to + ': ' + edge.lastError);
      }
    }
    const list = document.getElementById('problems');
    list.innerHTML = '';
    if (lines.length === 0) { const item = document.createElement('li'); item.id = 'no-problems'; item.style.color = '#1a7f37'; item.textContent = 'none'; list.appendChild(item); }
    for (const line of lines) { const item = document.createElement('li'); item.textContent = line; list.appendChild(item); }
  }

  async function refresh() {
    try {
      const response = await fetch(feed, { headers: window.straitToken ? { authorization: 'Bearer ' + window.straitToken } : {} });
      const body = await response.json();
      if (!response.ok) throw new Error(body.code + ': ' + body.message);
      latest = body.topologies;
      document.getElementById('empty').style.display = latest.length === 0 ? '' : 'none';
      for (const [name, entry] of graphs) if (!latest.some((status) => status.name === name)) { entry.cy.destroy(); entry.box.remove(); graphs.delete(name); }
      for (const status of latest) draw(status);
      problems(latest);
      showSite();
      document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      window.straitUpdates = (window.straitUpdates || 0) + 1;
    } catch (error) {
      document.getElementById('updated').textContent = 'feed ' + feed + ' failed: ' + error.message + '; retrying';
    }
    setTimeout(refresh, refreshMs);
  }
  refresh();
})();
`;

export const dashboardRoutes: FastifyPluginCallback<{ feed: string; title: string }> = (app, { feed, title }, done) => {
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(page(title, feed)));
  app.get('/dashboard/app.js', { schema: { hide: true } }, async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(APP));
  app.get('/dashboard/cytoscape.js', { schema: { hide: true } }, async (_request, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=3600').send(cytoscape()));
  done();
};
