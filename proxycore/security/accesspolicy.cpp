#include "accesspolicy.h"

#include <QHostAddress>
#include <QRandomGenerator>
#include <QRegularExpression>

#include <algorithm>

namespace keyrelay {

namespace {

const QByteArray AllowedHeaders = QByteArrayLiteral(
    "authorization, content-type, api-key, x-api-key, openai-organization, openai-project, openai-beta, "
    "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
    "x-stainless-retry-count, "
    "x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout, x-stainless-helper-method, "
    "x-stainless-async, x-stainless-poll-helper, x-stainless-raw-response, x-request-id, accept, "
    "accept-language, cache-control, user-agent, x-requested-with");
const QByteArray AllowedMethods = QByteArrayLiteral("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
const QByteArray ExposedHeaders = QByteArrayLiteral(
    "x-request-id, openai-organization, openai-processing-ms, openai-version, openai-model, retry-after, "
    "x-ratelimit-limit-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-requests, "
    "x-ratelimit-remaining-tokens, x-ratelimit-reset-requests, x-ratelimit-reset-tokens");

struct Origin
{
    QByteArray scheme;
    QByteArray host; ///< without brackets for IPv6
    QByteArray port; ///< empty when absent
    bool valid = false;
};

/// "scheme://host[:port]" in lower case; anything else (paths, user info, "null") is not valid.
Origin parseOrigin(const QByteArray &lowerOrigin)
{
    Origin origin;
    const qsizetype sep = lowerOrigin.indexOf("://");
    if (sep <= 0)
        return origin;
    origin.scheme = lowerOrigin.left(sep);
    QByteArray rest = lowerOrigin.mid(sep + 3);
    if (rest.endsWith('/'))
        rest.chop(1);
    if (rest.isEmpty() || rest.contains('/') || rest.contains('@') || rest.contains('?')
        || rest.contains('#'))
        return origin;
    const bool bracketed = rest.startsWith('[');
    if (bracketed) {
        const qsizetype close = rest.indexOf(']');
        if (close < 0)
            return origin;
        origin.host = rest.mid(1, close - 1);
        rest = rest.mid(close + 1);
        if (!rest.isEmpty() && !rest.startsWith(':'))
            return origin;
        origin.port = rest.mid(1);
    } else {
        const qsizetype colon = rest.lastIndexOf(':');
        origin.host = colon < 0 ? rest : rest.left(colon);
        origin.port = colon < 0 ? QByteArray() : rest.mid(colon + 1);
    }
    for (const char c : std::as_const(origin.port)) {
        if (c < '0' || c > '9')
            return origin;
    }
    // What a browser can send: a DNS name (letters, digits, '-', '_', '.', a leading "*." only in
    // allow-list patterns) or an IP address; a backslash or any other byte makes it no origin at all.
    for (qsizetype i = 0; i < origin.host.size(); ++i) {
        const char c = origin.host.at(i);
        const bool nameChar = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
            || c == '.' || (c == ':' && bracketed) || (c == '*' && i == 0 && origin.host.startsWith("*."));
        if (!nameChar)
            return origin;
    }
    for (const char c : std::as_const(origin.scheme)) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        if (!ok)
            return origin;
    }
    origin.valid = !origin.host.isEmpty();
    return origin;
}

bool isLoopbackHost(const QByteArray &host)
{
    if (host == "localhost" || host.endsWith(".localhost"))
        return true;
    const QHostAddress address(QString::fromLatin1(host));
    return !address.isNull() && address.isLoopback();
}

/// Host header "name[:port]" or "[v6][:port]" -> lower-case name without port.
QByteArray hostName(const QByteArray &hostHeader)
{
    QByteArray host = hostHeader.trimmed().toLower();
    if (host.startsWith('[')) {
        // "[v6]" or "[v6]:port"; anything else after the bracket is not a host name at all.
        const qsizetype close = host.indexOf(']');
        const QByteArray rest = close > 0 ? host.mid(close + 1) : QByteArray("?");
        const bool portOnly = rest.isEmpty()
            || (rest.size() > 1 && rest.startsWith(':')
                && std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; }));
        return portOnly ? host.mid(1, close - 1) : host;
    }
    if (host.count(':') == 1)
        host = host.left(host.indexOf(':'));
    if (host.endsWith('.'))
        host.chop(1);
    return host;
}

QList<QByteArray> lowerList(const QStringList &list)
{
    QList<QByteArray> out;
    for (const QString &entry : list) {
        QByteArray value = entry.trimmed().toUtf8().toLower();
        if (value.endsWith('/'))
            value.chop(1);
        if (!value.isEmpty())
            out.append(value);
    }
    return out;
}

} // namespace

AccessPolicy::AccessPolicy(const ProxyConfig &config)
    : m_allowedOrigins(lowerList(config.allowedOrigins)), m_allowAnyWebsite(config.allowAnyWebsite),
      m_token(config.clientToken.trimmed().toUtf8())
{
    for (const QString &host : config.allowedHosts)
        m_allowedHosts.append(hostName(host.toUtf8()));
}

bool AccessPolicy::isTrustedByDefault(const QByteArray &origin)
{
    const Origin parsed = parseOrigin(origin.trimmed().toLower());
    if (!parsed.valid)
        return false;
    if (parsed.scheme == "http" || parsed.scheme == "https")
        return isLoopbackHost(parsed.host);
    static const QList<QByteArray> trustedSchemes {
        "chrome-extension", "moz-extension", "safari-web-extension", "app", "tauri", "vscode-webview"
    };
    return trustedSchemes.contains(parsed.scheme);
}

bool AccessPolicy::matchesAllowList(const QByteArray &lowerOrigin) const
{
    QByteArray origin = lowerOrigin;
    if (origin.endsWith('/'))
        origin.chop(1);
    const Origin parsed = parseOrigin(origin);
    for (const QByteArray &entry : m_allowedOrigins) {
        if (entry == origin)
            return true;
        if (!parsed.valid || !entry.contains("://*."))
            continue;
        const Origin pattern = parseOrigin(entry);
        if (!pattern.valid || pattern.scheme != parsed.scheme || pattern.port != parsed.port)
            continue;
        const QByteArray suffix = pattern.host.mid(1); // ".example.org"
        if (parsed.host.endsWith(suffix) && parsed.host.size() > suffix.size())
            return true;
    }
    return false;
}

AccessPolicy::OriginVerdict AccessPolicy::checkRequest(const HttpRequest &request) const
{
    int origins = 0;
    QByteArray origin;
    bool crossSite = false;
    for (const auto &header : request.headers) {
        const QByteArray name = header.first.toLower();
        if (name == "origin") {
            ++origins;
            origin = header.second;
        } else if (name == "sec-fetch-site") {
            crossSite = crossSite || header.second.trimmed().toLower() == "cross-site";
        }
    }
    // Two Origins: which one the browser meant cannot be known, so neither is trusted.
    if (origins > 1)
        return OriginVerdict::Ambiguous;
    if (origins == 1)
        return checkOrigin(origin);
    // An <img> or <script> on another website sends no Origin, but its browser says where it came from:
    // the page cannot read the answer, yet the request would spend a key.
    if (crossSite && !m_allowAnyWebsite)
        return OriginVerdict::CrossSiteWithoutOrigin;
    return OriginVerdict::NoOrigin;
}

AccessPolicy::OriginVerdict AccessPolicy::checkOrigin(const QByteArray &origin) const
{
    const QByteArray lower = origin.trimmed().toLower();
    if (lower.isEmpty())
        return OriginVerdict::NoOrigin;
    if (m_allowAnyWebsite || isTrustedByDefault(lower) || matchesAllowList(lower))
        return OriginVerdict::Allowed;
    return OriginVerdict::Blocked;
}

HeaderList AccessPolicy::responseCorsHeaders(const QByteArray &origin)
{
    if (origin.isEmpty())
        return {};
    return { { "Access-Control-Allow-Origin", origin },
             { "Access-Control-Expose-Headers", ExposedHeaders },
             { "Vary", "Origin" } };
}

HeaderList AccessPolicy::preflightHeaders(const HttpRequest &request)
{
    HeaderList headers {
        { "Access-Control-Allow-Origin", request.header("Origin") },
        { "Access-Control-Allow-Methods", AllowedMethods },
        { "Access-Control-Allow-Headers", AllowedHeaders },
        { "Access-Control-Max-Age", "86400" },
        { "Vary", "Origin, Access-Control-Request-Headers" },
    };
    // Chrome's Private Network Access: a web app asking for a loopback endpoint (allowed origins only).
    if (request.header("Access-Control-Request-Private-Network").toLower() == "true")
        headers.append(qMakePair(QByteArray("Access-Control-Allow-Private-Network"), QByteArray("true")));
    return headers;
}

bool AccessPolicy::constantTimeEquals(const QByteArray &a, const QByteArray &b)
{
    // The loop always runs over the expected value's length; a length mismatch is folded in.
    unsigned char difference = a.size() == b.size() ? 0 : 1;
    for (qsizetype i = 0; i < b.size(); ++i) {
        const char fromA = i < a.size() ? a.at(i) : char(0);
        difference |= static_cast<unsigned char>(fromA ^ b.at(i));
    }
    return difference == 0;
}

bool AccessPolicy::isToken(const QByteArray &credential) const
{
    return !m_token.isEmpty() && constantTimeEquals(credential.trimmed(), m_token);
}

bool AccessPolicy::tokenAccepted(const HttpRequest &request) const
{
    if (m_token.isEmpty())
        return true;
    bool accepted = false;
    for (const auto &header : request.headers) {
        const QByteArray name = header.first.toLower();
        QByteArray value = header.second.trimmed();
        if (name == "authorization") {
            if (value.size() < 7 || value.left(7).toLower() != "bearer ")
                continue;
            value = value.mid(7).trimmed();
        } else if (name != "x-api-key" && name != "api-key") {
            continue;
        }
        accepted = isToken(value) || accepted; // every candidate compared: no early exit
    }
    return accepted;
}

bool AccessPolicy::hostAllowed(const QByteArray &hostHeader, bool remoteListener) const
{
    if (remoteListener || hostHeader.trimmed().isEmpty())
        return true;
    const QByteArray host = hostName(hostHeader);
    return isLoopbackHost(host) || m_allowedHosts.contains(host);
}

bool AccessPolicy::isValidOriginEntry(const QString &entry)
{
    const QByteArray lower = entry.trimmed().toUtf8().toLower();
    if (lower == "null")
        return true;
    Origin parsed = parseOrigin(lower);
    if (!parsed.valid)
        return false;
    QByteArray host = parsed.host;
    if (host.startsWith("*.")) // wildcard subdomains
        host = host.mid(2);
    static const QRegularExpression hostPattern(
        QStringLiteral("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"));
    return hostPattern.match(QString::fromUtf8(host)).hasMatch()
        || !QHostAddress(QString::fromUtf8(host)).isNull();
}

bool AccessPolicy::isValidHostEntry(const QString &entry)
{
    if (entry.contains(QLatin1Char('/')))
        return false; // a URL, not a host name
    const QByteArray host = hostName(entry.toUtf8());
    static const QRegularExpression hostPattern(
        QStringLiteral("^[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*$"));
    return !host.isEmpty()
        && (hostPattern.match(QString::fromUtf8(host)).hasMatch()
            || !QHostAddress(QString::fromUtf8(host)).isNull());
}

QString AccessPolicy::generateToken()
{
    QByteArray random(30, Qt::Uninitialized);
    QRandomGenerator::system()->generate(random.begin(), random.end());
    return QStringLiteral("krt-")
        + QString::fromLatin1(
               random.toBase64(QByteArray::Base64UrlEncoding | QByteArray::OmitTrailingEquals));
}

} // namespace keyrelay
