// Unit tests of the dashboard's pure pieces, in Node (no browser): server-sent-event framing
// across arbitrary chunk boundaries, and the configuration view's key flattening and source
// lookup (the same key format as `kai config show --sources`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseParser } from '../ui/lib/sse.js';
import { flatten, sourceOf } from '../ui/parts/settings-config.js';

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
