// gpufleet's gateway: what NGINX's own directives cannot do (njs 0.7, Debian's libnginx-mod-http-js).
// Keys are compared by their SHA-256, so nginx.conf holds no key; the maps in nginx.conf say which key
// hash is which key, and which key may use which model; this file only reads requests.
var crypto = require('crypto');

function error(r, status, message, type, code, param) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({
        error: {message: message, type: type, param: param || null, code: code || null}
    }));
}

// $gpufleet_key_hash: the SHA-256 of the request's bearer key, or "" without one.
function keyHash(r) {
    var match = /^Bearer +([^ ]+) *$/i.exec(r.headersIn.Authorization || '');
    return match ? crypto.createHash('sha256').update(match[1]).digest('hex') : '';
}

// The inference API: read the JSON body's model and hand the request, body and all, to that model's pool.
function route(r) {
    if (r.method !== 'POST') {
        return error(r, 405, 'Only POST is allowed on ' + r.uri + '.', 'invalid_request_error', 'method_not_allowed');
    }
    var body = r.requestText;
    if (body === undefined) {  // written to a temporary file: larger than client_body_buffer_size
        return error(r, 413, 'The request body is too large.', 'invalid_request_error', 'request_too_large');
    }
    var request;
    try {
        request = JSON.parse(body);
    } catch (e) {
        return error(r, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
    }
    var model = request !== null && typeof request === 'object' ? request.model : undefined;
    if (typeof model !== 'string' || model === '') {
        return error(r, 400, 'You must provide a model parameter.', 'invalid_request_error', null, 'model');
    }
    r.variables.gpufleet_requested_model = model;
    if (r.variables.gpufleet_pool === '' || r.variables.gpufleet_key_allows !== '1') {
        // The same answer for a model nobody serves and one the key may not use, as OpenAI's API gives.
        return error(r, 404, 'The model `' + model + '` does not exist or you do not have access to it.',
                     'invalid_request_error', 'model_not_found', 'model');
    }
    r.variables.gpufleet_model = model;
    // The pool's own location; with session affinity on, a request with the session header goes to the
    // pool's consistent-hash twin ($gpufleet_affinity is "_affinity" then, and undefined without the mode).
    r.internalRedirect('@' + r.variables.gpufleet_pool + (r.variables.gpufleet_affinity || ''));
}

// Response body filter: the token counts of a response that carries usage (every non-streamed one, a
// stream with stream_options.include_usage), for the usage log, and whether a stream (server-sent events)
// reached its last event, "data: [DONE]": NGINX logs a stream cut mid-way as the 200 it began with, so
// $gpufleet_stream ("-", "open", "done") is what tells a cut stream from a whole one. Chunks pass on unchanged
// and at once.
var PROMPT_TOKENS = /"prompt_tokens" *: *([0-9]+)/;
var COMPLETION_TOKENS = /"completion_tokens" *: *([0-9]+)/;
var STREAM_END = 'data: [DONE]';

function usage(r, data, flags) {
    if (data.indexOf('"usage":{') !== -1 || data.indexOf('"usage": {') !== -1) {
        var prompt = PROMPT_TOKENS.exec(data);
        var completion = COMPLETION_TOKENS.exec(data);
        if (prompt) {
            r.variables.gpufleet_prompt_tokens = prompt[1];
        }
        if (completion) {
            r.variables.gpufleet_completion_tokens = completion[1];
        }
    }
    var stream = r.variables.gpufleet_stream;
    if (stream === '-' && (r.headersOut['Content-Type'] || '').indexOf('text/event-stream') === 0) {
        stream = 'open';
    }
    if (stream === 'open') {
        // The end marker may arrive split over two reads: look at the previous chunk's tail too.
        var seen = r.variables.gpufleet_stream_tail + data;
        if (seen.indexOf(STREAM_END) !== -1) {
            stream = 'done';
        } else {
            r.variables.gpufleet_stream_tail = seen.slice(-(STREAM_END.length - 1));
        }
        r.variables.gpufleet_stream = stream;
    }
    r.sendBuffer(data, flags);
}

export default {keyHash: keyHash, route: route, usage: usage};
