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

#ifndef QT_NO_SSL
QString certificateProblem(const QSslError &error, const QUrl &upstream)
{
    const QSslCertificate certificate = error.certificate();
    switch (error.error()) {
    case QSslError::CertificateExpired:
        return certificate.isNull() ? QStringLiteral("its certificate has expired")
                                    : QStringLiteral("its certificate expired on %1")
                                          .arg(certificate.expiryDate().toUTC().toString(Qt::ISODate));
    case QSslError::CertificateNotYetValid:
        return QStringLiteral("its certificate is not valid yet");
    case QSslError::HostNameMismatch: {
        QStringList names = certificate.subjectAlternativeNames().values(QSsl::DnsEntry);
        if (names.isEmpty())
            names = certificate.subjectInfo(QSslCertificate::CommonName);
        return names.isEmpty() ? QStringLiteral("its certificate is not for %1").arg(upstream.host())
                               : QStringLiteral("its certificate is for %1, not %2")
                                     .arg(names.join(QLatin1String(", ")), upstream.host());
    }
    case QSslError::SelfSignedCertificate:
    case QSslError::SelfSignedCertificateInChain:
    case QSslError::UnableToGetLocalIssuerCertificate:
    case QSslError::UnableToGetIssuerCertificate:
    case QSslError::UnableToVerifyFirstCertificate:
    case QSslError::CertificateUntrusted:
        return QStringLiteral("its certificate is not trusted (self-signed or from an authority this "
                              "machine does not trust)");
    case QSslError::CertificateRevoked:
        return QStringLiteral("its certificate has been revoked");
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
    const QString via = describeProxy(proxy);
    const QString target = QStringLiteral("the upstream %1").arg(upstreamName(upstream));
    const auto proxyFailure = [](const QString &message) {
        return NetworkFailure { message, QStringLiteral("upstream_proxy_error") };
    };
    const auto unreachable = [](const QString &message) {
        return NetworkFailure { message, QStringLiteral("upstream_unreachable") };
    };
    const QString proxyName = via.isEmpty() ? QStringLiteral("the network proxy") : via;
    switch (proxyLevelError(error, errorText, upstream, proxy)) {
    case QNetworkReply::ProxyConnectionRefusedError:
        return proxyFailure(QStringLiteral("%1 refused the connection (is it running?)").arg(proxyName));
    case QNetworkReply::ProxyNotFoundError:
        return proxyFailure(
            QStringLiteral("%1 was not found (its host name does not resolve)").arg(proxyName));
    case QNetworkReply::ProxyConnectionClosedError:
        return proxyFailure(
            QStringLiteral("%1 closed the connection before %2 answered").arg(proxyName, target));
    case QNetworkReply::ProxyTimeoutError:
        return proxyFailure(QStringLiteral("%1 did not answer in time").arg(proxyName));
    case QNetworkReply::ProxyAuthenticationRequiredError:
        if (!proxy.user().isEmpty() || !proxy.password().isEmpty())
            return proxyFailure(
                QStringLiteral("%1 refused the credentials (user \"%2\")").arg(proxyName, proxy.user()));
        return proxyFailure(QStringLiteral("%1 asks for credentials and none are set (give them in the "
                                           "upstream proxy setting: http://user:password@host:port)")
                                .arg(proxyName));
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
        return { QStringLiteral("TLS with %1 failed: %2").arg(target, problems.join(QLatin1String("; "))),
                 QStringLiteral("upstream_tls_error") };
    }
    case QNetworkReply::ConnectionRefusedError:
        return unreachable(via.isEmpty() ? QStringLiteral("%1 refused the connection").arg(target)
                                         : QStringLiteral("%1 refused the connection").arg(proxyName));
    case QNetworkReply::HostNotFoundError:
        return unreachable(QStringLiteral("%1 was not found (its host name does not resolve)").arg(target));
    case QNetworkReply::RemoteHostClosedError:
        return unreachable(QStringLiteral("%1 closed the connection before answering").arg(target));
    case QNetworkReply::TimeoutError:
        return unreachable(QStringLiteral("%1 did not answer in time").arg(target));
    default:
        return unreachable(
            QStringLiteral("%1%2 unreachable: %3")
                .arg(target,
                     via.isEmpty() ? QString() : QStringLiteral(" (through ") + via + QLatin1Char(')'),
                     errorText));
    }
}

NetworkFailure describeUpstreamResult(const UpstreamResult &result, const QUrl &upstream,
                                      const QNetworkProxy &proxy, int connectTimeoutSec)
{
    const QString via = describeProxy(proxy);
    const QString proxyName = via.isEmpty() ? QStringLiteral("the network proxy") : via;
    const QString target = QStringLiteral("the upstream %1").arg(upstreamName(upstream));
    const auto proxyFailure = [](const QString &message) {
        return NetworkFailure { message, QStringLiteral("upstream_proxy_error") };
    };
    const auto unreachable = [](const QString &message) {
        return NetworkFailure { message, QStringLiteral("upstream_unreachable") };
    };
    if (result.headersTooLarge)
        return { QStringLiteral("%1 sent response headers over the limit of 256 KiB").arg(target),
                 QStringLiteral("upstream_error") };
    if (result.proxyConnectCode == 407) {
        if (!proxy.user().isEmpty() || !proxy.password().isEmpty())
            return proxyFailure(
                QStringLiteral("%1 refused the credentials (user \"%2\")").arg(proxyName, proxy.user()));
        return proxyFailure(QStringLiteral("%1 asks for credentials and none are set (give them in the "
                                           "upstream proxy setting: http://user:password@host:port)")
                                .arg(proxyName));
    }
    if (result.proxyConnectCode >= 300)
        return proxyFailure(QStringLiteral("%1 would not open a tunnel to %2 (HTTP %3)")
                                .arg(proxyName, target)
                                .arg(result.proxyConnectCode));
    switch (CURLcode(result.curlCode)) {
    case CURLE_COULDNT_RESOLVE_PROXY:
        return proxyFailure(
            QStringLiteral("%1 was not found (its host name does not resolve)").arg(proxyName));
    case CURLE_COULDNT_RESOLVE_HOST:
        return unreachable(QStringLiteral("%1 was not found (its host name does not resolve)").arg(target));
    case CURLE_COULDNT_CONNECT:
        if (!via.isEmpty())
            return proxyFailure(QStringLiteral("%1 refused the connection (is it running?)").arg(proxyName));
        if (result.osErrno == ECONNREFUSED)
            return unreachable(QStringLiteral("%1 refused the connection").arg(target));
        break;
    case CURLE_OPERATION_TIMEDOUT:
        return describeTimeout(true, connectTimeoutSec, upstream, proxy);
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PROXY:
        if (!via.isEmpty()
            && (upstream.scheme() != QLatin1String("https") || CURLcode(result.curlCode) == CURLE_PROXY))
            return proxyFailure(
                QStringLiteral("%1 closed the connection before %2 answered").arg(proxyName, target));
        return unreachable(QStringLiteral("%1 closed the connection before answering").arg(target));
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR: {
        QString problem;
        switch (result.sslVerifyResult) {
        case 9: // X509_V_ERR_CERT_NOT_YET_VALID
            problem = QStringLiteral("its certificate is not valid yet");
            break;
        case 10: // X509_V_ERR_CERT_HAS_EXPIRED
            problem = result.certificateExpiry.isValid()
                ? QStringLiteral("its certificate expired on %1")
                      .arg(result.certificateExpiry.toUTC().toString(Qt::ISODate))
                : QStringLiteral("its certificate has expired");
            break;
        case 2: // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        case 18: // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        case 19: // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        case 20: // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        case 21: // X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            problem = QStringLiteral("its certificate is not trusted (self-signed or from an authority this "
                                     "machine does not trust)");
            break;
        case 23: // X509_V_ERR_CERT_REVOKED
            problem = QStringLiteral("its certificate has been revoked");
            break;
        case 62: // X509_V_ERR_HOSTNAME_MISMATCH
            problem = QStringLiteral("its certificate is not for %1").arg(upstream.host());
            break;
        default:
            problem = result.message.contains(QLatin1String("subject name"))
                ? QStringLiteral("its certificate is not for %1").arg(upstream.host())
                : result.message;
        }
        if (problem.startsWith(QLatin1String("its certificate is not for"))
            && !result.certificateNames.isEmpty()) {
            problem = QStringLiteral("its certificate is for %1, not %2")
                          .arg(result.certificateNames.join(QLatin1String(", ")), upstream.host());
        }
        return { QStringLiteral("TLS with %1 failed: %2").arg(target, problem),
                 QStringLiteral("upstream_tls_error") };
    }
    default:
        break;
    }
    return unreachable(
        QStringLiteral("%1%2 unreachable: %3")
            .arg(target, via.isEmpty() ? QString() : QStringLiteral(" (through ") + via + QLatin1Char(')'),
                 result.message));
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
