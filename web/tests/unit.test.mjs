// Unit tests of the dashboard's pure pieces, in Node (no browser): server-sent-event framing
// across arbitrary chunk boundaries, the configuration view's key flattening and source
// lookup (the same key format as `kai config show --sources`), the task graph's dependency
// columns and plan choice, the memory graph's circle, and the agent lifecycle's legal actions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseParser } from '../ui/lib/sse.js';
import { flatten, sourceOf } from '../ui/parts/settings-config.js';
import { columns, circle } from '../ui/lib/layout.js';
import { currentPlan, stepState, taskActions } from '../ui/lib/taskgraph.js';
import { legalActions, definitionOf, toYaml } from '../ui/lib/lifecycle.js';

function parseAll(chunks) {
  const got = [];
  const p = sseParser((name, data) => got.push([name, data]));
  for (const c of chunks) p.push(c);
  p.end();
  return got;
}

test('SSE frames survive any split, CRLF, comments and multi-line data', () => {
  const stream = 'event: message\ndata: {"id":"m1"}\n\n: keep-alive\n\nevent: delta\r\ndata: {"text":"He"}\r\n\r\nevent: delta\ndata: {"text":"llo"}\n\ndata: line one\ndata: line two\n\nevent: done\ndata: {"id":"m2"}\n\n';
  const want = [
    ['message', { id: 'm1' }],
    ['delta', { text: 'He' }],
    ['delta', { text: 'llo' }],
    ['message', 'line one\nline two'],
    ['done', { id: 'm2' }],
  ];
  assert.deepEqual(parseAll([stream]), want);
  for (let size = 1; size <= 7; size += 1) {
    const chunks = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.slice(i, i + size));
    assert.deepEqual(parseAll(chunks), want, `split every ${size} characters`);
  }
});

test('an unterminated last frame is delivered at the end; empty frames are not', () => {
  assert.deepEqual(parseAll(['event: error\ndata: {"code":"x"}']), [['error', { code: 'x' }]]);
  assert.deepEqual(parseAll(['\n\n\n\n', ': only a comment\n\n']), []);
});

test('configuration keys flatten like provenance names them', () => {
  const rows = flatten({
    node: { name: 'n' },
    providers: [{ name: 'fake', kind: 'openai' }],
    limits: {},
    tags: ['a', 'b'],
  });
  assert.deepEqual(rows, [
    ['node.name', 'n'],
    ['providers[fake].name', 'fake'],
    ['providers[fake].kind', 'openai'],
    ['limits', {}],
    ['tags', ['a', 'b']],
  ]);
});

test('a key takes the source of its nearest set ancestor', () => {
  const sources = { 'providers[fake]': 'user file', node: 'env', 'node.name': 'flag' };
  assert.equal(sourceOf(sources, 'providers[fake].kind'), 'user file');
  assert.equal(sourceOf(sources, 'node.name'), 'flag');
  assert.equal(sourceOf(sources, 'node.other'), 'env');
  assert.equal(sourceOf(sources, 'bus.backend'), 'built-in defaults');
});

test('task graph columns follow the longest dependency chain', () => {
  const steps = [
    { id: 'gather', depends_on: [] },
    { id: 'outline' },
    { id: 'draft', depends_on: ['gather', 'outline'] },
    { id: 'check', depends_on: ['gather'] },
    { id: 'publish', depends_on: ['draft', 'check'] },
  ];
  assert.deepEqual(columns(steps), [['gather', 'outline'], ['draft', 'check'], ['publish']]);
  // Order in the plan does not matter; a late dependency still pushes its step right.
  assert.deepEqual(columns([{ id: 'b', depends_on: ['a'] }, { id: 'a' }]), [['a'], ['b']]);
  assert.deepEqual(columns([]), []);
  assert.deepEqual(columns(undefined), []);
});

test('task graph columns survive unknown, self and cyclic dependencies', () => {
  assert.deepEqual(columns([{ id: 'a', depends_on: ['a', 'ghost'] }]), [['a']]);
  const cyc = columns([{ id: 'x', depends_on: ['y'] }, { id: 'y', depends_on: ['x'] }, { id: 'z', depends_on: ['x'] }]);
  assert.deepEqual(cyc.flat().sort(), ['x', 'y', 'z'], `every step is placed once: ${JSON.stringify(cyc)}`);
});

test('the task view draws the approved plan, else the newest proposal', () => {
  const plans = [
    { version: 1, status: 'superseded' },
    { version: 2, status: 'approved' },
    { version: 3, status: 'proposed' },
  ];
  assert.equal(currentPlan({ plan_version: 2 }, plans).version, 2);
  assert.equal(currentPlan({ plan_version: 0 }, plans).version, 3);
  assert.equal(currentPlan({ plan_version: 0 }, [{ version: 1, status: 'rejected' }]).version, 1);
  assert.equal(currentPlan({ plan_version: 0 }, []), null);
  assert.equal(stepState('a', [{ step_id: 'a', status: 'running' }]), 'running');
  assert.equal(stepState('b', [{ step_id: 'a', status: 'running' }]), 'pending');
  assert.deepEqual(taskActions('running'), { cancel: true, retry: false });
  assert.deepEqual(taskActions('failed'), { cancel: false, retry: true });
  assert.deepEqual(taskActions('succeeded'), { cancel: false, retry: false });
});

test('circle layout: evenly spaced, first on top', () => {
  assert.deepEqual(circle(1, 50, 50, 40), [{ x: 50, y: 50 }]);
  assert.deepEqual(circle(4, 50, 50, 40), [{ x: 50, y: 10 }, { x: 90, y: 50 }, { x: 50, y: 90 }, { x: 10, y: 50 }]);
  assert.equal(circle(0, 0, 0, 1).length, 0);
});

test('agent lifecycle: only legal actions; built-ins are never modified or terminated', () => {
  assert.deepEqual(legalActions('created', false), ['initialize', 'terminate']);
  assert.deepEqual(legalActions('initialized', false), ['activate', 'terminate']);
  assert.deepEqual(legalActions('active', false), ['suspend', 'modify', 'terminate']);
  assert.deepEqual(legalActions('active', true), ['suspend']);
  assert.deepEqual(legalActions('suspended', true), ['resume']);
  assert.deepEqual(legalActions('modified', false), ['apply', 'terminate']);
  assert.deepEqual(legalActions('terminated', false), []);
  assert.deepEqual(legalActions('bogus', false), []);
});

test('an agent manifest becomes an editable definition in YAML', () => {
  const m = {
    id: 'kExecutor:researcher', class: 'kExecutor', name: 'researcher', version: '1.0.0', type: 'specialist',
    description: 'Looks "things" up', instructions: 'Find facts.\nCite them.', persona: '', state: 'active', did: 'did:key:z',
    capabilities: [], triggers: [], hooks: [], permissions: { tools: ['http_fetch'] }, metadata: {},
  };
  const def = definitionOf(m);
  assert.deepEqual(def, { name: 'kExecutor:researcher', version: '1.0.0', type: 'specialist', description: 'Looks "things" up', instructions: 'Find facts.\nCite them.', permissions: { tools: ['http_fetch'] } });
  assert.equal(toYaml(def), [
    'name: "kExecutor:researcher"', 'version: "1.0.0"', 'type: "specialist"', 'description: "Looks \\"things\\" up"',
    'instructions: "Find facts.\\nCite them."', 'permissions:', '  tools: ["http_fetch"]'].join('\n'));
  assert.equal(toYaml({ hooks: [{ on: 'start', run: 'x' }], n: 1 }), 'hooks:\n  - on: "start"\n    run: "x"\nn: 1');
});
