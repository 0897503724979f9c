// Checks one key without spending tokens: GET <upstream>/v1/models with that key, asynchronously.
// The Keys page's Test button and the background re-check of invalid keys (KeyHealthMonitor) use it.
#pragma once

#include "provider.h"
#include "proxyconfig.h"
#include "upstreamcall.h"

#include <QHash>
#include <QObject>

namespace keyrelay {

class CurlEngine;
class UpstreamTransfer;

/// Runs its checks on its own CurlEngine, in the thread it lives in (the proxy thread for the background
/// re-check, the GUI thread for the Test button).
class KeyTester : public QObject
{
    Q_OBJECT
public:
    enum class Outcome { Ok, InvalidKey, NoNetwork, UpstreamError };
    Q_ENUM(Outcome)

    explicit KeyTester(QObject *parent = nullptr);
    ~KeyTester() override;

    /// Upstream base URL, upstream network proxy and timeout come from @p config.
    void setConfig(const ProxyConfig &config);
    /// CAs trusted besides the system's (PEM), as for proxied requests (see UpstreamAccess).
    /// How the key goes in the request: Authorization: Bearer (openai) or x-api-key (anthropic).
    void setProviderKind(ProviderKind kind) { m_kind = kind; }
    void setExtraCaCertificates(const QByteArray &pem) { m_extraCaPem = pem; }
    /// The URL a test requests: the upstream base + "/v1/models", without doubling "/v1".
    static QUrl modelsUrl(const QUrl &upstream);
    /// A GET of the model list at @p base with @p secret placed as @p kind wants it (none when empty), with
    /// the connect timeout and a total limit of at least 5 s: the request the key test, the merged model
    /// list and the Providers page's Test send. Callers add the network proxy, HTTP/2 and extra CAs.
    static UpstreamRequestSpec modelListRequest(const QUrl &base, ProviderKind kind, const QString &secret,
                                                int connectTimeoutSec);

    /// Starts a test; the answer comes as finished() with the returned ticket.
    quint64 test(const QString &secret);
    int pendingCount() const { return int(m_pending.size()); }

Q_SIGNALS:
    /// @p message is safe to show (the upstream's error message or where the network failed).
    void finished(quint64 ticket, keyrelay::KeyTester::Outcome outcome, const QString &message);

private:
    struct Pending
    {
        quint64 ticket = 0;
        QByteArray body; ///< the start of the answer (an error's message; a model list is not kept)
    };
    void onFinished(UpstreamTransfer *transfer);

    CurlEngine *m_engine = nullptr;
    ProxyConfig m_config;
    QByteArray m_extraCaPem;
    ProviderKind m_kind = ProviderKind::OpenAi;
    QHash<UpstreamTransfer *, Pending> m_pending;
    quint64 m_nextTicket = 1;
};

} // namespace keyrelay
