// The official SDKs through KeyRelay, end to end, against the local mocks of mock_upstreams.mjs (never a real API):
//   @anthropic-ai/sdk  messages.create and messages.stream, baseURL http://127.0.0.1:PORT (as ANTHROPIC_BASE_URL)
//   openai             responses.create, plain and stream: true, baseURL http://127.0.0.1:PORT/v1 (as OPENAI_BASE_URL)
// each with a dummy client key. Checks what the SDKs get back (text, usage, streamed events in order, spread out)
// and what the mocks got (KeyRelay's key for that provider, in that provider's header; never the dummy key), then
// prints GET /_keyrelay/status and KeyRelay's log lines and checks them.
//
// node sdk_clients.mjs --binary KEYRELAY --modules DIR [--mode multi|single]
//   --modules  the folder where install.sh ran `npm ci` (it holds node_modules)
//   --mode     multi (default; also $KEYRELAY_SDK_MODE): one KeyRelay, providers [provider.openai] and
//              [provider.claude] in its --config file, routing by path.
//              single: today's one-upstream KeyRelay, one instance per mock:
//              --headless --config FILE --upstream MOCK --keys-file FILE --listen 127.0.0.1:0
// Prints one line per check and closes with "N passed, N failed"; exit 0 only when all passed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ANSWERS } from './mock_upstreams.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// --- arguments

function parseArguments(argv) {
    const options = {
        binary: process.env.KEYRELAY_BINARY,
        modules: process.env.KEYRELAY_SDK_MODULES,
        mode: process.env.KEYRELAY_SDK_MODE || 'multi',
    };
    for (let i = 0; i < argv.length; ++i) {
        const name = argv[i].replace(/^--/, '');
        if (!['binary', 'modules', 'mode'].includes(name) || i + 1 >= argv.length) {
            console.error(`usage: node sdk_clients.mjs --binary KEYRELAY --modules DIR [--mode multi|single]`);
            process.exit(2);
        }
        options[name] = argv[++i];
    }
    if (!options.binary || !options.modules || !['multi', 'single'].includes(options.mode)) {
        console.error('sdk_clients: --binary, --modules and --mode multi|single are required');
        process.exit(2);
    }
    return options;
}

const options = parseArguments(process.argv.slice(2));
const requireSdk = createRequire(path.join(path.resolve(options.modules), 'package.json'));
const anthropicModule = requireSdk('@anthropic-ai/sdk');
const openaiModule = requireSdk('openai');
const Anthropic = anthropicModule.Anthropic ?? anthropicModule.default;
const OpenAI = openaiModule.OpenAI ?? openaiModule.default;
const sdkVersion = (name) => JSON.parse(
    fs.readFileSync(path.join(options.modules, 'node_modules', name, 'package.json'), 'utf8')).version;

// Nothing of the tester's own setup: no real key or base URL from the environment reaches an SDK.
for (const name of Object.keys(process.env)) {
    if (/^(ANTHROPIC|OPENAI|CLAUDE)_/.test(name))
        delete process.env[name];
}

const DUMMY = { anthropic: 'sk-ant-dummy', openai: 'sk-openai-dummy' };
const randomHex = () => crypto.randomBytes(12).toString('hex');
const KEYS = { claude: `sk-ant-api03-krtest-${randomHex()}`, openai: `sk-proj-krtest-${randomHex()}` };
const SECRETS = [KEYS.claude, KEYS.openai, DUMMY.anthropic, DUMMY.openai];
const MODELS = { anthropic: 'claude-sonnet-4-5', openai: 'gpt-5-mini' };

// --- checks

const results = { passed: 0, failed: 0 };

async function check(name, body) {
    try {
        await body();
        ++results.passed;
        console.log(`ok - ${name}`);
        return true;
    } catch (error) {
        ++results.failed;
        const message = error instanceof assert.AssertionError ? error.message : (error?.stack ?? String(error));
        console.log(`FAIL - ${name}\n${message.replace(/^/gm, '    ')}`);
        return false;
    }
}

class Fatal extends Error {}

// --- child processes: every one is ended on the way out, whatever the way

const children = new Set();
function stopChildren(signal = 'SIGTERM') {
    for (const child of children) {
        try {
            child.kill(signal);
        } catch {
            // already gone
        }
    }
}
process.on('exit', () => stopChildren('SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
        console.log(`sdk_clients: ${signal}, stopping`);
        stopChildren('SIGKILL');
        process.exit(1);
    });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function startChild(name, command, args, env) {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.name = name;
    child.stdoutLines = [];
    child.stderrText = '';
    child.exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
            children.delete(child);
            child.exitCode_ = code;
            resolve({ code, signal });
        });
    });
    child.on('error', (error) => {
        child.stderrText += `spawn error: ${error.message}\n`;
    });
    let partial = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data) => {
        const lines = (partial + data).split('\n');
        partial = lines.pop();
        child.stdoutLines.push(...lines);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (data) => {
        child.stderrText += data;
    });
    return child;
}

/// Resolves with the first stdout line matching @p pattern; throws Fatal when the child exits first or time runs out.
async function waitForLine(child, pattern, seconds) {
    const deadline = Date.now() + seconds * 1000;
    let exited = false;
    child.exited.then(() => {
        exited = true;
    });
    while (Date.now() < deadline) {
        const line = child.stdoutLines.find((l) => pattern.test(l));
        if (line)
            return line;
        if (exited) {
            throw new Fatal(`${child.name} exited (code ${child.exitCode_}) before printing ${pattern}\n`
                + `stdout: ${child.stdoutLines.join('\n')}\nstderr: ${child.stderrText}`);
        }
        await sleep(25);
    }
    throw new Fatal(`timed out after ${seconds}s waiting for ${child.name} to print ${pattern}\nstderr: ${child.stderrText}`);
}

async function stopChild(child, seconds = 10) {
    if (!children.has(child))
        return child.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000);
    const result = await child.exited;
    clearTimeout(timer);
    return result;
}

// --- set-up

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'keyrelay-sdk-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

const childEnv = { ...process.env };
for (const name of ['http_proxy', 'https_proxy', 'all_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY'])
    delete childEnv[name];
Object.assign(childEnv, {
    XDG_CONFIG_HOME: path.join(work, 'config'), // nothing of the tester's own KeyRelay takes part
    KEYRELAY_KEYSTORE: 'file',
    no_proxy: '127.0.0.1,localhost',
    NO_PROXY: '127.0.0.1,localhost',
});

function writePrivate(file, text) {
    fs.writeFileSync(file, text, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
}

async function startMocks() {
    const mock = startChild('mock upstreams', process.execPath, [path.join(HERE, 'mock_upstreams.mjs')], childEnv);
    const line = await waitForLine(mock, /^\{.*"anthropic"/, 15);
    const ports = JSON.parse(line);
    return { process: mock, ports, url: (which) => `http://127.0.0.1:${ports[which]}` };
}

const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+) -> (.*)$/;

/// Starts `keyrelay --headless` with @p args; returns {process, port, line, config}.
async function startKeyRelay(name, args, configFile) {
    const child = startChild(name, options.binary, ['--headless', ...args], childEnv);
    const line = await waitForLine(child, LISTENING, 20);
    const [, port, rest] = line.match(LISTENING);
    return { name, process: child, port: Number(port), line, rest, configFile };
}

/// Refuses to go on when KeyRelay would forward anywhere but this machine: a binary that does not read the settings
/// given falls back to its default upstream, a real API. The start-up line and GET /_keyrelay/health name the
/// upstream; a multi-provider core may still name a default there, so in multi mode a non-loopback URL is taken as
/// "not read" only when neither the status lists providers nor the start-up line / health name both mocks.
async function assertLoopbackOnly(relay, mocks) {
    const get = (what) => fetch(`http://127.0.0.1:${relay.port}/_keyrelay/${what}`).then((r) => r.json()).catch(() => ({}));
    const health = await get('health');
    const status = await get('status');
    const shown = `${relay.rest} ${JSON.stringify(health)}`;
    const urlsIn = (text) => text.match(/\bhttps?:\/\/[^\s,;()"\\]+/g) ?? [];
    const isRemote = (u) => {
        try {
            return !['127.0.0.1', 'localhost', '[::1]'].includes(new URL(u).hostname);
        } catch {
            return false;
        }
    };
    let remote = urlsIn(shown).filter(isRemote);
    if (options.mode === 'multi') {
        const knowsProviders = Array.isArray(status.providers)
            || (shown.includes(mocks.url('openai')) && shown.includes(mocks.url('anthropic')));
        // The providers' own URLs, where the status shows them, are the mocks'.
        remote = knowsProviders ? urlsIn(JSON.stringify(status.providers ?? [])).filter(isRemote) : remote;
    }
    remote = [...new Set(remote)];
    if (remote.length > 0) {
        throw new Fatal(`${relay.name} would forward to ${remote.join(', ')}, not to the mocks: this keyrelay does `
            + `not read the settings given (${options.mode} mode).\n  ${relay.line}\n`
            + relay.process.stderrText.trim().replace(/^/gm, '  stderr: ') + '\n'
            + (options.mode === 'multi'
                ? '  The multi-provider settings ([providers], [provider.ID]) are not in this binary; nothing was '
                  + 'sent. --mode single (KEYRELAY_SDK_MODE=single) tests the single-upstream core.'
                : ''));
    }
}

function multiProviderConfig(mocks, keyFiles) {
    return [
        '[proxy]',
        'listen=127.0.0.1:0',
        '[providers]',
        'order=openai, claude',
        '[provider.openai]',
        'name=OpenAI mock',
        'kind=openai',
        `baseUrl=${mocks.url('openai')}`,
        `keysFile=${keyFiles.openai}`,
        '[provider.claude]',
        'name=Claude mock',
        'kind=anthropic',
        `baseUrl=${mocks.url('anthropic')}`,
        `keysFile=${keyFiles.claude}`,
        '',
    ].join('\n');
}

// --- the SDK calls and what they must get back

function anthropicClient(relay) {
    return new Anthropic({
        apiKey: DUMMY.anthropic,
        authToken: null,
        baseURL: `http://127.0.0.1:${relay.port}`,
        maxRetries: 0,
        timeout: 20_000,
    });
}

function openaiClient(relay) {
    return new OpenAI({
        apiKey: DUMMY.openai,
        organization: null,
        project: null,
        baseURL: `http://127.0.0.1:${relay.port}/v1`,
        maxRetries: 0,
        timeout: 20_000,
    });
}

/// The time from the first to the last event of @p arrivals: events sent ANSWERS.eventGapMs apart must not
/// arrive in one piece (a proxy that buffers the stream would bring them together).
function assertSpreadOut(arrivals, what) {
    const spread = arrivals.at(-1).at - arrivals[0].at;
    const minimum = ((arrivals.length - 1) * ANSWERS.eventGapMs) / 2;
    assert.ok(spread >= minimum, `${what}: ${arrivals.length} events arrived within ${spread.toFixed(0)} ms (sent `
        + `${ANSWERS.eventGapMs} ms apart; expected at least ${minimum} ms): the stream was held back`);
}

const anthropicStreamTypes = [
    'message_start', 'content_block_start', 'ping',
    ...ANSWERS.anthropic.streamDeltas.map(() => 'content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop',
];
const openaiStreamTypes = [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    ...ANSWERS.openai.streamDeltas.map(() => 'response.output_text.delta'),
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
];

async function anthropicChecks(relay, calls) {
    const client = anthropicClient(relay);
    const a = ANSWERS.anthropic;
    const request = {
        model: MODELS.anthropic,
        max_tokens: 64,
        messages: [{ role: 'user', content: 'Say hello.' }],
    };
    await check('anthropic: messages.create returns the mock\'s message, text and usage', async () => {
        calls.anthropic += 1;
        const message = await client.messages.create(request);
        assert.equal(message.id, 'msg_01');
        assert.equal(message.type, 'message');
        assert.equal(message.role, 'assistant');
        assert.equal(message.model, MODELS.anthropic);
        assert.deepEqual(message.content, [{ type: 'text', text: a.text }]);
        assert.equal(message.stop_reason, 'end_turn');
        assert.equal(message.stop_sequence, null);
        assert.deepEqual({ ...message.usage }, { ...a.usage });
    });
    await check('anthropic: messages.stream delivers the events in order, spread out, and the final message', async () => {
        calls.anthropic += 1;
        const stream = client.messages.stream(request);
        const arrivals = [];
        for await (const event of stream)
            arrivals.push({ type: event.type, event, at: performance.now() });
        const final = await stream.finalMessage();
        // The SDK passes on every event but ping (which it drops by design).
        assert.deepEqual(arrivals.map((e) => e.type), anthropicStreamTypes.filter((t) => t !== 'ping'));
        const deltas = arrivals.filter((e) => e.type === 'content_block_delta').map((e) => e.event.delta.text);
        assert.deepEqual(deltas, [...a.streamDeltas]);
        assert.equal(arrivals[0].event.message.id, 'msg_02');
        assert.equal(arrivals[0].event.message.usage.input_tokens, a.streamInputTokens);
        const messageDelta = arrivals.find((e) => e.type === 'message_delta').event;
        assert.equal(messageDelta.usage.output_tokens, a.streamOutputTokens);
        assert.equal(messageDelta.delta.stop_reason, 'end_turn');
        assert.deepEqual(final.content, [{ type: 'text', text: a.streamDeltas.join('') }]);
        assert.equal(final.usage.input_tokens, a.streamInputTokens);
        assert.equal(final.usage.output_tokens, a.streamOutputTokens);
        assert.equal(final.stop_reason, 'end_turn');
        assertSpreadOut(arrivals, 'anthropic stream');
    });
}

async function openaiChecks(relay, calls) {
    const client = openaiClient(relay);
    const o = ANSWERS.openai;
    const request = { model: MODELS.openai, input: 'Say hello.' };
    await check('openai: responses.create returns the mock\'s response, output_text and usage', async () => {
        calls.openai += 1;
        const response = await client.responses.create(request);
        assert.equal(response.id, 'resp_01');
        assert.equal(response.object, 'response');
        assert.equal(response.status, 'completed');
        assert.equal(response.model, MODELS.openai);
        assert.equal(response.output_text, o.text);
        assert.equal(response.output.length, 1);
        assert.equal(response.output[0].type, 'message');
        assert.deepEqual(response.output[0].content, [{ type: 'output_text', text: o.text, annotations: [] }]);
        assert.equal(response.usage.input_tokens, o.usage.input_tokens);
        assert.equal(response.usage.output_tokens, o.usage.output_tokens);
        assert.equal(response.usage.total_tokens, o.usage.total_tokens);
    });
    await check('openai: responses.create stream:true delivers the events in order, spread out, with usage', async () => {
        calls.openai += 1;
        const stream = await client.responses.create({ ...request, stream: true });
        const arrivals = [];
        for await (const event of stream)
            arrivals.push({ type: event.type, event, at: performance.now() });
        assert.deepEqual(arrivals.map((e) => e.type), openaiStreamTypes);
        assert.deepEqual(arrivals.map((e) => e.event.sequence_number), arrivals.map((_, i) => i));
        const deltas = arrivals.filter((e) => e.type === 'response.output_text.delta').map((e) => e.event.delta);
        assert.deepEqual(deltas, [...o.streamDeltas]);
        const completed = arrivals.at(-1).event.response;
        assert.equal(completed.status, 'completed');
        assert.equal(completed.output[0].content[0].text, o.streamDeltas.join(''));
        assert.equal(completed.usage.input_tokens, o.streamUsage.input_tokens);
        assert.equal(completed.usage.output_tokens, o.streamUsage.output_tokens);
        assert.equal(completed.usage.total_tokens, o.streamUsage.total_tokens);
        assertSpreadOut(arrivals, 'openai stream');
    });
}

// --- what the mocks received

const describe = (record) => `${record.method} ${record.path} headers ${JSON.stringify(record.headers)}`;

async function mockChecks(mocks, calls) {
    const { records, streamed, modelLists } = await fetch(`${mocks.url('openai')}/_mock/requests`).then((r) => r.json());
    console.log(`# model lists KeyRelay fetched on its own: Anthropic ${modelLists.anthropic.length}, OpenAI ${modelLists.openai.length}`);
    await check('model lists KeyRelay fetched itself carry each provider\'s own key, in its own header', () => {
        for (const r of modelLists.anthropic) {
            assert.equal(r.headers['x-api-key'], KEYS.claude, 'x-api-key of the Anthropic model list request');
            assert.ok(!('authorization' in r.headers), 'an Authorization header on the Anthropic model list request');
        }
        for (const r of modelLists.openai)
            assert.equal(r.headers.authorization, `Bearer ${KEYS.openai}`, 'Authorization of the OpenAI model list request');
    });
    console.log(`# the Anthropic mock got ${records.anthropic.length} request(s), the OpenAI mock ${records.openai.length}`);
    await check('anthropic mock: one POST /v1/messages per SDK call, model and stream flag intact', () => {
        assert.deepEqual(records.anthropic.map((r) => `${r.method} ${r.path}`),
            Array(calls.anthropic).fill('POST /v1/messages'));
        assert.deepEqual(records.anthropic.map((r) => [r.body.model, r.body.stream ?? false]),
            [[MODELS.anthropic, false], [MODELS.anthropic, true]].slice(0, calls.anthropic));
    });
    await check('anthropic mock: x-api-key is KeyRelay\'s claude key', () => {
        assert.ok(records.anthropic.length > 0, 'no request reached the Anthropic mock');
        for (const r of records.anthropic)
            assert.equal(r.headers['x-api-key'], KEYS.claude, `x-api-key of ${describe(r)}`);
    });
    await check('anthropic mock: no Authorization header carrying the dummy key', () => {
        for (const r of records.anthropic) {
            assert.ok(!(r.headers.authorization ?? '').includes(DUMMY.anthropic),
                `Authorization carries the client's dummy key: ${describe(r)}`);
        }
    });
    await check('anthropic mock: anthropic-version header present', () => {
        assert.ok(records.anthropic.length > 0, 'no request reached the Anthropic mock');
        for (const r of records.anthropic)
            assert.match(r.headers['anthropic-version'] ?? '', /^\d{4}-\d{2}-\d{2}$/, `anthropic-version of ${describe(r)}`);
    });
    await check('anthropic mock: streamed the documented event sequence (with ping)', () => {
        assert.deepEqual(streamed.anthropic, [anthropicStreamTypes]);
    });
    await check('openai mock: one POST /v1/responses per SDK call, model and stream flag intact', () => {
        assert.deepEqual(records.openai.map((r) => `${r.method} ${r.path}`), Array(calls.openai).fill('POST /v1/responses'));
        assert.deepEqual(records.openai.map((r) => [r.body.model, r.body.stream ?? false]),
            [[MODELS.openai, false], [MODELS.openai, true]].slice(0, calls.openai));
    });
    await check('openai mock: Authorization is "Bearer <KeyRelay\'s openai key>"', () => {
        assert.ok(records.openai.length > 0, 'no request reached the OpenAI mock');
        for (const r of records.openai)
            assert.equal(r.headers.authorization, `Bearer ${KEYS.openai}`, `Authorization of ${describe(r)}`);
    });
    await check('openai mock: streamed the documented event sequence', () => {
        assert.deepEqual(streamed.openai, [openaiStreamTypes]);
    });
    await check('neither mock ever saw a client\'s dummy key, nor the other provider\'s key', () => {
        const seen = (records, needles) => records.flatMap((r) => Object.entries(r.headers)
            .filter(([, v]) => needles.some((n) => String(v).includes(n))).map(([k, v]) => `${r.path} ${k}: ${v}`));
        assert.deepEqual(seen(records.anthropic, [DUMMY.anthropic, DUMMY.openai, KEYS.openai]), [], 'the Anthropic mock');
        assert.deepEqual(seen(records.openai, [DUMMY.anthropic, DUMMY.openai, KEYS.claude]), [], 'the OpenAI mock');
    });
}

// --- KeyRelay's own view: GET /_keyrelay/status and the log

async function statusChecks(relay, expected) {
    const url = `http://127.0.0.1:${relay.port}/_keyrelay/status`;
    // The records reach the key pool as the exchanges finish: give them a moment.
    let status = null;
    let text = '';
    const totalRequests = (s) => (Array.isArray(s?.keys) ? s.keys.reduce((n, k) => n + (k.requests ?? 0), 0) : 0);
    for (let i = 0; i < 100; ++i) {
        const response = await fetch(url);
        text = await response.text();
        try {
            status = JSON.parse(text);
        } catch {
            status = null;
        }
        if (totalRequests(status) >= expected.total)
            break;
        await sleep(50);
    }
    console.log(`# ${relay.name}: GET /_keyrelay/status\n${JSON.stringify(status ?? text, null, 2).replace(/^/gm, '#   ')}`);
    await check(`${relay.name}: /_keyrelay/status lists the keys (never whole) with their requests`, () => {
        assert.ok(status && typeof status === 'object', `not JSON: ${text}`);
        assert.ok(Array.isArray(status.keys) && status.keys.length > 0, 'keys: expected a non-empty array');
        for (const key of status.keys) {
            assert.equal(typeof key.id, 'string');
            assert.equal(typeof key.masked, 'string');
            assert.equal(typeof key.state, 'string');
            assert.equal(typeof key.requests, 'number');
        }
        assert.ok(totalRequests(status) >= expected.total,
            `the keys' requests add up to ${totalRequests(status)}, expected at least ${expected.total}`);
        assert.equal(typeof status.today, 'object');
        assert.equal(typeof status.activeRequests, 'number');
        for (const secret of SECRETS)
            assert.ok(!text.includes(secret), `the status shows a whole key: ${secret}`);
    });

    // Per-provider data: asserted when the status has it (the multi-provider core adds it).
    if (status && status.providers !== undefined) {
        await check(`${relay.name}: /_keyrelay/status providers: one {id, ...} per configured provider`, () => {
            assert.ok(Array.isArray(status.providers), 'providers: expected an array');
            for (const provider of status.providers) {
                assert.ok(provider && typeof provider === 'object', `provider entry ${JSON.stringify(provider)}`);
                assert.equal(typeof provider.id, 'string', `provider id in ${JSON.stringify(provider)}`);
            }
            const ids = status.providers.map((p) => p.id);
            assert.deepEqual([...ids].sort(), Object.keys(expected.byProvider).sort(), 'provider ids');
            for (const provider of status.providers) {
                if (typeof provider.requests === 'number') {
                    assert.ok(provider.requests >= expected.byProvider[provider.id],
                        `provider ${provider.id}: requests ${provider.requests}, expected at least `
                        + `${expected.byProvider[provider.id]}`);
                }
            }
        });
    } else {
        console.log(`# ${relay.name}: /_keyrelay/status has no "providers" (a single-upstream core)`);
    }
}

async function logChecks(relay, expected) {
    // A request's log line is written when it finishes: wait for all of them.
    const lineFor = (p) => new RegExp(`^\\S+ POST ${p.replace(/\//g, '\\/')} .*status=200\\b`);
    const count = (p) => relay.process.stdoutLines.filter((l) => lineFor(p).test(l)).length;
    for (let i = 0; i < 100 && Object.entries(expected.byPath).some(([p, n]) => count(p) < n); ++i)
        await sleep(50);
    console.log(`# ${relay.name}: stdout\n${relay.process.stdoutLines.map((l) => `#   ${l}`).join('\n')}`);
    if (relay.process.stderrText.trim())
        console.log(`# ${relay.name}: stderr\n${relay.process.stderrText.trim().replace(/^/gm, '#   ')}`);
    await check(`${relay.name}: a status=200 log line per SDK call, no key in the output`, () => {
        for (const [p, n] of Object.entries(expected.byPath))
            assert.equal(count(p), n, `log lines "POST ${p} ... status=200"`);
        const output = relay.process.stdoutLines.join('\n') + relay.process.stderrText;
        for (const secret of SECRETS)
            assert.ok(!output.includes(secret), `KeyRelay's output shows a whole key: ${secret}`);
    });
}

// --- the run

async function main() {
    console.log(`# mode ${options.mode}; node ${process.version}; @anthropic-ai/sdk ${sdkVersion('@anthropic-ai/sdk')}; `
        + `openai ${sdkVersion('openai')}; ${options.binary}`);
    const mocks = await startMocks();
    console.log(`# mocks: anthropic ${mocks.url('anthropic')}, openai ${mocks.url('openai')}`);
    const keyFiles = { claude: path.join(work, 'claude-keys.txt'), openai: path.join(work, 'openai-keys.txt') };
    writePrivate(keyFiles.claude, `${KEYS.claude}\n`);
    writePrivate(keyFiles.openai, `${KEYS.openai}\n`);
    const calls = { anthropic: 0, openai: 0 };
    const relays = []; // [relay, {total, byPath, byProvider}]
    if (options.mode === 'multi') {
        const config = path.join(work, 'keyrelay.ini');
        writePrivate(config, multiProviderConfig(mocks, keyFiles));
        console.log(`# ${config}\n${fs.readFileSync(config, 'utf8').trimEnd().replace(/^/gm, '#   ')}`);
        // --listen as well: a core that does not read proxy/listen must not take port 9000.
        const relay = await startKeyRelay('keyrelay', ['--config', config, '--listen', '127.0.0.1:0'], config);
        console.log(`# ${relay.line}`);
        await assertLoopbackOnly(relay, mocks);
        await anthropicChecks(relay, calls);
        await openaiChecks(relay, calls);
        relays.push([relay, {
            total: calls.anthropic + calls.openai,
            byPath: { '/v1/messages': calls.anthropic, '/v1/responses': calls.openai },
            byProvider: { claude: calls.anthropic, openai: calls.openai },
        }]);
    } else {
        for (const [provider, kind] of [['claude', 'anthropic'], ['openai', 'openai']]) {
            const dir = path.join(work, provider);
            fs.mkdirSync(dir, { mode: 0o700 });
            const config = path.join(dir, 'keyrelay.ini');
            writePrivate(config, '[proxy]\nlistenHost=127.0.0.1\nlistenPort=0\n');
            const relay = await startKeyRelay(`keyrelay[${provider}]`, ['--config', config, '--upstream',
                mocks.url(kind), '--keys-file', keyFiles[provider], '--listen', '127.0.0.1:0'], config);
            console.log(`# ${relay.line}`);
            await assertLoopbackOnly(relay, mocks);
            const before = calls[kind];
            await (kind === 'anthropic' ? anthropicChecks : openaiChecks)(relay, calls);
            const made = calls[kind] - before;
            relays.push([relay, {
                total: made,
                byPath: { [kind === 'anthropic' ? '/v1/messages' : '/v1/responses']: made },
                byProvider: { [provider]: made },
            }]);
        }
    }
    await mockChecks(mocks, calls);
    for (const [relay, expected] of relays) {
        await statusChecks(relay, expected);
        await logChecks(relay, expected);
    }
    for (const [relay] of relays) {
        await check(`${relay.name}: stops with exit code 0 on SIGTERM`, async () => {
            const { code, signal } = await stopChild(relay.process);
            assert.equal(signal, null, `ended by ${signal}`);
            assert.equal(code, 0);
        });
    }
    await stopChild(mocks.process);
}

let fatal = false;
try {
    await main();
} catch (error) {
    fatal = true;
    console.log(`FAIL - ${error instanceof Fatal ? error.message : error?.stack ?? error}`);
    ++results.failed;
} finally {
    stopChildren('SIGTERM');
    await Promise.race([Promise.all([...children].map((c) => c.exited)), sleep(5000)]);
}
console.log(`${results.passed} passed, ${results.failed} failed`);
process.exit(results.failed === 0 && !fatal ? 0 : 1);
