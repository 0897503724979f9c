// The proxy's upstream client: two CurlEngines in the proxy thread. Requests that may share HTTP/2
// connections (https, HTTP/2 allowed) go to one that opens at most MaxMultiplexedConnectionsPerHost
// connections per host, so that a burst fills the streams of a few connections; everything else goes to
// one without that limit (HTTP/1.1 carries one request per connection). Why: once the first HTTP/2
// connection's streams are full, libcurl 7.88 opens a new connection for every further transfer of a burst
// (200 streams to nginx, 128 streams per connection: 73 connections), each with its own TLS handshake.
// An https host that answers over HTTP/1.1 is moved to the unlimited engine.
#pragma once

#include "upstreamcall.h"

#include <QObject>
#include <QSet>

namespace keyrelay {

class CurlEngine;

class UpstreamRouter : public QObject, public UpstreamClient
{
    Q_OBJECT
public:
    /// For the whole proxy: each of its threads has a router with its share (see setThreadsSharingTheCap).
    static constexpr int MaxMultiplexedConnectionsPerHost = 16;
    static constexpr int MaxStreamsPerConnection = 256;

    explicit UpstreamRouter(QObject *parent = nullptr);

    UpstreamCall *startCall(const UpstreamRequestSpec &spec, QObject *parent = nullptr) override;
    /// Upstream connections open at once, both engines together.
    void setMaxConnections(int connections);
    /// The proxy serves on @p threads threads, each with a router: this one opens its share of
    /// MaxMultiplexedConnectionsPerHost (at least 4) HTTP/2 connections per host.
    void setThreadsSharingTheCap(int threads);
    /// Hosts ("host:port") whose https answers came over HTTP/1.1.
    QSet<QString> http1Hosts() const { return m_http1Hosts; }

private:
    CurlEngine *m_multiplexed; ///< https with HTTP/2 allowed: few connections per host, many streams
    CurlEngine *m_serial; ///< everything else: a connection per request in flight
    QSet<QString> m_http1Hosts;
};

} // namespace keyrelay
