#include "headerpolicy.h"

#include <functional>

namespace keyrelay::HeaderPolicy {

bool isHopByHop(const QByteArray &lowerName)
{
    return lowerName == "connection" || lowerName == "keep-alive" || lowerName == "proxy-connection"
        || lowerName == "proxy-authenticate" || lowerName == "proxy-authorization" || lowerName == "te"
        || lowerName == "trailer" || lowerName == "trailers" || lowerName == "transfer-encoding"
        || lowerName == "upgrade";
}

QSet<QByteArray> namedInConnection(const QByteArray &connectionHeader)
{
    QSet<QByteArray> names;
    const QList<QByteArray> parts = connectionHeader.split(',');
    for (const QByteArray &part : parts) {
        const QByteArray name = part.trimmed().toLower();
        if (!name.isEmpty() && name != "close" && name != "keep-alive")
            names.insert(name);
    }
    return names;
}

HeaderList forUpstream(const HeaderList &clientHeaders, const QByteArray &defaultUserAgent)
{
    const QSet<QByteArray> connectionNamed = namedInConnection(headerValue(clientHeaders, "Connection"));
    HeaderList result;
    result.reserve(clientHeaders.size() + 1);
    bool hasUserAgent = false;
    for (const auto &header : clientHeaders) {
        const QByteArray name = header.first.toLower();
        if (isHopByHop(name) || connectionNamed.contains(name) || name == "host" || name == "expect"
            || name == "content-length" || name == "authorization" || name == "api-key" || name == "x-api-key"
            || name == "accept-encoding") {
            continue;
        }
        if (name == "user-agent")
            hasUserAgent = hasUserAgent || !header.second.isEmpty();
        // Repeated headers are joined, as HTTP allows for list-valued fields.
        bool joined = false;
        for (auto &existing : result) {
            if (existing.first.compare(header.first, Qt::CaseInsensitive) == 0) {
                existing.second += ", " + header.second;
                joined = true;
                break;
            }
        }
        if (!joined)
            result.append(header);
    }
    if (!hasUserAgent) {
        for (qsizetype i = result.size() - 1; i >= 0; --i) {
            if (result.at(i).first.compare("user-agent", Qt::CaseInsensitive) == 0)
                result.removeAt(i);
        }
        result.append({ QByteArrayLiteral("User-Agent"), defaultUserAgent });
    }
    return result;
}

HeaderList forClient(const HeaderList &upstreamHeaders, const HeaderList &corsHeaders)
{
    HeaderList headers;
    const QSet<QByteArray> connectionNamed = namedInConnection(headerValue(upstreamHeaders, "Connection"));
    headers.reserve(upstreamHeaders.size() + corsHeaders.size());
    for (const auto &pair : upstreamHeaders) {
        const QByteArray name = pair.first.toLower();
        if (isHopByHop(name) || connectionNamed.contains(name) || name == "content-length"
            || name.startsWith("access-control-")) {
            continue;
        }
        if (name == "set-cookie") { // never joined with commas: one header per cookie
            const QList<QByteArray> cookies = pair.second.split('\n');
            for (const QByteArray &cookie : cookies)
                headers.append({ pair.first, cookie });
            continue;
        }
        headers.append(pair);
    }
    headers += corsHeaders;
    return headers;
}

QByteArray clientCredential(const HttpRequest &request,
                            const std::function<bool(const QByteArray &)> &isClientToken,
                            bool *viaApiKeyHeader)
{
    *viaApiKeyHeader = false;
    QByteArray authorization = request.header("Authorization").trimmed();
    if (authorization.toLower().startsWith("bearer "))
        authorization = authorization.mid(7).trimmed();
    if (!authorization.isEmpty() && !isClientToken(authorization))
        return authorization;
    for (const char *name : { "api-key", "x-api-key" }) {
        const QByteArray value = request.header(name).trimmed();
        if (!value.isEmpty() && !isClientToken(value)) {
            *viaApiKeyHeader = true;
            return value;
        }
    }
    return {};
}

bool hasHeader(const HeaderList &headers, const QByteArray &name)
{
    for (const auto &header : headers) {
        if (header.first.compare(name, Qt::CaseInsensitive) == 0)
            return true;
    }
    return false;
}

void addProviderCredential(HeaderList *headers, ProviderKind kind, const QByteArray &secret)
{
    if (kind == ProviderKind::Anthropic) {
        if (!hasHeader(*headers, "anthropic-version"))
            headers->append({ QByteArrayLiteral("anthropic-version"), QByteArrayLiteral("2023-06-01") });
        if (!secret.isEmpty())
            headers->append({ QByteArrayLiteral("x-api-key"), secret });
    } else if (!secret.isEmpty()) {
        headers->append({ QByteArrayLiteral("Authorization"), "Bearer " + secret });
    }
}

} // namespace keyrelay::HeaderPolicy
