#include "proxyexchange.h"

#include "accesspolicy.h"
#include "headerpolicy.h"
#include "logging.h"
#include "messagerewriter.h"
#include "openaierror.h"
#include "secretredactor.h"
#include "tokenusage.h"
#include "upstreamfailure.h"
#include "upstreampath.h"
#include "upstreampool.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QTimerEvent>

namespace keyrelay {

namespace {

constexpr qint64 ClientBacklogLimit = 1024 * 1024; ///< stop reading upstream while the client lags this much
constexpr qint64 UpstreamReadBuffer = 64 * 1024;
/// QNetworkAccessManager (Qt 6.4) stops handing data to the reply at its read buffer size, but its
/// HTTP thread's socket keeps reading the upstream: a client that takes no byte for this long while
/// data waits for it is cut off (the upstream request is aborted, the memory returned).
constexpr int ClientStallMs = 2000;
constexpr qint64 MaxCapturedJson = 4 * 1024 * 1024;
constexpr qint64 CapturedStreamTail = 64 * 1024;
constexpr qint64 MaxModelScanBytes = 4 * 1024 * 1024;
constexpr qint64 MaxHeldErrorBody = 1024 * 1024;

QByteArray defaultUserAgent()
{
    return QByteArrayLiteral("KeyRelay/" KEYRELAY_VERSION);
}

} // namespace

ProxyExchange::ProxyExchange(quint64 id, HttpConnection *client, const HttpRequest &request,
                             std::shared_ptr<const ProxyConfig> config,
                             std::shared_ptr<const AccessPolicy> policy, HeaderList corsHeaders,
                             KeyPool *keys, UpstreamPool *upstream, const SecretRedactor *redactor,
                             QObject *parent)
    : QObject(parent), m_client(client), m_request(request), m_config(std::move(config)),
      m_policy(std::move(policy)), m_corsHeaders(std::move(corsHeaders)), m_keys(keys), m_upstream(upstream),
      m_redactor(redactor)
{
    m_clock.start();
    m_record.id = id;
    m_record.startedAt = QDateTime::currentDateTime();
    m_record.method = QString::fromLatin1(request.method);
    m_record.path = QString::fromUtf8(request.target);
    m_record.requestBytes = request.body.size();
    connect(client, &HttpConnection::clientGone, this, &ProxyExchange::onClientGone);
    connect(client, &HttpConnection::outputDrained, this, &ProxyExchange::pump);
}

ProxyExchange::~ProxyExchange()
{
    releaseLease();
    dropReply();
}

void ProxyExchange::start()
{
    const ProxyConfig &config = *m_config;

    // Which key: the pool's, or in pass-through mode the client's own. KeyRelay's client access token
    // is never a key and never goes upstream.
    const AccessPolicy &policy = *m_policy;
    m_clientKey = QString::fromUtf8(HeaderPolicy::clientCredential(
        m_request, [&policy](const QByteArray &value) { return policy.isToken(value); },
        &m_clientUsedApiKeyHeader));

    // The body: rewrite chat conversations, read the model for the log.
    m_body = m_request.body;
    const QString pathOnly = m_record.path.section(QLatin1Char('?'), 0, 0);
    const bool isChat = MessageRewriter::appliesTo(m_request.method, pathOnly);
    if (isChat) {
        const RewriteOptions options { config.reorderEnabled, config.reorderThreshold, config.reorderDepth,
                                       config.requestStreamUsage };
        const MessageRewriter::Result result = MessageRewriter::rewrite(m_body, options);
        m_record.model = result.model;
        if (result.outcome == MessageRewriter::Outcome::InvalidJson && config.reorderEnabled) {
            respondWithError(400, result.error, QStringLiteral("invalid_request_error"),
                             QStringLiteral("invalid_json"));
            return;
        }
        if (result.outcome == MessageRewriter::Outcome::Rewritten) {
            if (result.usageRequested) {
                // Kept for an upstream that rejects stream_options: the request goes again without it.
                m_bodyWithoutUsage = m_body;
                if (result.reordered) {
                    const MessageRewriter::Result reorderOnly = MessageRewriter::rewrite(
                        m_body,
                        { config.reorderEnabled, config.reorderThreshold, config.reorderDepth, false });
                    m_bodyWithoutUsage = reorderOnly.body;
                }
            }
            m_body = result.body;
            m_record.rewritten = result.reordered;
            m_usageRequested = result.usageRequested;
        }
    } else if (!m_body.isEmpty() && m_body.size() <= MaxModelScanBytes
               && m_request.header("Content-Type").toLower().contains("json")) {
        m_record.model = MessageRewriter::modelOf(m_body);
    }

    // Where it goes.
    QString pathError;
    QString pathErrorCode;
    if (!UpstreamPath::mapTarget(config.upstream, m_request.target, config.stripPrefixes, &m_upstreamUrl,
                                 &pathError, &pathErrorCode)) {
        respondWithError(400, pathError, QStringLiteral("invalid_request_error"), pathErrorCode);
        return;
    }

    acquireKeyAndSend();
}

void ProxyExchange::onKeyReleased()
{
    if (m_waitingForKey && !m_completed)
        acquireKeyAndSend();
}

void ProxyExchange::releaseLease()
{
    if (m_leaseHeld) {
        m_leaseHeld = false;
        m_keys->release(m_lease.keyId);
    }
}

void ProxyExchange::acquireKeyAndSend()
{
    if (!m_keys->isEmpty()) {
        m_lease = m_keys->acquireFor(m_triedKeyIds, m_record.model);
        if (!m_lease.isValid() && m_lease.busy) {
            // Every key has [health] maxConcurrentPerKey requests in flight: wait for one to end.
            if (!m_waitingForKey) {
                m_waitingForKey = true;
                connect(m_keys, &KeyPool::keyReleased, this, &ProxyExchange::onKeyReleased,
                        Qt::QueuedConnection);
                m_keyWaitTimer.start(m_config->connectTimeoutSec * 1000, this);
            }
            return;
        }
        if (m_waitingForKey) {
            m_waitingForKey = false;
            m_keyWaitTimer.stop();
            disconnect(m_keys, &KeyPool::keyReleased, this, &ProxyExchange::onKeyReleased);
        }
        m_leaseHeld = m_lease.isValid();
        if (!m_lease.isValid() && m_lease.retryAt.isValid()) {
            // Every key is cooling for this model: say when one is free instead of waiting.
            const qint64 waitMs = qMax<qint64>(0, QDateTime::currentDateTimeUtc().msecsTo(m_lease.retryAt));
            const qint64 seconds = qMax<qint64>(1, (waitMs + 999) / 1000);
            respondWithError(
                429,
                QStringLiteral("every KeyRelay key is rate-limited%1; retry in %2 s")
                    .arg(m_record.model.isEmpty() ? QString() : QStringLiteral(" for ") + m_record.model)
                    .arg(seconds),
                QStringLiteral("rate_limit_error"), QStringLiteral("all_keys_rate_limited"),
                { { "Retry-After", QByteArray::number(seconds) } });
            return;
        }
        if (!m_lease.isValid()) {
            respondWithError(
                503, QStringLiteral("KeyRelay has no enabled API key. Enable or add a key in KeyRelay."),
                QStringLiteral("keyrelay_error"), QStringLiteral("no_usable_key"));
            return;
        }
    } else if (!m_clientKey.isEmpty()) {
        m_lease = m_keys->passThrough(m_clientKey);
    }
    m_record.keyLabel = m_lease.label;
    m_record.keyId = m_lease.keyId;
    sendUpstream();
}

QNetworkRequest ProxyExchange::buildUpstreamRequest() const
{
    QNetworkRequest request(m_upstreamUrl);
    const HeaderList headers = HeaderPolicy::forUpstream(m_request.headers, defaultUserAgent());
    for (const auto &header : headers)
        request.setRawHeader(header.first, header.second);
    if (m_lease.isValid()) {
        if (m_clientUsedApiKeyHeader)
            request.setRawHeader("api-key", m_lease.secret.toUtf8());
        else
            request.setRawHeader("Authorization", "Bearer " + m_lease.secret.toUtf8());
    }
    request.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::ManualRedirectPolicy);
    request.setAttribute(QNetworkRequest::CookieLoadControlAttribute, QNetworkRequest::Manual);
    request.setAttribute(QNetworkRequest::CookieSaveControlAttribute, QNetworkRequest::Manual);
    request.setAttribute(QNetworkRequest::CacheLoadControlAttribute, QNetworkRequest::AlwaysNetwork);
    request.setAttribute(QNetworkRequest::CacheSaveControlAttribute, false);
    request.setTransferTimeout(0);
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, m_config->upstreamHttp2);
    return request;
}

void ProxyExchange::sendUpstream()
{
    const QNetworkRequest request = buildUpstreamRequest();
    m_manager = m_upstream->acquire();
    if (m_request.method == "HEAD")
        m_reply = m_manager->head(request);
    else
        m_reply = m_manager->sendCustomRequest(request, m_request.method, m_body);
    m_reply->setReadBufferSize(UpstreamReadBuffer);
    connect(m_reply, &QNetworkReply::metaDataChanged, this, &ProxyExchange::onUpstreamHeaders);
    connect(m_reply, &QNetworkReply::readyRead, this, &ProxyExchange::onUpstreamData);
    connect(m_reply, &QNetworkReply::finished, this, &ProxyExchange::onUpstreamFinished);
    connect(m_reply, &QNetworkReply::requestSent, this, &ProxyExchange::onConnectionProgress);
    connect(m_reply, &QNetworkReply::uploadProgress, this, [this](qint64 sent, qint64) {
        if (sent > 0)
            onConnectionProgress();
    });
#ifndef QT_NO_SSL
    connect(m_reply, &QNetworkReply::encrypted, this, &ProxyExchange::onConnectionProgress);
    connect(m_reply, &QNetworkReply::encrypted, m_upstream, &UpstreamPool::onConnectionStarting);
    m_sslErrors.clear();
    connect(m_reply, &QNetworkReply::sslErrors, this,
            [this](const QList<QSslError> &errors) { m_sslErrors = errors; });
#endif
    connect(m_reply, &QNetworkReply::socketStartedConnecting, m_upstream,
            &UpstreamPool::onConnectionStarting);
    m_timeout = Timeout::None;
    m_connectTimer.start(m_config->connectTimeoutSec * 1000, this);
    restartIdleTimer();
}

void ProxyExchange::restartIdleTimer()
{
    m_idleTimer.start(m_config->idleTimeoutSec * 1000, this);
}

void ProxyExchange::onConnectionProgress()
{
    m_connectTimer.stop();
    restartIdleTimer();
}

void ProxyExchange::timerEvent(QTimerEvent *event)
{
    if (event->timerId() == m_connectTimer.timerId()) {
        m_connectTimer.stop();
        m_timeout = Timeout::Connect;
    } else if (event->timerId() == m_idleTimer.timerId()) {
        m_idleTimer.stop();
        m_timeout = Timeout::Idle;
    } else if (event->timerId() == m_stallTimer.timerId()) {
        onStallCheck();
        return;
    } else if (event->timerId() == m_keyWaitTimer.timerId()) {
        m_keyWaitTimer.stop();
        if (m_waitingForKey && !m_completed) {
            m_waitingForKey = false;
            disconnect(m_keys, &KeyPool::keyReleased, this, &ProxyExchange::onKeyReleased);
            respondWithError(429,
                             QStringLiteral("every KeyRelay key already has %1 requests in flight ([health] "
                                            "maxConcurrentPerKey); none freed up within %2 s")
                                 .arg(m_keys->policy().maxConcurrentPerKey)
                                 .arg(m_config->connectTimeoutSec),
                             QStringLiteral("rate_limit_error"), QStringLiteral("all_keys_busy"),
                             { { "Retry-After", "1" } });
        }
        return;
    } else {
        return QObject::timerEvent(event);
    }
    if (m_reply)
        m_reply->abort(); // finished() follows with OperationCanceledError
}

void ProxyExchange::onStallCheck()
{
    if (!m_client || m_completed) {
        m_stallTimer.stop();
        return;
    }
    const qint64 delivered = m_client->bodyBytesWritten() - m_client->pendingOutput();
    if (delivered != m_deliveredAtStallCheck || m_client->pendingOutput() == 0) {
        m_deliveredAtStallCheck = delivered; // slow but reading: fine
        if (m_client->pendingOutput() == 0)
            m_stallTimer.stop();
        return;
    }
    m_stallTimer.stop();
    qCWarning(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                   << "- the client stopped reading; cutting the response off";
    m_client->abortResponse();
    complete(QStringLiteral("response cut off: the client took nothing for %1 s").arg(ClientStallMs / 1000));
}

HeaderList ProxyExchange::responseHeaders() const
{
    // Header values are masked on every answer, successful or not (a redirect's Location, a
    // WWW-Authenticate or a debug header may quote the key); bodies of successful answers are not.
    HeaderList headers = HeaderPolicy::forClient(m_reply->rawHeaderPairs(), {});
    if (m_redactor->maskHeaderValues(&headers))
        qCWarning(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                       << "- the upstream's response headers contained a key; masked it";
    return headers + m_corsHeaders;
}

qint64 ProxyExchange::headContentLength() const
{
    // A HEAD response has no body, but its Content-Length tells the client the size of the resource.
    if (m_request.method != "HEAD")
        return -1;
    bool ok = false;
    const qint64 length = m_reply->rawHeader("Content-Length").trimmed().toLongLong(&ok);
    return ok && length >= 0 ? length : -1;
}

void ProxyExchange::onUpstreamHeaders()
{
    if (m_headSent || !m_reply || m_completed)
        return;
    const QVariant statusAttribute = m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    if (!statusAttribute.isValid())
        return; // not an HTTP response yet (connection error follows in finished())
    if (statusAttribute.toInt() == 407) {
        // An upstream network proxy asking for credentials (no API server answers 407): Qt finishes the
        // reply with ProxyAuthenticationRequiredError next, and onUpstreamFinished() says so.
        return;
    }
    m_connectTimer.stop();
    restartIdleTimer();
    // Qt 6.4 forgets a read buffer size set before the request started (the HTTP thread's delegate is
    // connected later): set it again now that it exists, or QNAM reads the whole response regardless.
    m_reply->setReadBufferSize(UpstreamReadBuffer);
    const int status = statusAttribute.toInt();

    m_headSent = true;
    m_record.status = status;
    m_record.latencyMs = m_clock.elapsed();
    const QByteArray contentType = m_reply->rawHeader("Content-Type").toLower();
    m_record.streamed = contentType.startsWith("text/event-stream");
    // An error is held whatever its content type (an error typed as a stream is still an error): the
    // upstream may quote the key anywhere in it.
    m_holdingError = status >= 400 && m_request.method != "HEAD";
    if (m_usageRequested && m_record.streamed && status < 400)
        m_usageFilter.emplace();
    if (!m_holdingError && !m_lease.keyId.isEmpty()) {
        // Decided on the status alone (success, a stream, HEAD): book it now.
        const UpstreamVerdict verdict = KeyPool::classify(status, QByteArray());
        m_verdicts.append({ m_lease.keyId, verdict.verdict, retryAfterMs(), verdict.reason });
        commitVerdicts(status < 400);
    }
    if (m_client && !m_holdingError)
        m_client->writeHead(status, responseHeaders(), headContentLength());
}

void ProxyExchange::capture(const QByteArray &data)
{
    if (m_record.streamed) {
        m_captured.append(data);
        if (m_captured.size() > 2 * CapturedStreamTail)
            m_captured.remove(0, m_captured.size() - CapturedStreamTail);
    } else if (m_captured.size() + data.size() <= MaxCapturedJson) {
        m_captured.append(data);
    }
}

void ProxyExchange::onUpstreamData()
{
    if (!m_headSent)
        onUpstreamHeaders();
    if (!m_headSent)
        return;
    restartIdleTimer();
    pump();
}

void ProxyExchange::pump()
{
    if (!m_reply || !m_headSent || m_completed)
        return;
    if (!m_client) {
        onClientGone();
        return;
    }
    // Back-pressure: leave data in the reply (QNAM then stops reading the upstream) while the client lags.
    while (m_reply->bytesAvailable() > 0 && m_client->pendingOutput() < ClientBacklogLimit) {
        // What is there, not a fixed-size buffer: most reads are one small SSE event.
        const QByteArray data = m_reply->read(qMin(m_reply->bytesAvailable(), UpstreamReadBuffer));
        if (data.isEmpty())
            break;
        capture(data);
        if (m_holdingError) {
            m_heldError += data;
            if (m_heldError.size() > MaxHeldErrorBody) {
                replaceOversizedError();
                return;
            }
            continue;
        }
        forward(data);
    }
    // Watch a client that has bytes waiting: one that takes nothing for ClientStallMs is cut off.
    if (m_client->pendingOutput() > 0) {
        if (!m_stallTimer.isActive()) {
            m_deliveredAtStallCheck = m_client->bodyBytesWritten() - m_client->pendingOutput();
            m_stallTimer.start(ClientStallMs, this);
        }
    } else {
        m_stallTimer.stop();
    }
    if (m_upstreamDone && m_reply->bytesAvailable() == 0) {
        if (m_holdingError) {
            onHeldErrorComplete();
            return;
        }
        if (m_usageFilter)
            m_client->writeBody(m_usageFilter->finish());
        complete();
    }
}

qint64 ProxyExchange::retryAfterMs() const
{
    if (!m_reply)
        return -1;
    qint64 result = -1;
    for (const char *name : { "Retry-After", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens" })
        result = qMax(result, KeyPool::parseDurationMs(m_reply->rawHeader(name)));
    return result;
}

void ProxyExchange::forward(const QByteArray &data)
{
    QByteArray out = data;
    if (m_usageFilter)
        out = m_usageFilter->feed(out);
    if (!out.isEmpty())
        m_client->writeBody(out);
}

bool ProxyExchange::resendWithoutStreamUsage()
{
    if (!m_usageRequested || (m_record.status != 400 && m_record.status != 422)
        || !m_heldError.contains("stream_options")) {
        return false;
    }
    qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                << "- the upstream does not take stream_options; sending the request as the "
                                   "client wrote it (no token counts for this stream)";
    m_usageRequested = false;
    m_body = m_bodyWithoutUsage;
    m_bodyWithoutUsage.clear();
    resend();
    return true;
}

void ProxyExchange::onHeldErrorComplete()
{
    if (resendWithoutStreamUsage())
        return;
    if (!m_lease.keyId.isEmpty()) {
        const UpstreamVerdict verdict = KeyPool::classify(m_record.status, m_heldError);
        m_verdicts.append({ m_lease.keyId, verdict.verdict, retryAfterMs(), verdict.reason });
        // The key's fault (refused, quota, rate limit) or the upstream's (5xx): another key may do; a
        // request the upstream rejects as such (400, 404, 413, 422...) is never retried.
        const bool keysFault = verdict.verdict == KeyVerdict::Invalid
            || verdict.verdict == KeyVerdict::Exhausted || verdict.verdict == KeyVerdict::RateLimited;
        const bool retryable = keysFault || m_record.status >= 500;
        if (retryable
            && retryWithNextKey(verdict.reason.isEmpty() ? QString::number(m_record.status) : verdict.reason,
                                keysFault))
            return;
        commitVerdicts(false);
    }
    releaseHeldError();
    complete();
}

void ProxyExchange::replaceOversizedError()
{
    // Never passed on unread, since a key may be anywhere in it; the client still learns the status.
    m_holdingError = false;
    if (!m_lease.keyId.isEmpty()) {
        const UpstreamVerdict verdict = KeyPool::classify(m_record.status, m_heldError);
        m_verdicts.append({ m_lease.keyId, verdict.verdict, retryAfterMs(), verdict.reason });
        commitVerdicts(false);
    }
    m_heldError.clear();
    HeaderList extra;
    if (m_reply && m_reply->hasRawHeader("Retry-After"))
        extra.append({ "Retry-After", m_redactor->maskConfiguredSecrets(m_reply->rawHeader("Retry-After")) });
    respondWithError(m_record.status,
                     QStringLiteral("the upstream answered %1 with an error body over %2 MiB; KeyRelay does "
                                    "not pass it on")
                         .arg(m_record.status)
                         .arg(MaxHeldErrorBody / (1024 * 1024)),
                     QStringLiteral("upstream_error"), QStringLiteral("upstream_error_too_large"), extra);
}

bool ProxyExchange::retryWithNextKey(const QString &why, bool keysFault)
{
    if (m_lease.keyId.isEmpty() || m_completed)
        return false;
    // A refusal about the key (invalid, quota, its rate limit) moves on to the next key for free, each key
    // at most once; [health] maxAttempts bounds the tries that failed in ways that may pass (5xx, network).
    if (!keysFault && ++m_transientFailures >= m_keys->policy().maxAttempts)
        return false;
    m_triedKeyIds.insert(m_lease.keyId);
    const KeyLease next = m_keys->acquireFor(m_triedKeyIds, m_record.model);
    if (!next.isValid())
        return false;
    qCInfo(lcForward).noquote() << "key" << m_lease.label << "-" << m_redactor->redact(why)
                                << "- retrying with key" << next.label;
    releaseLease();
    m_lease = next;
    m_leaseHeld = true;
    ++m_record.attempts;
    resend();
    return true;
}

void ProxyExchange::resend()
{
    dropReply();
    // Back to "nothing sent to the client yet": the (possibly rewritten) body is replayed exactly.
    m_headSent = false;
    m_holdingError = false;
    m_upstreamDone = false;
    m_heldError.clear();
    m_captured.clear();
    m_usageFilter.reset();
    m_timeout = Timeout::None;
    m_record.streamed = false;
    m_record.status = 0;
    m_record.keyLabel = m_lease.label;
    m_record.keyId = m_lease.keyId;
    sendUpstream();
}

void ProxyExchange::commitVerdicts(bool succeeded)
{
    // A failure every key shared on this request is about the request or the upstream (a model the
    // account may not use, a proxy in between answering 401...), not about the keys: hold it against
    // none of them. Rate limits and quotas are booked anyway: they end by themselves.
    bool shared = !succeeded && m_verdicts.size() >= 2;
    for (const PendingVerdict &pending : std::as_const(m_verdicts))
        shared = shared && pending.verdict == KeyVerdict::Invalid;
    if (shared) {
        qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                    << "- every key tried got"
                                    << m_redactor->redact(m_verdicts.first().reason)
                                    << ": not holding it against the keys";
    }
    for (const PendingVerdict &pending : std::as_const(m_verdicts)) {
        if (shared && pending.verdict == KeyVerdict::Invalid)
            continue;
        m_keys->report(pending.keyId, m_record.model, pending.verdict, pending.retryAfterMs, pending.reason);
    }
    m_verdicts.clear();
}

void ProxyExchange::releaseHeldError()
{
    m_holdingError = false;
    const QByteArray body = m_redactor->maskConfiguredSecrets(m_heldError);
    if (body != m_heldError)
        qCWarning(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                       << "- the upstream's error response contained a key; masked it";
    m_heldError.clear();
    if (!m_client)
        return;
    m_client->writeHead(m_record.status, responseHeaders(), body.size());
    m_client->writeBody(body);
}

void ProxyExchange::onUpstreamFinished()
{
    if (!m_reply || m_completed)
        return;
    m_connectTimer.stop();
    m_idleTimer.stop();
    const QNetworkReply::NetworkError error = m_reply->error();
    const bool httpResponse = m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).isValid();

    if (!m_headSent && httpResponse
        && (error == QNetworkReply::NoError || error >= QNetworkReply::ContentAccessDenied)) {
        // An HTTP error status (4xx/5xx) is a normal response to pass on.
        onUpstreamHeaders();
        if (!m_headSent)
            return; // retried with another key
    }

    if (!m_headSent) {
        // Nothing from the upstream: say where it failed (network proxy, TLS, upstream).
        if (m_timeout != Timeout::None) {
            const bool connecting = m_timeout == Timeout::Connect;
            const NetworkFailure failure = describeTimeout(
                connecting, connecting ? m_config->connectTimeoutSec : m_config->idleTimeoutSec,
                m_config->upstream, effectiveProxy(*m_config, m_upstreamUrl));
            respondWithError(504, failure.message, QStringLiteral("upstream_error"), failure.code);
        } else {
            const NetworkFailure failure = describeNetworkFailure(m_reply, *m_config
#ifndef QT_NO_SSL
                                                                  ,
                                                                  m_sslErrors
#endif
            );
            if (error == QNetworkReply::SslHandshakeFailedError)
                m_upstream->onTlsFailure(m_manager);
            // Retrying on another key helps against a flaky upstream, not against a proxy or TLS problem.
            const bool keyMayHelp = failure.code == QLatin1String("upstream_unreachable");
            if (!m_lease.keyId.isEmpty()) {
                m_verdicts.append({ m_lease.keyId, KeyVerdict::NotKeysFault, -1, failure.message });
                if (keyMayHelp && retryWithNextKey(failure.message, false))
                    return;
                commitVerdicts(false);
            }
            respondWithError(502, failure.message, QStringLiteral("upstream_error"), failure.code);
        }
        return;
    }

    const bool transportFailed
        = error != QNetworkReply::NoError && error < QNetworkReply::ContentAccessDenied;
    if (transportFailed || m_timeout != Timeout::None) {
        // Mid-response failure: the status is already sent, so cut the connection; the client sees an
        // incomplete reply instead of a silently truncated one.
        const QString reason = m_timeout == Timeout::Idle
            ? QStringLiteral("upstream idle for %1 s").arg(m_config->idleTimeoutSec)
            : m_reply->errorString();
        if (m_client) {
            const QByteArray rest
                = m_reply->isOpen() ? m_reply->readAll() : QByteArray(); // closed after abort()
            capture(rest);
            if (!m_holdingError) { // a held error's head was never sent: just drop the connection
                forward(rest);
                if (m_usageFilter)
                    m_client->writeBody(m_usageFilter->finish());
            }
            m_client->abortResponse();
        }
        complete(QStringLiteral("response cut off: %1").arg(reason));
        return;
    }
    m_upstreamDone = true;
    pump();
}

void ProxyExchange::respondWithError(int status, const QString &message, const QString &type,
                                     const QString &code, const HeaderList &extraHeaders)
{
    qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path) << "->" << status
                                << m_redactor->redact(message);
    m_record.status = status;
    m_record.latencyMs = m_clock.elapsed();
    if (m_client) {
        HeaderList headers = m_corsHeaders + extraHeaders;
        headers.prepend(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
        m_client->sendResponse(status, headers, openAiErrorBody(m_redactor->redact(message), type, code));
    }
    m_headSent = true;
    dropReply();
    complete(message);
}

void ProxyExchange::onClientGone()
{
    if (m_completed)
        return;
    qCInfo(lcForward).noquote() << m_record.method << m_record.path << "client closed the connection";
    dropReply();
    complete(QStringLiteral("client closed the connection"));
}

void ProxyExchange::abort(const QString &reason)
{
    if (m_completed)
        return;
    if (!m_headSent) {
        respondWithError(503, reason, QStringLiteral("keyrelay_error"), QStringLiteral("shutting_down"));
        return;
    }
    dropReply();
    if (m_client)
        m_client->abortResponse();
    complete(reason);
}

void ProxyExchange::dropReply()
{
    m_connectTimer.stop();
    m_idleTimer.stop();
    m_stallTimer.stop();
    if (m_reply) {
        QNetworkReply *reply = m_reply;
        m_reply = nullptr;
        reply->disconnect(this);
        // Deferred: this may run inside one of the reply's own signals (a retry from metaDataChanged),
        // and aborting a QNetworkReply from there makes Qt report its error twice.
        QMetaObject::invokeMethod(
            reply,
            [reply] {
                reply->abort();
                reply->deleteLater();
            },
            Qt::QueuedConnection);
    }
    if (m_manager) {
        m_upstream->release(m_manager);
        m_manager = nullptr;
    }
}

void ProxyExchange::complete(const QString &error)
{
    if (m_completed)
        return;
    m_completed = true;
    m_keyWaitTimer.stop();
    releaseLease();
    if (error.isEmpty() && m_client)
        m_client->finishResponse();
    // The connection object outlives an abort or a close until the event loop runs again.
    if (m_client)
        m_record.responseBytes = m_client->bodyBytesWritten();
    dropReply();
    if (m_record.error.isEmpty())
        m_record.error = error;
    m_record.durationMs = m_clock.elapsed();
    TokenUsage usage;
    if (!m_captured.isEmpty() && parseTokenUsage(m_captured, m_record.streamed, &usage)) {
        m_record.promptTokens = usage.prompt;
        m_record.completionTokens = usage.completion;
        m_record.totalTokens = usage.total;
    }
    if (m_record.error.isEmpty() && m_record.status >= 400) // the upstream's own explanation, for the log
        m_record.error = upstreamErrorMessage(m_captured, m_record.status);
    Q_EMIT finished(m_record);
    deleteLater();
}

} // namespace keyrelay
