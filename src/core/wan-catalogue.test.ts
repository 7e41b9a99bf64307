import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WanCatalogue } from './wan-catalogue.ts';
import type { SiteEntry } from '../protocol/messages.ts';

function entry(site: number, edges: number[], versionMs = 1): SiteEntry {
  return { site, locators: [{ host: `10.0.${site}.1`, port: 10334 }], receivers: [], edges, version: [versionMs, `locator-${site}`] };
}

function catalogue(graph: Record<number, number[]>, at = 1): WanCatalogue {
  const result = new WanCatalogue(at);
  result.setOwn(entry(at, graph[at] ?? []));
  result.merge(Object.entries(graph).map(([site, edges]) => entry(Number(site), edges)));
  return result;
}

/** Delivers an event from `origin` by the forwarding rule; counts arrivals per site. */
function deliver(graph: Record<number, number[]>, origin: number): Map<number, number> {
  const routing = catalogue(graph);
  const arrivals = new Map<number, number>([[origin, 1]]);
  const queue = [origin];
  while (queue.length > 0) {
    const site = queue.shift()!;
    for (const to of graph[site] ?? []) {
      if (!routing.forwards(origin, site, to)) continue;
      arrivals.set(to, (arrivals.get(to) ?? 0) + 1);
      queue.push(to);
    }
  }
  return arrivals;
}

function reachable(graph: Record<number, number[]>, origin: number): Set<number> {
  const seen = new Set([origin]);
  const queue = [origin];
  while (queue.length > 0) for (const to of graph[queue.shift()!] ?? []) if (!seen.has(to)) { seen.add(to); queue.push(to); }
  return seen;
}

test('ring, mesh, chain, hub/spoke and DAG: every reachable site gets each event exactly once', () => {
  const graphs: Record<string, Record<number, number[]>> = {
    ring: { 1: [2], 2: [3], 3: [1] },
    mesh: { 1: [2, 3], 2: [1, 3], 3: [1, 2] },
    chain: { 1: [2], 2: [3], 3: [] },
    hub: { 1: [2, 3, 4], 2: [1], 3: [1], 4: [1] },
    dag: { 1: [2, 3], 2: [4], 3: [4], 4: [] },
  };
  for (const [name, graph] of Object.entries(graphs)) {
    for (const origin of Object.keys(graph).map(Number)) {
      const arrivals = deliver(graph, origin);
      assert.deepEqual([...arrivals.keys()].sort(), [...reachable(graph, origin)].sort(), `${name} from ${origin}`);
      for (const [site, count] of arrivals) assert.equal(count, 1, `${name} from ${origin}: site ${site} got it ${count} times`);
    }
  }
});

test('any directed graph: exactly once to every reachable site, never back to the origin', () => {
  fc.assert(fc.property(
    fc.integer({ min: 2, max: 7 }).chain((sites) => fc.tuple(fc.constant(sites), fc.array(fc.tuple(fc.integer({ min: 1, max: sites }), fc.integer({ min: 1, max: sites })), { maxLength: 20 }))),
    ([sites, pairs]) => {
      const graph: Record<number, number[]> = {};
      for (let site = 1; site <= sites; site++) graph[site] = [];
      for (const [from, to] of pairs) if (from !== to && !graph[from]!.includes(to)) graph[from]!.push(to);
      for (let origin = 1; origin <= sites; origin++) {
        const arrivals = deliver(graph, origin);
        assert.deepEqual([...arrivals.keys()].sort(), [...reachable(graph, origin)].sort());
        for (const count of arrivals.values()) assert.equal(count, 1);
      }
    },
  ));
});

test('merge keeps the newest entry per site and ignores entries about our own site', () => {
  const own = new WanCatalogue(1);
  own.setOwn(entry(1, [2]));
  assert.equal(own.merge([entry(1, [3], 99)]), false);
  assert.deepEqual(own.get(1)!.edges, [2]);
  assert.equal(own.merge([entry(2, [1], 5)]), true);
  assert.equal(own.merge([entry(2, [3], 4)]), false);
  assert.deepEqual(own.get(2)!.edges, [1]);
  assert.equal(own.merge([entry(2, [3], 6)]), true);
  assert.deepEqual(own.get(2)!.edges, [3]);
});
