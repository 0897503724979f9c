#include "upstreamrouter.h"

#include "curlengine.h"

namespace keyrelay {

namespace {

QString hostKey(const QUrl &url)
{
    return url.host() + QLatin1Char(':') + QString::number(url.port(443));
}

} // namespace

UpstreamRouter::UpstreamRouter(QObject *parent)
    : QObject(parent), m_multiplexed(new CurlEngine(this)), m_serial(new CurlEngine(this))
{
    m_multiplexed->setMaxConnectionsPerHost(MaxMultiplexedConnectionsPerHost);
    m_multiplexed->setMaxStreamsPerConnection(MaxStreamsPerConnection); // libcurl's default is 100
}

void UpstreamRouter::setMaxConnections(int connections)
{
    // The multiplexed engine needs few; the budget is the serial engine's.
    m_multiplexed->setMaxConnections(connections);
    m_serial->setMaxConnections(connections);
}

void UpstreamRouter::setThreadsSharingTheCap(int threads)
{
    m_multiplexed->setMaxConnectionsPerHost(qMax(4, MaxMultiplexedConnectionsPerHost / qMax(1, threads)));
}

UpstreamCall *UpstreamRouter::startCall(const UpstreamRequestSpec &spec, QObject *parent)
{
    const bool mayMultiplex = spec.http2 && spec.url.scheme() == QLatin1String("https")
        && !m_http1Hosts.contains(hostKey(spec.url));
    if (!mayMultiplex)
        return m_serial->startCall(spec, parent);
    UpstreamCall *call = m_multiplexed->startCall(spec, parent);
    const QString host = hostKey(spec.url);
    connect(call, &UpstreamCall::headersReceived, this, [this, call, host] {
        if (call->httpVersion() == "1.1")
            m_http1Hosts.insert(host); // no HTTP/2 there: its requests must not queue for a few connections
    });
    return call;
}

} // namespace keyrelay
