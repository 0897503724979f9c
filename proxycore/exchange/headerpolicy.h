// Which headers cross the proxy, in each direction. One place for the rules that ProxyExchange applies
// to every request and response (hop-by-hop headers, the client's credentials, encodings, CORS).
#pragma once

#include "httprequestparser.h"
#include "provider.h"

#include <QSet>

#include <functional>

namespace keyrelay::HeaderPolicy {

/// RFC 9110 7.6.1 hop-by-hop headers (lower-case name), plus the legacy ones clients still send.
bool isHopByHop(const QByteArray &lowerName);
/// The lower-case header names a "Connection" header lists (its hop-by-hop extensions).
QSet<QByteArray> namedInConnection(const QByteArray &connectionHeader);

/// The client's headers that go upstream, repeated ones joined with ", ". Left out: hop-by-hop headers,
/// Host, Expect, Content-Length (the proxy frames the body), Accept-Encoding (the proxy reads usage
/// from the body, so it wants it plain) and every credential header (Authorization, api-key,
/// x-api-key): the key is the proxy's to choose. A missing User-Agent becomes @p defaultUserAgent.
HeaderList forUpstream(const HeaderList &clientHeaders, const QByteArray &defaultUserAgent);

/// The upstream's response headers that reach the client. Left out: hop-by-hop headers, the
/// framing (Content-Length, the proxy re-frames) and the upstream's own Access-Control-* headers (the
/// proxy's AccessPolicy decides CORS: @p corsHeaders are appended). Content-Encoding stays: the body
/// passes as the upstream encoded it (the upstream client never decodes). Set-Cookie values joined
/// with newlines are split into one header each.
HeaderList forClient(const HeaderList &upstreamHeaders, const HeaderList &corsHeaders);

/// A provider's key where its kind expects it: "Authorization: Bearer KEY" (openai) or "x-api-key: KEY"
/// (anthropic, with "anthropic-version: 2023-06-01" unless @p headers has one already). An empty @p secret
/// adds no key (an anthropic request still gets its version).
void addProviderCredential(HeaderList *headers, ProviderKind kind, const QByteArray &secret);

/// Whether @p headers has one named @p name (case-insensitive).
bool hasHeader(const HeaderList &headers, const QByteArray &name);

/// The credential a client sent: "Authorization: Bearer X", else "api-key" / "x-api-key". Values for
/// which @p isClientToken is true (KeyRelay's own access token) are not a key. @p viaApiKeyHeader says
/// the key came in an api-key style header (then the key that goes upstream uses "api-key" too).
QByteArray clientCredential(const HttpRequest &request,
                            const std::function<bool(const QByteArray &)> &isClientToken,
                            bool *viaApiKeyHeader);

} // namespace keyrelay::HeaderPolicy
