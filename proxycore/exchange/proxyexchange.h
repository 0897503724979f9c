// One client request forwarded upstream, and its response streamed back: an explicit state machine.
//
//   Preparing ──► WaitingForKey ──► AwaitingAnswer ──► Streaming ──► Done
//        │              │              │    ▲   │                    ▲
//        │              │              │    │   └─► HoldingError ────┤
//        │              │              │    └── retry (next key) ◄───┘
//        └──────────────┴──────────────┴──► Done (KeyRelay's own error)
//
// Each upstream try is an Attempt, built afresh (key lease, upstream call, status, held error bytes,
// captured bytes for the usage counts); a retry starts a new one with the same request body, byte for
// byte. Two seams make it testable without sockets: the client side is a ResponseSink (HttpConnection in
// the proxy), the upstream side an UpstreamClient that starts UpstreamCalls (CurlEngine in the proxy).
#pragma once

#include "keypool.h"
#include "providerrouter.h"
#include "proxyconfig.h"
#include "requestrecord.h"
#include "responsesink.h"
#include "tokenusage.h"
#include "upstreamcall.h"

#include <QBasicTimer>
#include <QElapsedTimer>
#include <QNetworkProxy>
#include <QObject>
#include <QPointer>
#include <QSet>

#include <memory>
#include <optional>

namespace keyrelay {

class AccessPolicy;
class ModelListing;
class SecretRedactor;
struct NetworkFailure;

/// How upstream requests leave the proxy: the client that starts them, and what every request shares.
struct UpstreamAccess
{
    UpstreamClient *client = nullptr;
    /// The configured network proxy (NoProxy for none); unset: "system", asked per request.
    std::optional<QNetworkProxy> proxy = QNetworkProxy(QNetworkProxy::NoProxy);
    QByteArray extraCaCertificatesPem; ///< see UpstreamRequestSpec::extraCaCertificatesPem
};

/// One provider as an exchange uses it: its settings, its keys and how it is reached.
struct ProviderEndpoint
{
    ProviderConfig config;
    KeyPool *keys = nullptr; ///< never null (an empty pool: the client's key passes through)
    /// The network proxy for this provider (NoProxy for none); unset: "system", asked per request.
    std::optional<QNetworkProxy> proxy = QNetworkProxy(QNetworkProxy::NoProxy);
};

/// Every provider requests are routed among (shared, read-only, replaced as a whole on a settings change).
struct ProviderDirectory
{
    ProviderRouter router;
    QList<ProviderEndpoint> endpoints; ///< in the router's order
    std::shared_ptr<ModelListing> listing; ///< the providers' model lists fetched so far (may be null)
};

class ProxyExchange : public QObject
{
    Q_OBJECT
public:
    enum class Phase {
        Preparing, ///< built; start() validates, rewrites and routes the request
        WaitingForKey, ///< every key has [health] maxConcurrentPerKey requests in flight
        AwaitingAnswer, ///< the request went upstream; no final answer yet
        HoldingError, ///< an error answer is read to its end (masked, retried or passed on then)
        Streaming, ///< the head went to the client; the body flows, paced by the client
        Done, ///< finished() was emitted
    };
    Q_ENUM(Phase)

    /// Bytes the client may have pending before the upstream is no longer read (back-pressure).
    static constexpr qint64 ClientBacklogLimit = 256 * 1024;
    /// Bytes the upstream call may hold unread before it pauses the upstream.
    static constexpr qint64 UpstreamBufferLimit = 256 * 1024;
    /// An upstream error body is held until complete, at most this much.
    static constexpr qint64 MaxHeldErrorBody = 1024 * 1024;

    /// @p corsHeaders: what every response to this request carries for the browser (empty when the
    /// request has no allowed Origin); decided by the AccessPolicy. @p redactor masks configured
    /// secrets in upstream error bodies and headers before the client sees them.
    ProxyExchange(quint64 id, ResponseSink *client, const HttpRequest &request,
                  std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const AccessPolicy> policy,
                  HeaderList corsHeaders, KeyPool *keys, std::shared_ptr<const UpstreamAccess> upstream,
                  const SecretRedactor *redactor, QObject *parent = nullptr);
    ~ProxyExchange() override;

    /// The providers to route among. Without it the exchange forwards to the configuration's single
    /// upstream with @p keys (the provider "default"). Call before start().
    void setProviders(std::shared_ptr<const ProviderDirectory> providers) { m_directory = std::move(providers); }

    /// Validates, rewrites and sends the request. Emits finished() exactly once, possibly from here.
    void start();
    /// Ends the exchange now (shutdown): the client gets an error or a cut-off stream.
    void abort(const QString &reason);

    Phase phase() const { return m_phase; }
    /// The upstream call of the current attempt (null when none is in flight).
    UpstreamCall *upstreamCall() const { return m_attempt.call; }

Q_SIGNALS:
    void finished(const keyrelay::RequestRecord &record);
    /// A provider that could not serve the request before the first byte; the next one is tried. Its
    /// row for the log (same id as the request's; the server gives it one of its own).
    void providerFailed(const keyrelay::RequestRecord &record);

protected:
    void timerEvent(QTimerEvent *event) override;

private:
    /// One try upstream with one key.
    struct Attempt
    {
        KeyLease lease;
        bool leaseHeld = false; ///< counts against its key's requests in flight
        QPointer<UpstreamCall> call;
        int status = 0;
        bool streamed = false; ///< text/event-stream
        QByteArray heldError; ///< HoldingError: the error body so far
        bool captureUsage = false; ///< the answer may carry token counts (JSON, a stream, an error)
        QByteArray captured; ///< JSON response bytes kept for the usage counts, an error's tail (bounded)
        StreamUsageTracker streamUsage; ///< a stream's token counts, fed every byte
        std::optional<StreamUsageFilter> usageFilter; ///< takes the extra usage chunk out of the stream
    };

    void setPhase(Phase phase);
    const ProviderEndpoint &endpoint() const { return m_directory->endpoints.at(m_route.steps.at(m_step).provider); }
    KeyPool *keys() const { return endpoint().keys; }
    /// Sets up the current route step: URL, network proxy, the body with its model name. False (and the
    /// client answered) when the path cannot be mapped onto the provider's base URL.
    bool prepareStep();
    /// Moves on to the next provider of the route when the current one cannot serve the request (before
    /// the first byte). False when there is none.
    bool fallBack(const QString &why);
    /// Takes a key (or waits for one to free up) and starts the first attempt.
    void acquireKeyAndSend();
    void stopWaitingForKey();
    /// Ends the current attempt (its call dropped, its lease given back) and starts @p next.
    void beginAttempt(Attempt next);
    void endAttempt();
    UpstreamRequestSpec buildUpstreamRequest() const;

    void onUpstreamHeaders();
    void onUpstreamData();
    void onUpstreamFinished();
    void onClientGone();
    /// Moves what the upstream sent on, as far as the phase and the client allow.
    void pump();
    void onIdleTimeout();
    /// No byte moved either way for idleTimeoutSec: restart the clock.
    void restartIdleTimer();
    qint64 deliveredToClient() const;

    /// The upstream gave no HTTP answer: say where it failed; another key is tried when that may help.
    void failWithoutAnswer(const NetworkFailure &failure, bool keyMayHelp);
    void respondWithError(int status, const QString &message, const QString &type, const QString &code,
                          const HeaderList &extraHeaders = {});
    /// Tries the next key for the same request (before the client saw anything). False if none may.
    /// @p keysFault: the key was refused (does not count against [health] maxAttempts).
    bool retryWithNextKey(const QString &why, bool keysFault);
    /// An upstream that rejects the stream_options KeyRelay added gets the client's request as it was.
    bool resendWithoutStreamUsage();
    /// Books what this request taught about the keys it used (see the shared-failure rule).
    void commitVerdicts(bool succeeded);
    void addVerdict(KeyVerdict verdict, const QString &reason);
    /// Decides on a complete held-back error: another key, or the answer goes to the client.
    void onHeldErrorComplete();
    qint64 retryAfterMs() const;
    void complete(const QString &error = QString());
    HeaderList responseHeaders() const;
    qint64 headContentLength() const;
    void capture(const QByteArray &data);
    /// Sends response body bytes to the client (filtered as this response needs).
    void forward(const QByteArray &data);
    /// Sends a complete held-back upstream error response, with every configured secret in it masked.
    void releaseHeldError();
    /// An upstream error body over MaxHeldErrorBody: the client gets the status with KeyRelay's own error.
    void replaceOversizedError();

    QPointer<ResponseSink> m_client;
    HttpRequest m_request;
    std::shared_ptr<const ProxyConfig> m_config;
    std::shared_ptr<const AccessPolicy> m_policy;
    HeaderList m_corsHeaders;
    KeyPool *m_keys;
    std::shared_ptr<const UpstreamAccess> m_upstream;
    const SecretRedactor *m_redactor;

    Phase m_phase = Phase::Preparing;
    Attempt m_attempt;

    // Decided once, in start(), for every attempt.
    QByteArray m_body; ///< what goes upstream (rewritten or original)
    bool m_usageRequested = false; ///< m_body asks for stream usage that the client did not ask for
    QByteArray m_bodyWithoutUsage; ///< m_body without that (for an upstream that rejects it)
    QByteArray m_routedBody; ///< m_body before a route step renamed the model
    QByteArray m_routedBodyWithoutUsage;
    QString m_clientModel; ///< the "model" the client sent (or the id of GET /v1/models/<id>)
    bool m_modelInPath = false; ///< m_clientModel came from the path (GET /v1/models/<id>)
    std::shared_ptr<const ProviderDirectory> m_directory;
    ProviderRoute m_route;
    int m_step = 0; ///< index into m_route.steps
    QString m_clientKey;
    bool m_clientUsedApiKeyHeader = false;
    QUrl m_upstreamUrl;
    QNetworkProxy m_proxy = QNetworkProxy(QNetworkProxy::NoProxy); ///< how every attempt reaches it

    // Across attempts.
    QSet<QString> m_triedKeyIds;
    int m_transientFailures = 0; ///< tries that failed in ways that may pass (5xx, network)
    struct PendingVerdict
    {
        QString keyId;
        KeyVerdict verdict;
        qint64 retryAfterMs;
        QString reason;
    };
    QList<PendingVerdict> m_verdicts; ///< per key tried for this request, booked when it ends

    QBasicTimer m_idleTimer;
    qint64 m_deliveredAtIdleStart = 0;
    QBasicTimer m_keyWaitTimer;
    QElapsedTimer m_clock;
    RequestRecord m_record;
};

} // namespace keyrelay
