// Starts what the browser tests and benchmarks talk to: the repo's fake OpenAI-compatible
// server (`kai-llm` example `fake-llm`, the real SSE wire format) and a real `kai serve` on a
// free loopback port in a temp data dir, initialized with a known passphrase and no unlock key
// file, so it starts sealed. Binaries come from the cargo target dir ($KAI_BIN and
// $FAKE_LLM_BIN override).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PASSPHRASE = 'e2e vault passphrase';
export const PASSWORD = 'e2e owner password';

function targetDir() {
  return process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
}

function binary(envName, rel, profile) {
  if (process.env[envName]) return process.env[envName];
  const want = path.join(targetDir(), profile, rel);
  if (!existsSync(want)) throw new Error(`${want} is missing: run \`cargo build --workspace --all-features --bin kai --example fake-llm\` (or set ${envName})`);
  return want;
}

/** Resolves with the first stdout line of `child`, parsed as JSON. */
function firstLine(child, what, ms = 60_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${ms} ms`)), ms);
    const lines = readline.createInterface({ input: child.stdout });
    const queue = [];
    let waiting = null;
    lines.on('line', (line) => {
      if (waiting) { const w = waiting; waiting = null; w(line); } else queue.push(line);
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited with ${code}`)); });
    const next = () => new Promise((r) => { if (queue.length) r(queue.shift()); else waiting = r; });
    next().then((line) => { clearTimeout(timer); resolve({ first: JSON.parse(line), next }); }, reject);
  });
}

/**
 * The fake model server; `send(cmd)` scripts its next reply and waits for the ack;
 * `tasks(plan)` makes it answer as the task agents do: the planner with `plan`, the reviewer
 * with an accept, an executor's step with `done: <instruction>` (other calls echo as before).
 */
async function startFake(profile, chunkDelayMs) {
  const child = spawn(binary('FAKE_LLM_BIN', 'examples/fake-llm', profile), ['--chunk-delay-ms', String(chunkDelayMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const { first, next } = await firstLine(child, 'fake-llm');
  let chain = Promise.resolve();
  const send = (cmd) => {
    chain = chain.then(async () => {
      child.stdin.write(`${JSON.stringify(cmd)}\n`);
      const ack = JSON.parse(await next());
      if (!ack.ok) throw new Error(`fake-llm refused ${JSON.stringify(cmd)}: ${ack.error}`);
    });
    return chain;
  };
  const tasks = (plan) => send({ tasks: { plan } });
  return { child, baseUrl: first.base_url, send, tasks, stop: () => { child.stdin.end(); child.kill('SIGTERM'); } };
}

/**
 * Starts the stack. `opts.profile`: "debug" (default) or "release"; `opts.chunkDelayMs`: pause
 * between streamed chunks of the fake model; `opts.unlocked`: start with an unlock key file.
 */
export async function startStack(opts = {}) {
  const profile = opts.profile || process.env.KAI_PROFILE || 'debug';
  const fake = await startFake(profile, opts.chunkDelayMs ?? 40);
  const dir = mkdtempSync(path.join(tmpdir(), 'kai-web-'));
  mkdirSync(path.join(dir, 'etc'));
  const configFile = path.join(dir, 'config.toml');
  let config = `[node]
name = "e2e"
[memory]
embedding_provider = ""
[[providers]]
name = "fake"
kind = "openai"
base_url = "${fake.baseUrl}"
chat_model = "fake-chat"
prompt_price = 1.5
completion_price = 2.0
[[personas]]
name = "assistant"
description = "A fake model that echoes"
system_prompt = "You are a test persona."
providers = ["fake"]
[[personas]]
name = "terse"
description = "Another persona on the same fake"
providers = ["fake"]
`;
  // KAI_TEST_DATABASE=postgres: a schema of its own on the test server (like the Rust harness).
  let storage = '';
  let dropSchema = () => {};
  if (process.env.KAI_TEST_DATABASE === 'postgres') {
    const pg = process.env.KAI_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `kai_tweb_${process.pid}_${Date.now()}`;
    const made = spawnSync('psql', [pg, '-qc', `CREATE SCHEMA ${schema}`], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`cannot create schema ${schema}: ${made.stderr}`);
    storage = `[storage]\nurl = "${pg}?options[search_path]=${schema}"\n`;
    dropSchema = () => spawnSync('psql', [pg, '-qc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`]);
  }
  config = storage + config;
  writeFileSync(configFile, config);
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    KAI_DATA_DIR: path.join(dir, 'data'),
    KAI_CONFIG: configFile,
    KAI_SYSTEM_CONFIG_DIR: path.join(dir, 'etc'),
    KAI_VAULT_PASSPHRASE: PASSPHRASE,
    KAI_OWNER_PASSWORD: PASSWORD,
    KAI_TEST_INSECURE_FAST_KDF: '1',
    NO_COLOR: '1',
    ...(opts.unlocked ? { KAI_VAULT_KEY_FILE: '1' } : {}),
    ...(opts.env || {}),
  };
  const kai = spawn(binary('KAI_BIN', 'kai', profile), ['--json', 'serve', '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  kai.stderr.on('data', (d) => { log += d; });
  let first;
  try {
    ({ first } = await firstLine(kai, 'kai serve'));
  } catch (err) {
    fake.stop();
    throw new Error(`${err.message}\n${log}`);
  }
  const url = `http://${first.listening}`;
  const adminToken = readFileSync(path.join(dir, 'data', 'admin.token'), 'utf8').trim();
  const api = async (method, p, body, token = adminToken) => {
    const resp = await fetch(url + p, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let data = text;
    try { data = JSON.parse(text); } catch { /* text */ }
    return { status: resp.status, data };
  };
  return {
    url, dir, configFile, config, adminToken, fake, api,
    log: () => log,
    async stop() {
      const exited = new Promise((r) => kai.once('exit', r));
      kai.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      fake.stop();
      dropSchema();
      if (!process.env.KAI_KEEP_DIR) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Chromium from Debian, as the project's test setup installs it. */
export const CHROMIUM = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
};
