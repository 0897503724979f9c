// One client request forwarded upstream, and its response streamed back.
#pragma once

#include "httpconnection.h"
#include "keypool.h"
#include "proxyconfig.h"
#include "requestrecord.h"
#include "tokenusage.h"

#include <QBasicTimer>
#include <QElapsedTimer>
#include <QNetworkReply>
#include <QObject>
#include <QPointer>
#include <QSet>

#include <memory>
#include <optional>

class QNetworkAccessManager;

namespace keyrelay {

class AccessPolicy;
class SecretRedactor;
class UpstreamPool;

class ProxyExchange : public QObject
{
    Q_OBJECT
public:
    /// @p corsHeaders: what every response to this request carries for the browser (empty when the
    /// request has no allowed Origin); decided by the AccessPolicy. @p redactor masks configured
    /// secrets in upstream error bodies before the client sees them.
    ProxyExchange(quint64 id, HttpConnection *client, const HttpRequest &request,
                  std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const AccessPolicy> policy,
                  HeaderList corsHeaders, KeyPool *keys, UpstreamPool *upstream,
                  const SecretRedactor *redactor, QObject *parent = nullptr);
    ~ProxyExchange() override;

    /// Validates, rewrites and sends the request. Emits finished() exactly once, possibly from here.
    void start();
    /// Ends the exchange now (shutdown): the client gets an error or a cut-off stream.
    void abort(const QString &reason);

Q_SIGNALS:
    void finished(const keyrelay::RequestRecord &record);

protected:
    void timerEvent(QTimerEvent *event) override;

private:
    enum class Timeout { None, Connect, Idle };

    /// Takes a key (or waits for one to free up) and sends the request.
    void acquireKeyAndSend();
    void onKeyReleased();
    /// Gives the key back to the pool (its request slot), once.
    void releaseLease();
    void sendUpstream();
    QNetworkRequest buildUpstreamRequest() const;
    void onUpstreamHeaders();
    void onUpstreamData();
    void onUpstreamFinished();
    void onConnectionProgress();
    /// Any sign of life (connection progress, response headers or data) resets the idle timeout.
    void restartIdleTimer();
    void onClientGone();
    void onStallCheck();
    void pump();
    void respondWithError(int status, const QString &message, const QString &type, const QString &code,
                          const HeaderList &extraHeaders = {});
    /// Tries the next key for the same request (before the client saw anything). False if none may.
    /// @p keysFault: the key was refused (does not count against [health] maxAttempts).
    bool retryWithNextKey(const QString &why, bool keysFault);
    /// Back to "nothing sent to the client yet" and the request sent again with m_lease.
    void resend();
    /// An upstream that rejects the stream_options KeyRelay added gets the client's request as it was.
    bool resendWithoutStreamUsage();
    /// Books what this request taught about the keys it used (see the shared-failure rule).
    void commitVerdicts(bool succeeded);
    /// Decides on a complete held-back error: another key, or the answer goes to the client.
    void onHeldErrorComplete();
    qint64 retryAfterMs() const;
    void complete(const QString &error = QString());
    void dropReply();
    HeaderList responseHeaders() const;
    qint64 headContentLength() const;
    void capture(const QByteArray &data);
    /// Sends response body bytes to the client (masked / filtered as this response needs).
    void forward(const QByteArray &data);
    /// Sends a complete held-back upstream error response, with every configured secret in it masked.
    void releaseHeldError();
    /// An upstream error body over MaxHeldErrorBody: the client gets the status with KeyRelay's own error.
    void replaceOversizedError();

    QPointer<HttpConnection> m_client;
    HttpRequest m_request;
    std::shared_ptr<const ProxyConfig> m_config;
    std::shared_ptr<const AccessPolicy> m_policy;
    HeaderList m_corsHeaders;
    KeyPool *m_keys;
    UpstreamPool *m_upstream;
    const SecretRedactor *m_redactor;

    QByteArray m_body; ///< what goes upstream (rewritten or original)
    bool m_usageRequested = false; ///< m_body asks for stream usage that the client did not ask for
    QByteArray m_bodyWithoutUsage; ///< m_body without that (for an upstream that rejects it)
    std::optional<StreamUsageFilter> m_usageFilter; ///< takes the extra usage chunk out of the stream
    QString m_clientKey;
    bool m_clientUsedApiKeyHeader = false;
    KeyLease m_lease;
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
    QUrl m_upstreamUrl;

    QNetworkAccessManager *m_manager = nullptr;
    QPointer<QNetworkReply> m_reply;
#ifndef QT_NO_SSL
    QList<QSslError> m_sslErrors; ///< what the current reply's TLS handshake found wrong
#endif
    QBasicTimer m_connectTimer;
    QBasicTimer m_idleTimer;
    QBasicTimer m_stallTimer; ///< runs while the client lags; see ClientStallMs
    QBasicTimer m_keyWaitTimer; ///< waiting for a key below [health] maxConcurrentPerKey
    bool m_waitingForKey = false;
    bool m_leaseHeld = false; ///< m_lease counts against its key's requests in flight
    qint64 m_deliveredAtStallCheck = 0;
    Timeout m_timeout = Timeout::None;
    bool m_headSent = false; ///< the response is decided: no retry, no own error any more
    /// An upstream error (status >= 400, streams too) is held back until complete, so that a key the
    /// upstream echoes in it can be masked; one over MaxHeldErrorBody is replaced by KeyRelay's own error.
    bool m_holdingError = false;
    QByteArray m_heldError;
    bool m_upstreamDone = false;
    bool m_completed = false;
    QByteArray m_captured; ///< response bytes kept for the usage counts (bounded)
    QElapsedTimer m_clock;
    RequestRecord m_record;
};

} // namespace keyrelay
