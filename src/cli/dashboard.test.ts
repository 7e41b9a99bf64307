// The controller's dashboard in a real headless Chromium (Debian's, driven by playwright-core):
// after a topology of three sites is applied, the page draws three sites and three edges with
// cytoscape, updates without a reload, and an edge's queue depth changes when the test writes
// while that edge's sender is paused. A screenshot is saved beside the test's workspace
// (STRAIT_DASHBOARD_SCREENSHOT names another path).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { assertOk, cleanupWorkspace, freePort, memberDir, root, start, strait, type Started } from './cli-process.test-support.ts';

const CHROMIUM = process.env['STRAIT_CHROMIUM'] ?? '/usr/bin/chromium';
const WAIT_MS = 30_000;
let browser: Browser | undefined;

after(async () => {
  await browser?.close();
  cleanupWorkspace();
});

function at(member: Started): string {
  return `${member.address.host}[${member.address.port}]`;
}

describe('the dashboard', () => {
  it('draws the sites and edges of a topology, live, in Chromium', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
    const controller = await start('controller', 'dash-controller', ['--port', '0']);
    const url = `http://${controller.address.host}:${controller.address.port}`;
    const sites: { name: string; locator: string; admin: string; port: number }[] = [];
    for (const [index, name] of ['east', 'west', 'north'].entries()) {
      const locator = await start('locator', `dash-${name}-locator`, ['--port', '0', '--site-id', String(index + 1), '--http-port', '0']);
      await start('server', `dash-${name}-server`, ['--server-port', '0', '--http-port', '0', '--locators', at(locator)]);
      sites.push({ name, locator: at(locator), admin: `http://${locator.httpAddress.host}:${locator.httpAddress.port}`, port: await freePort() });
    }
    const file = join(memberDir('dash-topologies'), 'ring.json');
    writeFileSync(file, JSON.stringify({
      name: 'ring',
      sites: Object.fromEntries(sites.map((site) => [site.name, { admin: site.admin, receiver: { 'start-port': site.port, 'end-port': site.port } }])),
      edges: [['east', 'west'], ['west', 'north'], ['north', 'east']],
      regions: { orders: { type: 'replicate' } },
    }));
    assertOk(await strait(['topology', 'apply', '-f', file, '--controller', url]), 'topology apply');

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(url);
    // Page-side code is passed as text: it runs in the browser, not under Node's types.
    type Graph = { nodes: number; edges: number; labels: string[] };
    const graph = (): Promise<Graph | null> => page.evaluate(`(() => {
      const cy = window.straitGraphs && window.straitGraphs.ring;
      if (cy === undefined) return null;
      return { nodes: cy.nodes().length, edges: cy.edges().length, labels: cy.edges().map((edge) => edge.data('source') + '>' + edge.data('target') + ': ' + edge.data('label')) };
    })()`);
    await page.waitForFunction('window.straitGraphs !== undefined && window.straitGraphs.ring !== undefined', undefined, { timeout: WAIT_MS });
    let drawn = await graph();
    assert.deepEqual([drawn?.nodes, drawn?.edges], [3, 3], 'three sites, three edges');
    await page.waitForFunction("document.querySelectorAll('#problems li#no-problems').length === 1", undefined, { timeout: WAIT_MS });

    // Pause east's sender, then write at east: the east → west edge's queue grows on the page.
    const east = sites[0]!;
    assertOk(await strait(['pause', 'gateway-sender', '--id', 'ring--to-west', '--locator', east.locator]), 'pause');
    const updatesBefore = await page.evaluate<number>('window.straitUpdates');
    for (let index = 0; index < 5; index++) assertOk(await strait(['put', '--locator', east.locator, '--region', 'orders', '--key', `k${index}`, '--value', 'v']), 'put');
    await page.waitForFunction(`window.straitGraphs.ring.edges().filter((edge) => String(edge.data('source')).endsWith('/east') && Number(edge.data('queue')) === 5).length === 1`, undefined, { timeout: WAIT_MS });
    drawn = await graph();
    assert.ok(drawn!.labels.some((label) => label.startsWith('ring/east>ring/west: paused · q 5')), drawn!.labels.join('\n'));
    assert.ok(await page.evaluate<number>('window.straitUpdates') > updatesBefore, 'the page updated without a reload');
    await page.waitForFunction("document.getElementById('problems').textContent.includes('east → west is paused; 5 events wait')", undefined, { timeout: WAIT_MS });

    // A click on a site shows its members and regions.
    const position = await page.evaluate<{ x: number; y: number }>(`(() => {
      const cy = window.straitGraphs.ring;
      const node = cy.getElementById('ring/west').renderedPosition();
      const box = cy.container().getBoundingClientRect();
      return { x: box.left + node.x, y: box.top + node.y };
    })()`);
    await page.mouse.click(position.x, position.y);
    await page.waitForFunction("document.getElementById('site').textContent.includes('orders')", undefined, { timeout: WAIT_MS });
    assert.match((await page.textContent('#site'))!, /west \(id 2\).*servers1.*dash-west-server \(server\)/s);

    const screenshot = process.env['STRAIT_DASHBOARD_SCREENSHOT'] ?? join(root, 'dashboard.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    const siteScreenshot = screenshot.replace(/\.png$/, '-site.png');
    assert.ok(statSync(screenshot).size > 10_000, `a screenshot at ${screenshot}`);
    assertOk(await strait(['resume', 'gateway-sender', '--id', 'ring--to-west', '--locator', east.locator]), 'resume');

    // Every locator serves the same page for its own site and the WAN it knows.
    await page.goto(east.admin);
    await page.waitForFunction(`window.straitGraphs !== undefined && window.straitGraphs.site_1_WAN !== undefined
      && window.straitGraphs.site_1_WAN.nodes().length === 3 && window.straitGraphs.site_1_WAN.edges().length === 3`, undefined, { timeout: WAIT_MS });
    const labels = await page.evaluate<string[]>(`window.straitGraphs.site_1_WAN.edges().map((edge) => edge.data('id') + ' ' + edge.data('state'))`);
    assert.ok(labels.includes('site 1 WAN/site 1>site 2 connected'), labels.join('\n'));
    await page.screenshot({ path: siteScreenshot, fullPage: true });
  });
});
