#include "upstreamfailure.h"

#include "curlengine.h"

#include <curl/curl.h>

#include <cerrno>

#include <QNetworkProxyFactory>
#include <QNetworkProxyQuery>

#ifndef QT_NO_SSL
#include <QSslCertificate>
#endif

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

// What is wrong with a certificate, in the same words whichever TLS client found it (Qt or libcurl).
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

/// The sentences both descriptions (Qt's and libcurl's) say about one request to @p upstream through @p
/// proxy.
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

#ifndef QT_NO_SSL
QString certificateProblem(const QSslError &error, const QUrl &upstream)
{
    const QSslCertificate certificate = error.certificate();
    switch (error.error()) {
    case QSslError::CertificateExpired:
        return certificateExpired(certificate.isNull() ? QDateTime() : certificate.expiryDate());
    case QSslError::CertificateNotYetValid:
        return certificateNotValidYet();
    case QSslError::HostNameMismatch: {
        QStringList names = certificate.subjectAlternativeNames().values(QSsl::DnsEntry);
        if (names.isEmpty())
            names = certificate.subjectInfo(QSslCertificate::CommonName);
        return certificateForOtherNames(names, upstream);
    }
    case QSslError::SelfSignedCertificate:
    case QSslError::SelfSignedCertificateInChain:
    case QSslError::UnableToGetLocalIssuerCertificate:
    case QSslError::UnableToGetIssuerCertificate:
    case QSslError::UnableToVerifyFirstCertificate:
    case QSslError::CertificateUntrusted:
        return certificateUntrusted();
    case QSslError::CertificateRevoked:
        return certificateRevoked();
    default:
        return error.errorString();
    }
}
#endif

/// Qt 6.4 reports many failures of the network proxy with the codes of a direct connection (or as
/// UnknownNetworkError with a text): the code the failure really has, seen from the proxy.
QNetworkReply::NetworkError proxyLevelError(QNetworkReply::NetworkError error, const QString &errorText,
                                            const QUrl &upstream, const QNetworkProxy &proxy)
{
    if (proxy.type() == QNetworkProxy::NoProxy || proxy.type() == QNetworkProxy::DefaultProxy)
        return error;
    const bool httpProxy
        = proxy.type() == QNetworkProxy::HttpProxy || proxy.type() == QNetworkProxy::HttpCachingProxy;
    // A plain-http request through an HTTP proxy is one exchange with the proxy; otherwise (CONNECT,
    // SOCKS5) the proxy opens a tunnel and what comes after it is the upstream's.
    const bool onlyTheProxy = httpProxy && upstream.scheme() != QLatin1String("https");
    const QString text = errorText.toLower();
    if (text.contains(
            QLatin1String("proxy"))) { // "Proxy connection refused", "Connection to proxy refused"...
        if (text.contains(QLatin1String("refused")))
            return QNetworkReply::ProxyConnectionRefusedError;
        if (text.contains(QLatin1String("not found")))
            return QNetworkReply::ProxyNotFoundError;
        if (text.contains(QLatin1String("timed out")) || text.contains(QLatin1String("timeout")))
            return QNetworkReply::ProxyTimeoutError;
        if (text.contains(QLatin1String("closed")))
            return QNetworkReply::ProxyConnectionClosedError;
        if (text.contains(QLatin1String("authentication")))
            return QNetworkReply::ProxyAuthenticationRequiredError;
    }
    switch (error) {
    case QNetworkReply::ConnectionRefusedError: // the TCP connection goes to the proxy in every case
        return QNetworkReply::ProxyConnectionRefusedError;
    case QNetworkReply::HostNotFoundError:
        return onlyTheProxy || (!proxy.hostName().isEmpty() && errorText.contains(proxy.hostName()))
            ? QNetworkReply::ProxyNotFoundError
            : error;
    case QNetworkReply::RemoteHostClosedError:
        return onlyTheProxy ? QNetworkReply::ProxyConnectionClosedError : error;
    case QNetworkReply::TimeoutError:
        return onlyTheProxy ? QNetworkReply::ProxyTimeoutError : error;
    default:
        return error;
    }
}

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

NetworkFailure describeNetworkFailure(QNetworkReply::NetworkError error, const QString &errorText,
#ifndef QT_NO_SSL
                                      const QList<QSslError> &sslErrors,
#endif
                                      const QUrl &upstream, const QNetworkProxy &proxy)
{
    const Wording say(upstream, proxy);
    switch (proxyLevelError(error, errorText, upstream, proxy)) {
    case QNetworkReply::ProxyConnectionRefusedError:
        return say.proxyRefused();
    case QNetworkReply::ProxyNotFoundError:
        return say.proxyNotFound();
    case QNetworkReply::ProxyConnectionClosedError:
        return say.proxyClosed();
    case QNetworkReply::ProxyTimeoutError:
        return Wording::proxyFailure(QStringLiteral("%1 did not answer in time").arg(say.proxyName));
    case QNetworkReply::ProxyAuthenticationRequiredError:
        return say.proxyWantsCredentials();
    case QNetworkReply::SslHandshakeFailedError: {
        QStringList problems;
#ifndef QT_NO_SSL
        for (const QSslError &sslError : sslErrors) {
            const QString problem = certificateProblem(sslError, upstream);
            if (!problems.contains(problem))
                problems.append(problem);
        }
#endif
        if (problems.isEmpty())
            problems.append(errorText);
        return say.tls(problems.join(QLatin1String("; ")));
    }
    case QNetworkReply::ConnectionRefusedError:
        return say.via.isEmpty()
            ? say.refused()
            : Wording::unreachable(QStringLiteral("%1 refused the connection").arg(say.proxyName));
    case QNetworkReply::HostNotFoundError:
        return say.notFound();
    case QNetworkReply::RemoteHostClosedError:
        return say.closed();
    case QNetworkReply::TimeoutError:
        return Wording::unreachable(QStringLiteral("%1 did not answer in time").arg(say.target));
    default:
        return say.other(errorText);
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
    case CURLE_PROXY:
        if (!say.via.isEmpty()
            && (upstream.scheme() != QLatin1String("https") || CURLcode(result.curlCode) == CURLE_PROXY))
            return say.proxyClosed();
        return say.closed();
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

NetworkFailure describeNetworkFailure(QNetworkReply *reply, const ProxyConfig &config
#ifndef QT_NO_SSL
                                      ,
                                      const QList<QSslError> &sslErrors
#endif
)
{
    return describeNetworkFailure(reply->error(), reply->errorString(),
#ifndef QT_NO_SSL
                                  sslErrors,
#endif
                                  reply->url(), effectiveProxy(config, reply->url()));
}

} // namespace keyrelay
