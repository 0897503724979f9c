// Everything the proxy needs to know to run, as plain values.
#pragma once

#include "provider.h"

#include <QHostAddress>
#include <QNetworkProxy>
#include <QString>
#include <QStringList>
#include <QUrl>

namespace keyrelay {

struct ProxyConfig
{
    static constexpr quint16 DefaultPort = 9000;

    QString listenHost = QStringLiteral("127.0.0.1");
    quint16 listenPort = DefaultPort; ///< 0 picks a free port (tests)
    bool allowRemoteClients = false; ///< listening on a non-loopback address needs this
    QUrl upstream = QUrl(QStringLiteral("https://api.openai.com"));
    QString upstreamProxy; ///< "" = none, "system", or http://[user:pass@]host:port, socks5://...
    bool reorderEnabled = true;
    int reorderThreshold = 4; ///< rewrite when there are more messages than this
    int reorderDepth = 3; ///< messages that follow the system message after the rewrite
    QStringList stripPrefixes; ///< path prefixes removed before forwarding, e.g. "/release"
    int connectTimeoutSec = 15;
    int idleTimeoutSec = 300; ///< no bytes in either direction for this long ends the request
    qint64 maxBodyBytes = qint64(32) * 1024 * 1024;
    /// Browser origins allowed besides the default ones (loopback pages, extensions, desktop apps):
    /// exact origins such as "https://bettergpt.chat", or "https://*.example.org" for subdomains.
    QStringList allowedOrigins;
    bool allowAnyWebsite = false; ///< every website open in the browser may use the keys
    QString clientToken; ///< when set, every request must carry it; required for remote access
    QStringList allowedHosts; ///< Host names accepted besides loopback names (behind a reverse proxy)
    int shutdownGraceSec = 10; ///< how long a stop waits for in-flight responses
    int headTimeoutSec = 10; ///< a request head must be complete this long after its first byte
    int maxConnections = 2048; ///< simultaneous client connections; more are answered 503
    int recheckInvalidSec = 300; ///< [health] an invalid key is tried again after this long
    int recheckExhaustedSec = 3600; ///< [health] a key out of quota is tried again after this long
    int maxAttempts = 3; ///< [health] keys tried for one request before the client sees the answer
    /// [health] requests one key may have in flight at once; 0 = no limit. When every key is at its
    /// limit, a request waits (up to connectTimeoutSec) for one to free up.
    int maxConcurrentPerKey = 0;
    /// [usage] streamed chat requests that do not ask for usage get stream_options.include_usage, so
    /// their tokens are counted; the extra chunk is taken out of the client's stream again.
    bool requestStreamUsage = true;
    /// [proxy] HTTP/2 to HTTPS upstreams that offer it. Off: HTTP/1.1 (Qt 6.4's HTTP/2 client can leave
    /// a request hanging after the server's GOAWAY; with TCP_NODELAY HTTP/1.1 is as fast).
    bool upstreamHttp2 = true; ///< HTTP/2 (ALPN) to https upstreams that offer it; HTTP/1.1 otherwise
    /// [providers] order and [provider.<id>] (issue 17). Empty: one provider "default" made of upstream
    /// and upstreamProxy (a configuration from before providers keeps working unchanged).
    QList<ProviderConfig> providers;

    /// The providers requests are routed among: providers, or the single "default" one.
    QList<ProviderConfig> effectiveProviders() const;

    /// Human-readable problems; empty when the configuration can be used.
    QStringList validate() const;

    /// Parses "HOST:PORT", "[v6]:PORT", "PORT" or "HOST". Returns false with an error message on bad input.
    static bool parseListen(const QString &text, QString *host, quint16 *port, QString *error);
    /// @p url with its user info (user name and password) replaced by "…", for messages.
    static QString withoutUserInfo(const QString &url);
    /// Parses an upstream base URL; accepts http and https, with or without a path.
    static bool parseUpstream(const QString &text, QUrl *url, QString *error);
    /// Normalises path prefixes to strip: trims each one and its trailing slashes and drops empty ones.
    /// A prefix without a leading "/" gets one when @p addLeadingSlash; otherwise it makes the list
    /// invalid and the function returns false.
    static bool normalizePathPrefixes(const QStringList &raw, bool addLeadingSlash, QStringList *prefixes);
    /// Parses the upstream proxy setting into a QNetworkProxy.
    static bool parseUpstreamProxy(const QString &text, QNetworkProxy *proxy, bool *useSystem,
                                   QString *error);

    /// The addresses to listen on: both loopbacks for "localhost", else the one address.
    QList<QHostAddress> listenAddresses() const;
    /// "http://127.0.0.1:9000" style base of the local endpoint (with the actual port when given).
    QString endpointUrl(quint16 actualPort = 0) const;
    /// What users paste into a client as its API base URL: the endpoint plus "/v1".
    QString clientBaseUrl(quint16 actualPort = 0) const
    {
        return endpointUrl(actualPort) + QStringLiteral("/v1");
    }
};

} // namespace keyrelay
