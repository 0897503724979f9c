#include "proxyconfig.h"

#include "accesspolicy.h"

namespace keyrelay {

QList<ProviderConfig> ProxyConfig::effectiveProviders() const
{
    if (!providers.isEmpty())
        return providers;
    ProviderConfig single;
    single.id = QString::fromLatin1(ProviderConfig::DefaultId);
    single.kind = ProviderKind::OpenAi;
    single.baseUrl = upstream;
    single.upstreamProxy = upstreamProxy;
    return { single };
}

QStringList ProxyConfig::validate() const
{
    QStringList problems = validateProviders(providers);
    QString error;
    if (listenAddresses().isEmpty())
        problems << QStringLiteral("listen address \"%1\" is not an IP address or localhost").arg(listenHost);
    for (const QHostAddress &address : listenAddresses()) {
        if (!address.isLoopback() && !allowRemoteClients) {
            problems << QStringLiteral(
                            "listen address %1 is reachable from other machines; "
                            "they could use your keys (allow remote clients explicitly to do this)")
                            .arg(address.toString());
        } else if (!address.isLoopback() && clientToken.trimmed().isEmpty()) {
            problems << QStringLiteral("listening on %1 (reachable from other machines) requires a client "
                                       "access token: set security/clientToken")
                            .arg(address.toString());
        }
    }
    if (!allowedHosts.isEmpty() && clientToken.trimmed().isEmpty()) {
        problems << QStringLiteral("security/allowedHosts makes KeyRelay reachable through other host names "
                                   "and requires a client access token: set security/clientToken");
    }
    for (const QString &origin : allowedOrigins) {
        if (!AccessPolicy::isValidOriginEntry(origin))
            problems << QStringLiteral("allowed origin \"%1\" is not an origin like https://app.example")
                            .arg(origin);
    }
    for (const QString &host : allowedHosts) {
        if (!AccessPolicy::isValidHostEntry(host))
            problems << QStringLiteral("allowed host \"%1\" is not a host name").arg(host);
    }
    QUrl parsed;
    if (!parseUpstream(upstream.toString(), &parsed, &error))
        problems << error;
    QNetworkProxy proxy;
    bool useSystem = false;
    if (!parseUpstreamProxy(upstreamProxy, &proxy, &useSystem, &error))
        problems << error;
    if (reorderThreshold < 1 || reorderThreshold > 1000)
        problems << QStringLiteral("reorder threshold must be between 1 and 1000");
    if (reorderDepth < 1 || reorderDepth > 1000)
        problems << QStringLiteral("reorder depth must be between 1 and 1000");
    if (connectTimeoutSec < 1 || connectTimeoutSec > 3600)
        problems << QStringLiteral("connect timeout must be between 1 and 3600 seconds");
    if (idleTimeoutSec < 1 || idleTimeoutSec > 86400)
        problems << QStringLiteral("idle timeout must be between 1 and 86400 seconds");
    if (headTimeoutSec < 1 || headTimeoutSec > 3600)
        problems << QStringLiteral("head timeout must be between 1 and 3600 seconds");
    if (maxConnections < 1)
        problems << QStringLiteral("maximum connections must be at least 1");
    if (maxBodyBytes < 1024)
        problems << QStringLiteral("maximum body size must be at least 1 KiB");
    for (const QString &prefix : stripPrefixes) {
        if (!prefix.startsWith(QLatin1Char('/')) || prefix.size() < 2)
            problems << QStringLiteral("path prefix \"%1\" must start with / and name a folder").arg(prefix);
    }
    return problems;
}

bool ProxyConfig::parseListen(const QString &text, QString *host, quint16 *port, QString *error)
{
    const QString trimmed = text.trimmed();
    QString hostPart = trimmed;
    QString portPart;
    if (trimmed.startsWith(QLatin1Char('['))) {
        const int close = trimmed.indexOf(QLatin1Char(']'));
        if (close < 0) {
            *error = QStringLiteral("listen address \"%1\": missing ]").arg(text);
            return false;
        }
        hostPart = trimmed.mid(1, close - 1);
        const QString rest = trimmed.mid(close + 1);
        if (!rest.isEmpty()) {
            if (!rest.startsWith(QLatin1Char(':'))) {
                *error = QStringLiteral("listen address \"%1\" is not HOST:PORT").arg(text);
                return false;
            }
            portPart = rest.mid(1);
        }
    } else if (trimmed.count(QLatin1Char(':')) == 1) {
        hostPart = trimmed.section(QLatin1Char(':'), 0, 0);
        portPart = trimmed.section(QLatin1Char(':'), 1);
    } else if (!trimmed.isEmpty() && trimmed.at(0).isDigit() && !trimmed.contains(QLatin1Char('.'))) {
        hostPart.clear();
        portPart = trimmed;
    }
    if (hostPart.isEmpty())
        hostPart = QStringLiteral("127.0.0.1");
    if (hostPart.compare(QStringLiteral("localhost"), Qt::CaseInsensitive) != 0
        && QHostAddress(hostPart).isNull()) {
        *error = QStringLiteral("listen address \"%1\": \"%2\" is not an IP address or localhost")
                     .arg(text, hostPart);
        return false;
    }
    quint16 parsedPort = DefaultPort;
    if (!portPart.isEmpty()) {
        bool ok = false;
        const uint value = portPart.toUInt(&ok);
        if (!ok || value > 65535) {
            *error = QStringLiteral("listen address \"%1\": port must be 0-65535").arg(text);
            return false;
        }
        parsedPort = quint16(value);
    }
    *host = hostPart;
    *port = parsedPort;
    return true;
}

QString ProxyConfig::withoutUserInfo(const QString &url)
{
    // The user info ends at the last '@' before the path, so a password holding '@' or ':' is hidden whole.
    const qsizetype schemeEnd = url.indexOf(QLatin1String("://"));
    const qsizetype authority = schemeEnd < 0 ? 0 : schemeEnd + 3;
    qsizetype pathStart = url.size();
    for (const QChar end : { QLatin1Char('/'), QLatin1Char('?'), QLatin1Char('#') }) {
        const qsizetype at = url.indexOf(end, authority);
        if (at >= 0)
            pathStart = qMin(pathStart, at);
    }
    const qsizetype at = pathStart > authority ? url.lastIndexOf(QLatin1Char('@'), pathStart - 1) : -1;
    if (at < authority)
        return url;
    return url.left(authority) + QChar(0x2026) + url.mid(at);
}

bool ProxyConfig::parseUpstream(const QString &text, QUrl *url, QString *error)
{
    const QUrl candidate(text.trimmed(), QUrl::StrictMode);
    const QString scheme = candidate.scheme().toLower();
    if (!candidate.isValid() || (scheme != QLatin1String("http") && scheme != QLatin1String("https"))
        || candidate.host().isEmpty()) {
        *error
            = QStringLiteral("upstream \"%1\" is not an http:// or https:// URL").arg(withoutUserInfo(text));
        return false;
    }
    if (candidate.hasQuery() || candidate.hasFragment() || !candidate.userInfo().isEmpty()) {
        *error = QStringLiteral("upstream \"%1\" must be a base URL without query, fragment or credentials")
                     .arg(withoutUserInfo(text));
        return false;
    }
    QUrl normalized = candidate;
    QString path = normalized.path();
    while (path.endsWith(QLatin1Char('/')))
        path.chop(1);
    normalized.setPath(path);
    *url = normalized;
    return true;
}

bool ProxyConfig::normalizePathPrefixes(const QStringList &raw, bool addLeadingSlash, QStringList *prefixes)
{
    QStringList cleaned;
    for (const QString &part : raw) {
        QString prefix = part.trimmed();
        while (prefix.endsWith(QLatin1Char('/')))
            prefix.chop(1);
        if (prefix.isEmpty())
            continue;
        if (!prefix.startsWith(QLatin1Char('/'))) {
            if (!addLeadingSlash)
                return false;
            prefix.prepend(QLatin1Char('/'));
        }
        cleaned.append(prefix);
    }
    *prefixes = cleaned;
    return true;
}

bool ProxyConfig::parseUpstreamProxy(const QString &text, QNetworkProxy *proxy, bool *useSystem,
                                     QString *error)
{
    const QString trimmed = text.trimmed();
    *useSystem = false;
    if (trimmed.isEmpty() || trimmed.compare(QLatin1String("none"), Qt::CaseInsensitive) == 0) {
        *proxy = QNetworkProxy(QNetworkProxy::NoProxy);
        return true;
    }
    if (trimmed.compare(QLatin1String("system"), Qt::CaseInsensitive) == 0) {
        *useSystem = true;
        *proxy = QNetworkProxy(QNetworkProxy::DefaultProxy);
        return true;
    }
    const QUrl url(trimmed, QUrl::StrictMode);
    const QString scheme = url.scheme().toLower();
    QNetworkProxy::ProxyType type = QNetworkProxy::NoProxy;
    if (scheme == QLatin1String("http"))
        type = QNetworkProxy::HttpProxy;
    else if (scheme == QLatin1String("socks5") || scheme == QLatin1String("socks5h"))
        type = QNetworkProxy::Socks5Proxy;
    if (!url.isValid() || type == QNetworkProxy::NoProxy || url.host().isEmpty() || url.port() <= 0) {
        *error
            = QStringLiteral("upstream proxy must be none, system, http://host:port or socks5://host:port");
        return false;
    }
    *proxy = QNetworkProxy(type, url.host(), quint16(url.port()), url.userName(QUrl::FullyDecoded),
                           url.password(QUrl::FullyDecoded));
    return true;
}

QList<QHostAddress> ProxyConfig::listenAddresses() const
{
    if (listenHost.compare(QLatin1String("localhost"), Qt::CaseInsensitive) == 0)
        return { QHostAddress(QHostAddress::LocalHost), QHostAddress(QHostAddress::LocalHostIPv6) };
    const QHostAddress address(listenHost);
    if (address.isNull())
        return {};
    return { address };
}

QString ProxyConfig::endpointUrl(quint16 actualPort) const
{
    const quint16 port = actualPort ? actualPort : listenPort;
    QString host = listenHost;
    const QHostAddress address(listenHost);
    if (address.isEqual(QHostAddress(QHostAddress::AnyIPv4), QHostAddress::StrictConversion)
        || address.isEqual(QHostAddress(QHostAddress::Any), QHostAddress::StrictConversion))
        host = QStringLiteral("127.0.0.1");
    else if (address.isEqual(QHostAddress(QHostAddress::AnyIPv6), QHostAddress::StrictConversion))
        host = QStringLiteral("[::1]");
    else if (address.protocol() == QAbstractSocket::IPv6Protocol)
        host = QLatin1Char('[') + host + QLatin1Char(']');
    return QStringLiteral("http://%1:%2").arg(host).arg(port);
}

} // namespace keyrelay
