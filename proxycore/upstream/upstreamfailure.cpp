#include "upstreamfailure.h"

#include "curlengine.h"

#include <curl/curl.h>

#include <cerrno>

#include <QNetworkProxyFactory>
#include <QNetworkProxyQuery>


namespace keyrelay {

namespace {

QString hostPort(const QString &host, int port)
{
    const QString shown = host.contains(QLatin1Char(':')) ? QLatin1Char('[') + host + QLatin1Char(']') : host;
    return port > 0 ? QStringLiteral("%1:%2").arg(shown).arg(port) : shown;
}

QString upstreamName(const QUrl &upstream)
{
    return hostPort(upstream.host(), upstream.port(upstream.scheme() == QLatin1String("https") ? 443 : 80));
}

// What is wrong with a certificate.
QString certificateExpired(const QDateTime &expiry)
{
    return expiry.isValid()
        ? QStringLiteral("its certificate expired on %1").arg(expiry.toUTC().toString(Qt::ISODate))
        : QStringLiteral("its certificate has expired");
}

QString certificateNotValidYet()
{
    return QStringLiteral("its certificate is not valid yet");
}

QString certificateForOtherNames(const QStringList &names, const QUrl &upstream)
{
    return names.isEmpty() ? QStringLiteral("its certificate is not for %1").arg(upstream.host())
                           : QStringLiteral("its certificate is for %1, not %2")
                                 .arg(names.join(QLatin1String(", ")), upstream.host());
}

QString certificateUntrusted()
{
    return QStringLiteral(
        "its certificate is not trusted (self-signed or from an authority this machine does "
        "not trust)");
}

QString certificateRevoked()
{
    return QStringLiteral("its certificate has been revoked");
}

/// The sentences said about one request to @p upstream through @p proxy.
struct Wording
{
    Wording(const QUrl &upstream, const QNetworkProxy &usedProxy)
        : proxy(usedProxy), via(describeProxy(usedProxy)),
          proxyName(via.isEmpty() ? QStringLiteral("the network proxy") : via),
          target(QStringLiteral("the upstream %1").arg(upstreamName(upstream)))
    {
    }

    static NetworkFailure proxyFailure(const QString &message)
    {
        return { message, QStringLiteral("upstream_proxy_error") };
    }
    static NetworkFailure unreachable(const QString &message)
    {
        return { message, QStringLiteral("upstream_unreachable") };
    }
    NetworkFailure proxyRefused() const
    {
        return proxyFailure(QStringLiteral("%1 refused the connection (is it running?)").arg(proxyName));
    }
    NetworkFailure proxyNotFound() const
    {
        return proxyFailure(
            QStringLiteral("%1 was not found (its host name does not resolve)").arg(proxyName));
    }
    NetworkFailure proxyClosed() const
    {
        return proxyFailure(
            QStringLiteral("%1 closed the connection before %2 answered").arg(proxyName, target));
    }
    NetworkFailure proxyWantsCredentials() const
    {
        if (!proxy.user().isEmpty() || !proxy.password().isEmpty())
            return proxyFailure(
                QStringLiteral("%1 refused the credentials (user \"%2\")").arg(proxyName, proxy.user()));
        return proxyFailure(QStringLiteral("%1 asks for credentials and none are set (give them in the "
                                           "upstream proxy setting: http://user:password@host:port)")
                                .arg(proxyName));
    }
    NetworkFailure refused() const
    {
        return unreachable(QStringLiteral("%1 refused the connection").arg(target));
    }
    NetworkFailure notFound() const
    {
        return unreachable(QStringLiteral("%1 was not found (its host name does not resolve)").arg(target));
    }
    NetworkFailure closed() const
    {
        return unreachable(QStringLiteral("%1 closed the connection before answering").arg(target));
    }
    NetworkFailure tls(const QString &problems) const
    {
        return { QStringLiteral("TLS with %1 failed: %2").arg(target, problems),
                 QStringLiteral("upstream_tls_error") };
    }
    NetworkFailure other(const QString &text) const
    {
        return unreachable(
            QStringLiteral("%1%2 unreachable: %3")
                .arg(target,
                     via.isEmpty() ? QString() : QStringLiteral(" (through ") + via + QLatin1Char(')'),
                     text));
    }

    const QNetworkProxy &proxy;
    const QString via; ///< empty without a proxy
    const QString proxyName;
    const QString target;
};

} // namespace

QNetworkProxy effectiveProxy(const ProxyConfig &config, const QUrl &upstream)
{
    QNetworkProxy proxy(QNetworkProxy::NoProxy);
    bool useSystem = false;
    QString error;
    if (!ProxyConfig::parseUpstreamProxy(config.upstreamProxy, &proxy, &useSystem, &error))
        return QNetworkProxy(QNetworkProxy::NoProxy);
    if (useSystem) {
        const QList<QNetworkProxy> proxies
            = QNetworkProxyFactory::systemProxyForQuery(QNetworkProxyQuery(upstream));
        return proxies.isEmpty() ? QNetworkProxy(QNetworkProxy::NoProxy) : proxies.constFirst();
    }
    return proxy;
}

QString describeProxy(const QNetworkProxy &proxy)
{
    switch (proxy.type()) {
    case QNetworkProxy::HttpProxy:
    case QNetworkProxy::HttpCachingProxy:
        return QStringLiteral("the HTTP proxy %1").arg(hostPort(proxy.hostName(), proxy.port()));
    case QNetworkProxy::Socks5Proxy:
        return QStringLiteral("the SOCKS5 proxy %1").arg(hostPort(proxy.hostName(), proxy.port()));
    default:
        return QString();
    }
}

NetworkFailure describeUpstreamResult(const UpstreamResult &result, const QUrl &upstream,
                                      const QNetworkProxy &proxy, int connectTimeoutSec)
{
    const Wording say(upstream, proxy);
    if (result.headersTooLarge)
        return { QStringLiteral("%1 sent response headers over the limit of 256 KiB").arg(say.target),
                 QStringLiteral("upstream_error") };
    if (result.proxyConnectCode == 407)
        return say.proxyWantsCredentials();
    if (result.proxyConnectCode >= 300)
        return Wording::proxyFailure(QStringLiteral("%1 would not open a tunnel to %2 (HTTP %3)")
                                         .arg(say.proxyName, say.target)
                                         .arg(result.proxyConnectCode));
    switch (CURLcode(result.curlCode)) {
    case CURLE_COULDNT_RESOLVE_PROXY:
        return say.proxyNotFound();
    case CURLE_COULDNT_RESOLVE_HOST:
        return say.notFound();
    case CURLE_COULDNT_CONNECT:
        if (!say.via.isEmpty())
            return say.proxyRefused();
        if (result.osErrno == ECONNREFUSED)
            return say.refused();
        break;
    case CURLE_OPERATION_TIMEDOUT:
        return describeTimeout(true, connectTimeoutSec, upstream, proxy);
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PROXY: {
        // Through a proxy, the proxy closed unless a tunnel (CONNECT answered 2xx, or SOCKS) was open.
        const bool tunnel = upstream.scheme() == QLatin1String("https")
            && (proxy.type() == QNetworkProxy::Socks5Proxy || result.proxyConnectCode / 100 == 2);
        if (!say.via.isEmpty() && (CURLcode(result.curlCode) == CURLE_PROXY || !tunnel))
            return say.proxyClosed();
        return say.closed();
    }
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
        switch (result.sslVerifyResult) {
        case 9: // X509_V_ERR_CERT_NOT_YET_VALID
            return say.tls(certificateNotValidYet());
        case 10: // X509_V_ERR_CERT_HAS_EXPIRED
            return say.tls(certificateExpired(result.certificateExpiry));
        case 2: // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        case 18: // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        case 19: // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        case 20: // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        case 21: // X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            return say.tls(certificateUntrusted());
        case 23: // X509_V_ERR_CERT_REVOKED
            return say.tls(certificateRevoked());
        case 62: // X509_V_ERR_HOSTNAME_MISMATCH
        case 64: // X509_V_ERR_IP_ADDRESS_MISMATCH
            return say.tls(certificateForOtherNames(result.certificateNames, upstream));
        default: // curl checks the host name itself, after OpenSSL's verification passed
            return say.tls(result.message.contains(QLatin1String("subject name"))
                               ? certificateForOtherNames(result.certificateNames, upstream)
                               : result.message);
        }
    default:
        break;
    }
    return say.other(result.message);
}

NetworkFailure describeTimeout(bool connecting, int seconds, const QUrl &upstream, const QNetworkProxy &proxy)
{
    const QString via = describeProxy(proxy);
    if (connecting) {
        if (via.isEmpty())
            return { QStringLiteral("could not connect to the upstream %1 within %2 s")
                         .arg(upstream.toString())
                         .arg(seconds),
                     QStringLiteral("upstream_connect_timeout") };
        return { QStringLiteral(
                     "%1 did not get the request through to the upstream %2 within %3 s (the proxy "
                     "accepted the connection but did not answer)")
                     .arg(via, upstream.toString())
                     .arg(seconds),
                 QStringLiteral("upstream_proxy_timeout") };
    }
    return { via.isEmpty()
                 ? QStringLiteral("the upstream sent nothing for %1 s").arg(seconds)
                 : QStringLiteral("nothing came from the upstream through %1 for %2 s").arg(via).arg(seconds),
             QStringLiteral("upstream_idle_timeout") };
}

} // namespace keyrelay
