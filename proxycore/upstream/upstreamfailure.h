// Where a request that got no HTTP answer failed, said so that the user knows what to fix: the
// upstream network proxy (named with its address), TLS (with the certificate problem), or the upstream.
#pragma once

#include "proxyconfig.h"

#include <QList>
#include <QNetworkProxy>
#include <QString>
#include <QUrl>

namespace keyrelay {

struct UpstreamResult;

struct NetworkFailure
{
    QString message; ///< e.g. "the HTTP proxy 127.0.0.1:8888 refused the credentials (user \"bob\")"
    QString
        code; ///< for the client's error body: upstream_proxy_error, upstream_tls_error, upstream_unreachable
};

/// The proxy the request used for @p upstream: the configured one, or the system's for "system".
/// NoProxy when there is none.
QNetworkProxy effectiveProxy(const ProxyConfig &config, const QUrl &upstream);

/// "the HTTP proxy 127.0.0.1:8888", "the SOCKS5 proxy [::1]:1080"; empty for NoProxy.
QString describeProxy(const QNetworkProxy &proxy);

/// A request that got nothing from the upstream in time: within the connect timeout (@p connecting:
/// not even sent) or the idle timeout, @p seconds long. Through a proxy, the proxy is named.
NetworkFailure describeTimeout(bool connecting, int seconds, const QUrl &upstream,
                               const QNetworkProxy &proxy);

/// Where an upstream call (CurlEngine) that ended without an HTTP answer failed: @p result's CURLcode,
/// OS error, certificate verification result and proxy CONNECT answer, for a request to @p upstream through
/// @p proxy, whose connection phase may take @p connectTimeoutSec.
NetworkFailure describeUpstreamResult(const UpstreamResult &result, const QUrl &upstream,
                                      const QNetworkProxy &proxy, int connectTimeoutSec);

} // namespace keyrelay
