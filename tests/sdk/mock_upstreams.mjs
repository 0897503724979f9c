// Mock upstreams for the SDK tests: the Anthropic Messages API and the OpenAI Responses API, one port each, both
// on 127.0.0.1 with ephemeral ports. Plain node:http, no framework, no dependency.
//
//   node mock_upstreams.mjs     prints {"anthropic":PORT,"openai":PORT} on its first stdout line, then serves
//                               until its standard input closes (the parent went away) or SIGTERM/SIGINT.
//
// Each mock records every request it gets (method, path, headers, body) and answers what the real API answers
// for a well-formed request, whatever the credentials: the test, not the mock, decides which headers are right,
// so that a wrong header shows up as a named failed check instead of an SDK error. GET /_mock/requests on
// either port returns both mocks' records and the exact event sequences they streamed; POST /_mock/reset
// clears them. The answers are fixed (see ANSWERS, exported for the test).
import http from 'node:http';
import { pathToFileURL } from 'node:url';

export const ANSWERS = Object.freeze({
    anthropic: Object.freeze({
        text: 'Hello from the Anthropic mock.',
        // The non-streamed message's usage, exactly as sent.
        usage: Object.freeze({
            input_tokens: 12,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: 6,
        }),
        streamDeltas: Object.freeze(['Streamed ', 'hello ', 'from ', 'the ', 'Anthropic mock.']),
        streamInputTokens: 12,
        streamOutputTokens: 15, // message_delta's cumulative usage.output_tokens
    }),
    openai: Object.freeze({
        text: 'Hello from the OpenAI Responses mock.',
        usage: Object.freeze({ input_tokens: 36, output_tokens: 8, total_tokens: 44 }),
        streamDeltas: Object.freeze(['Streamed ', 'hello ', 'from ', 'the ', 'Responses mock.']),
        streamUsage: Object.freeze({ input_tokens: 21, output_tokens: 9, total_tokens: 30 }),
    }),
    // Pause between streamed events: the test checks the events reach the SDK spread out, not in one piece.
    eventGapMs: 40,
});

const records = { anthropic: [], openai: [] };
const streamed = { anthropic: [], openai: [] }; // one array of event types per streamed answer, as sent
// GET /v1/models, which KeyRelay sends on its own (a provider without model patterns is routed by its list)
const modelLists = { anthropic: [], openai: [] };
const MODEL_IDS = { anthropic: 'claude-sonnet-4-5', openai: 'gpt-5-mini' }; // as tests/sdk/sdk_clients.mjs asks for
let counter = 0;

function readBody(request) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        request.on('data', (chunk) => chunks.push(chunk));
        request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        request.on('error', reject);
    });
}

function sendJson(response, status, body, extraHeaders = {}) {
    const data = JSON.stringify(body);
    response.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(data),
        ...extraHeaders,
    });
    response.end(data);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Writes @p events ([type, data] pairs) as server-sent events, ANSWERS.eventGapMs apart.
async function sendEvents(response, events, extraHeaders, sentTypes) {
    response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        ...extraHeaders,
    });
    response.flushHeaders();
    for (const [type, data] of events) {
        if (response.destroyed)
            return;
        sentTypes.push(type);
        response.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
        await sleep(ANSWERS.eventGapMs);
    }
    response.end();
}

function mockRoutes(request, response) {
    if (request.url === '/_mock/requests' && request.method === 'GET') {
        sendJson(response, 200, { records, streamed, modelLists });
        return true;
    }
    if (request.url === '/_mock/reset' && request.method === 'POST') {
        records.anthropic.length = records.openai.length = 0;
        modelLists.anthropic.length = modelLists.openai.length = 0;
        streamed.anthropic.length = streamed.openai.length = 0;
        sendJson(response, 200, { ok: true });
        return true;
    }
    return false;
}

async function record(which, request) {
    const body = await readBody(request);
    let json = null;
    try {
        json = body ? JSON.parse(body) : null;
    } catch {
        // kept as text in the record
    }
    const entry = { method: request.method, path: request.url, headers: request.headers, body: json ?? body };
    records[which].push(entry);
    return entry;
}

// --- Anthropic Messages API (POST /v1/messages)

function anthropicError(response, status, type, message) {
    sendJson(response, status, { type: 'error', error: { type, message } }, { 'request-id': `req_mock_${++counter}` });
}

/// GET /v1/models in each API's own shape; the request is kept apart from the SDK calls' records.
function modelList(which, request, response, ids) {
    if (request.method !== 'GET' || request.url.split('?')[0] !== '/v1/models')
        return false;
    modelLists[which].push({ headers: request.headers });
    const data = which === 'anthropic'
        ? ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' }))
        : ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'mock' }));
    sendJson(response, 200, which === 'anthropic'
        ? { data, has_more: false, first_id: ids[0], last_id: ids[ids.length - 1] }
        : { object: 'list', data });
    return true;
}

async function anthropicHandler(request, response) {
    if (mockRoutes(request, response) || modelList('anthropic', request, response, [MODEL_IDS.anthropic]))
        return;
    const entry = await record('anthropic', request);
    const path = entry.path.split('?')[0];
    if (request.method !== 'POST' || path !== '/v1/messages') {
        anthropicError(response, 404, 'not_found_error', `Not found: ${request.method} ${entry.path}`);
        return;
    }
    const body = entry.body;
    if (!body || typeof body !== 'object' || typeof body.model !== 'string' || !Array.isArray(body.messages)) {
        anthropicError(response, 400, 'invalid_request_error', 'model and messages are required');
        return;
    }
    const a = ANSWERS.anthropic;
    const headers = { 'request-id': `req_mock_${++counter}` };
    if (!body.stream) {
        sendJson(response, 200, {
            id: 'msg_01',
            type: 'message',
            role: 'assistant',
            model: body.model,
            content: [{ type: 'text', text: a.text }],
            stop_reason: 'end_turn',
            stop_sequence: null,
            usage: { ...a.usage },
        }, headers);
        return;
    }
    const events = [
        ['message_start', {
            type: 'message_start',
            message: {
                id: 'msg_02',
                type: 'message',
                role: 'assistant',
                model: body.model,
                content: [],
                stop_reason: null,
                stop_sequence: null,
                usage: {
                    input_tokens: a.streamInputTokens,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: 0,
                    output_tokens: 1,
                },
            },
        }],
        ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
        ['ping', { type: 'ping' }],
        ...a.streamDeltas.map((text) => ['content_block_delta', {
            type: 'content_block_delta',
            index: 0,
            delta: { type: 'text_delta', text },
        }]),
        ['content_block_stop', { type: 'content_block_stop', index: 0 }],
        ['message_delta', {
            type: 'message_delta',
            delta: { stop_reason: 'end_turn', stop_sequence: null },
            usage: { output_tokens: a.streamOutputTokens },
        }],
        ['message_stop', { type: 'message_stop' }],
    ];
    const sent = [];
    streamed.anthropic.push(sent);
    await sendEvents(response, events, headers, sent);
}

// --- OpenAI Responses API (POST /v1/responses)

function openaiError(response, status, message, type, code) {
    sendJson(response, status, { error: { message, type, param: null, code } }, { 'x-request-id': `req_mock_${++counter}` });
}

function responseObject(id, model, status, text, usage) {
    return {
        id,
        object: 'response',
        created_at: Math.floor(Date.now() / 1000),
        status,
        error: null,
        incomplete_details: null,
        instructions: null,
        max_output_tokens: null,
        model,
        output: text === null ? [] : [{
            type: 'message',
            id: `msg_${id}`,
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', text, annotations: [] }],
        }],
        parallel_tool_calls: true,
        previous_response_id: null,
        reasoning: { effort: null, summary: null },
        store: true,
        temperature: 1.0,
        text: { format: { type: 'text' } },
        tool_choice: 'auto',
        tools: [],
        top_p: 1.0,
        truncation: 'disabled',
        usage: usage === null ? null : {
            input_tokens: usage.input_tokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: usage.output_tokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: usage.total_tokens,
        },
        user: null,
        metadata: {},
    };
}

async function openaiHandler(request, response) {
    if (mockRoutes(request, response) || modelList('openai', request, response, [MODEL_IDS.openai]))
        return;
    const entry = await record('openai', request);
    const path = entry.path.split('?')[0];
    if (request.method !== 'POST' || path !== '/v1/responses') {
        openaiError(response, 404, `Invalid URL (${request.method} ${path})`, 'invalid_request_error', null);
        return;
    }
    const body = entry.body;
    if (!body || typeof body !== 'object' || typeof body.model !== 'string' || body.input === undefined) {
        openaiError(response, 400, "Missing required parameter: 'input'.", 'invalid_request_error', 'missing_required_parameter');
        return;
    }
    const o = ANSWERS.openai;
    const headers = { 'x-request-id': `req_mock_${++counter}`, 'openai-processing-ms': '7' };
    if (!body.stream) {
        sendJson(response, 200, responseObject('resp_01', body.model, 'completed', o.text, o.usage), headers);
        return;
    }
    const id = 'resp_02';
    const itemId = `msg_${id}`;
    const text = o.streamDeltas.join('');
    const part = (t) => ({ type: 'output_text', text: t, annotations: [] });
    const item = (status, t) => ({ type: 'message', id: itemId, status, role: 'assistant', content: t === null ? [] : [part(t)] });
    let sequence = 0;
    const event = (type, fields) => [type, { type, sequence_number: sequence++, ...fields }];
    const events = [
        event('response.created', { response: responseObject(id, body.model, 'in_progress', null, null) }),
        event('response.in_progress', { response: responseObject(id, body.model, 'in_progress', null, null) }),
        event('response.output_item.added', { output_index: 0, item: item('in_progress', null) }),
        event('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: part('') }),
        ...o.streamDeltas.map((delta) => event('response.output_text.delta', {
            item_id: itemId, output_index: 0, content_index: 0, delta, logprobs: [],
        })),
        event('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] }),
        event('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: part(text) }),
        event('response.output_item.done', { output_index: 0, item: item('completed', text) }),
        event('response.completed', { response: responseObject(id, body.model, 'completed', text, o.streamUsage) }),
    ];
    const sent = [];
    streamed.openai.push(sent);
    await sendEvents(response, events, headers, sent);
}

function listen(handler) {
    const server = http.createServer((request, response) => {
        handler(request, response).catch((error) => {
            console.error('mock upstream error:', error);
            if (!response.headersSent)
                sendJson(response, 500, { error: { message: String(error) } });
            else
                response.destroy();
        });
    });
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
    });
}

export async function startMocks() {
    const anthropic = await listen(anthropicHandler);
    const openai = await listen(openaiHandler);
    return {
        ports: { anthropic: anthropic.address().port, openai: openai.address().port },
        close() {
            for (const server of [anthropic, openai]) {
                server.closeAllConnections?.();
                server.close();
            }
        },
    };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
    const mocks = await startMocks();
    process.stdout.write(`${JSON.stringify(mocks.ports)}\n`);
    const stop = () => {
        mocks.close();
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // Started by the test with a pipe as standard input: when the test dies, so does the mock.
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
}
