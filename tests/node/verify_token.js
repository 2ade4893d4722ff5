'use strict'
// Reads Agora 007 tokens with Agora's own npm library, agora-token, and prints what it decodes,
// for tests/test_agora_node.py. Input on stdin (not argv, so no certificate shows in a process
// list): {"certificate": "<32 hex>", "tokens": ["007...", ...]}. Output on stdout:
// {"library": "agora-token <version>", "tokens": [one entry per token]}, each entry what
// AccessToken2.from_string parsed and whether verifySignature accepts the certificate.
const { AccessToken2 } = require('agora-token/src/AccessToken2')
const { version } = require('agora-token/package.json')

// The library keeps a service's fields as "__<name>" properties, its strings as Buffers.
function fields(service) {
    const out = { type: service.service_type() }
    for (const [key, value] of Object.entries(service)) {
        if (!key.startsWith('__') || key === '__type') {
            continue
        }
        const name = key.slice(2)
        if (Buffer.isBuffer(value)) {
            out[name] = value.toString('utf8')
        } else if (name === 'permissions') {
            out[name] = value.details // RTM2: resource type -> permission type -> names
        } else {
            out[name] = value
        }
    }
    return out
}

function read(token, certificate) {
    const parsed = new AccessToken2('', '', 0, 0)
    if (!parsed.from_string(token)) {
        return { parsed: false }
    }
    return {
        parsed: true,
        app_id: parsed.appId.toString('utf8'),
        issue_ts: parsed.issueTs,
        expire: parsed.expire,
        salt: parsed.salt,
        services: parsed.services.map(fields),
        signature_valid: parsed.verifySignature(certificate),
    }
}

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', chunk => {
    input += chunk
})
process.stdin.on('end', () => {
    const { certificate, tokens } = JSON.parse(input)
    const answer = { library: `agora-token ${version}`, tokens: tokens.map(token => read(token, certificate)) }
    process.stdout.write(JSON.stringify(answer))
})
