#include "proxyexchange.h"

#include "accesspolicy.h"
#include "headerpolicy.h"
#include "logging.h"
#include "keypool.h"
#include "messagerewriter.h"
#include "modelcatalog.h"
#include "openaierror.h"
#include "secretredactor.h"
#include "tokenusage.h"
#include "upstreamfailure.h"
#include "upstreampath.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QTimerEvent>

namespace keyrelay {

namespace {

constexpr qint64 UpstreamReadChunk = 64 * 1024;
constexpr qint64 MaxCapturedJson = 4 * 1024 * 1024;
constexpr qint64 CapturedStreamTail = 64 * 1024;
constexpr qint64 MaxModelScanBytes = 4 * 1024 * 1024;

/// The upstream's answer says the model does not exist there (OpenAI's model_not_found, Anthropic's
/// not_found_error about a model, Ollama's "model ... not found").
bool modelNotFound(int status, const QByteArray &body)
{
    if (status != 404 && status != 400)
        return false;
    const QByteArray lower = body.left(4096).toLower();
    return lower.contains("model_not_found")
        || (lower.contains("model") && (lower.contains("not found") || lower.contains("not_found_error")
                                        || lower.contains("does not exist")));
}

/// The <id> of ".../v1/models/<id>" (after an optional "/p/<provider>"), decoded; "" for other paths.
QString modelInPath(const QByteArray &target)
{
    QByteArray path = target.left(target.indexOf('?') < 0 ? target.size() : target.indexOf('?'));
    if (path.startsWith("/p/")) {
        const qsizetype slash = path.indexOf('/', 3);
        path = slash < 0 ? QByteArray() : path.mid(slash);
    }
    for (const QByteArray &prefix : { QByteArrayLiteral("/v1/models/"), QByteArrayLiteral("/models/") }) {
        if (path.startsWith(prefix) && path.size() > prefix.size() && !path.mid(prefix.size()).contains('/'))
            return QUrl::fromPercentEncoding(path.mid(prefix.size()));
    }
    return QString();
}

QByteArray defaultUserAgent()
{
    return QByteArrayLiteral("KeyRelay/" KEYRELAY_VERSION);
}

} // namespace

ProxyExchange::ProxyExchange(quint64 id, ResponseSink *client, const HttpRequest &request,
                             std::shared_ptr<const ProxyConfig> config,
                             std::shared_ptr<const AccessPolicy> policy, HeaderList corsHeaders,
                             KeyPool *keys, std::shared_ptr<const UpstreamAccess> upstream,
                             const SecretRedactor *redactor, QObject *parent)
    : QObject(parent), m_client(client), m_request(request), m_config(std::move(config)),
      m_policy(std::move(policy)), m_corsHeaders(std::move(corsHeaders)), m_keys(keys),
      m_upstream(std::move(upstream)), m_redactor(redactor)
{
    m_clock.start();
    m_record.id = id;
    m_record.startedAt = QDateTime::currentDateTime();
    m_record.method = QString::fromLatin1(request.method);
    m_record.path = QString::fromUtf8(request.target);
    m_record.requestBytes = request.body.size();
    connect(client, &ResponseSink::clientGone, this, &ProxyExchange::onClientGone);
    connect(client, &ResponseSink::outputDrained, this, &ProxyExchange::pump);
}

ProxyExchange::~ProxyExchange()
{
    endAttempt();
}

void ProxyExchange::setPhase(Phase phase)
{
    m_phase = phase;
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

    // Which provider, by protocol and model; the body keeps every byte except a renamed model.
    m_clientModel = m_record.model;
    if (!m_directory) { // one upstream, the configuration's own (tests, and the single-provider case)
        auto single = std::make_shared<ProviderDirectory>();
        single->router = ProviderRouter(config.effectiveProviders().mid(0, 1), true);
        single->endpoints.append({ single->router.providers().constFirst(), m_keys, m_upstream->proxy });
        m_directory = std::move(single);
    }
    // GET /v1/models/<id> goes to the provider that serves <id> (as <id> there, when an alias maps it).
    if (m_clientModel.isEmpty() && (m_request.method == "GET" || m_request.method == "HEAD")) {
        m_clientModel = modelInPath(m_request.target);
        m_modelInPath = !m_clientModel.isEmpty();
    }
    if (m_directory->listing && m_directory->endpoints.size() > 1) { // one provider: nothing to choose
        const QHash<QString, QStringList> listed = m_directory->listing->all();
        m_route = m_directory->router.route(m_request.target, m_clientModel, &listed);
    } else {
        m_route = m_directory->router.route(m_request.target, m_clientModel);
    }
    if (!m_route.ok()) {
        respondWithError(m_route.errorStatus, m_route.error, QStringLiteral("invalid_request_error"),
                         m_route.errorCode);
        return;
    }
    m_routedBody = m_body;
    m_routedBodyWithoutUsage = m_bodyWithoutUsage;
    if (!prepareStep())
        return;
    acquireKeyAndSend();
}

bool ProxyExchange::prepareStep()
{
    const ProxyConfig &config = *m_config;
    const RouteStep &step = m_route.steps.at(m_step);
    const ProviderEndpoint &provider = endpoint();
    m_record.provider = provider.config.id;
    m_body = m_usageRequested ? m_routedBody : (m_routedBodyWithoutUsage.isEmpty() ? m_routedBody
                                                                                      : m_routedBodyWithoutUsage);
    m_bodyWithoutUsage = m_usageRequested ? m_routedBodyWithoutUsage : QByteArray();
    m_record.model = m_clientModel;
    if (!step.model.isEmpty() && step.model != m_clientModel && MessageRewriter::replaceModel(&m_body, step.model)) {
        if (!m_bodyWithoutUsage.isEmpty())
            MessageRewriter::replaceModel(&m_bodyWithoutUsage, step.model);
        m_record.model = step.model;
    }
    QByteArray target = m_route.target;
    if (m_modelInPath && step.model != m_clientModel) {
        const qsizetype query = target.indexOf('?');
        const qsizetype slash = target.lastIndexOf('/', query < 0 ? -1 : query);
        target = target.left(slash + 1) + QUrl::toPercentEncoding(step.model)
            + (query < 0 ? QByteArray() : target.mid(query));
        m_record.model = step.model;
    }
    QString pathError;
    QString pathErrorCode;
    if (!UpstreamPath::mapTarget(provider.config.baseUrl, target, config.stripPrefixes, &m_upstreamUrl,
                                 &pathError, &pathErrorCode)) {
        respondWithError(400, pathError, QStringLiteral("invalid_request_error"), pathErrorCode);
        return false;
    }
    // The network proxy, once per provider: "system" asks the desktop's settings for this URL.
    if (provider.proxy) {
        m_proxy = *provider.proxy;
    } else {
        ProxyConfig withProviderProxy = config;
        withProviderProxy.upstreamProxy = provider.config.upstreamProxy.isEmpty() ? config.upstreamProxy
                                                                                   : provider.config.upstreamProxy;
        m_proxy = effectiveProxy(withProviderProxy, m_upstreamUrl);
    }
    if (m_route.steps.size() > 1 || m_step > 0)
        qCDebug(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path) << "-> provider"
                                     << provider.config.id << (m_step == 0 ? m_route.reason : QStringLiteral("fallback"));
    return true;
}

bool ProxyExchange::fallBack(const QString &why)
{
    if (m_step + 1 >= m_route.steps.size() || m_phase == Phase::Done || m_phase == Phase::Streaming || !m_client)
        return false;
    RequestRecord tried = m_record;
    tried.fellBack = true;
    tried.error = m_redactor->redact(why);
    tried.durationMs = m_clock.elapsed();
    if (m_attempt.status > 0)
        tried.status = m_attempt.status;
    const QString from = endpoint().config.id;
    commitVerdicts(false);
    stopWaitingForKey();
    endAttempt();
    m_attempt = Attempt();
    ++m_step;
    m_triedKeyIds.clear();
    m_transientFailures = 0;
    m_record.attempts = 1;
    m_record.status = 0;
    m_record.keyId.clear(); // the next provider's key, if it gets as far as one
    m_record.keyLabel.clear();
    m_record.latencyMs = -1;
    qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path) << "- provider" << from
                                << "could not serve it (" << m_redactor->redact(why) << "); trying provider"
                                << endpoint().config.id;
    Q_EMIT providerFailed(tried);
    setPhase(Phase::Preparing);
    if (prepareStep())
        acquireKeyAndSend();
    return true;
}

void ProxyExchange::acquireKeyAndSend()
{
    if (m_phase != Phase::Preparing && m_phase != Phase::WaitingForKey)
        return; // a queued keyReleased() after the exchange moved on
    Attempt first;
    KeyLease &lease = first.lease;
    if (!keys()->isEmpty()) {
        lease = keys()->acquireFor(m_triedKeyIds, m_record.model);
        if (!lease.isValid() && lease.busy) {
            // Every key has [health] maxConcurrentPerKey requests in flight: wait for one to end.
            if (m_phase != Phase::WaitingForKey) {
                setPhase(Phase::WaitingForKey);
                connect(keys(), &KeyPool::keyReleased, this, &ProxyExchange::acquireKeyAndSend,
                        Qt::QueuedConnection);
                m_keyWaitTimer.start(m_config->connectTimeoutSec * 1000, this);
            }
            return;
        }
        stopWaitingForKey();
        first.leaseHeld = lease.isValid();
        if (!lease.isValid() && lease.retryAt.isValid()) {
            // Every key is cooling for this model: say when one is free instead of waiting.
            const qint64 waitMs = qMax<qint64>(0, QDateTime::currentDateTimeUtc().msecsTo(lease.retryAt));
            const qint64 seconds = qMax<qint64>(1, (waitMs + 999) / 1000);
            if (fallBack(QStringLiteral("every key is rate-limited")))
                return;
            respondWithError(
                429,
                QStringLiteral("every KeyRelay key is rate-limited%1; retry in %2 s")
                    .arg(m_record.model.isEmpty() ? QString() : QStringLiteral(" for ") + m_record.model)
                    .arg(seconds),
                QStringLiteral("rate_limit_error"), QStringLiteral("all_keys_rate_limited"),
                { { "Retry-After", QByteArray::number(seconds) } });
            return;
        }
        if (!lease.isValid()) {
            if (fallBack(QStringLiteral("no usable key")))
                return;
            respondWithError(
                503, QStringLiteral("KeyRelay has no enabled API key. Enable or add a key in KeyRelay."),
                QStringLiteral("keyrelay_error"), QStringLiteral("no_usable_key"));
            return;
        }
    } else if (!m_clientKey.isEmpty()) {
        lease = keys()->passThrough(m_clientKey);
    }
    beginAttempt(std::move(first));
}

void ProxyExchange::stopWaitingForKey()
{
    if (m_phase != Phase::WaitingForKey)
        return;
    m_keyWaitTimer.stop();
    disconnect(keys(), &KeyPool::keyReleased, this, &ProxyExchange::acquireKeyAndSend);
}

void ProxyExchange::endAttempt()
{
    if (m_attempt.call) {
        UpstreamCall *call = m_attempt.call;
        m_attempt.call = nullptr;
        call->disconnect(this);
        call->abort(); // finished() would follow from the event loop: nobody listens any more
        call->deleteLater(); // this may run inside one of the call's own signals
    }
    if (m_attempt.leaseHeld) {
        m_attempt.leaseHeld = false;
        keys()->release(m_attempt.lease.keyId);
    }
}

void ProxyExchange::beginAttempt(Attempt next)
{
    next.leaseHeld = next.leaseHeld && next.lease.isValid();
    endAttempt();
    m_attempt = std::move(next);
    m_record.keyLabel = m_attempt.lease.label;
    m_record.keyId = m_attempt.lease.keyId;
    m_record.status = 0;
    m_record.streamed = false;

    UpstreamCall *call = m_upstream->client->startCall(buildUpstreamRequest(), this);
    m_attempt.call = call;
    connect(call, &UpstreamCall::headersReceived, this, &ProxyExchange::onUpstreamHeaders);
    connect(call, &UpstreamCall::dataAvailable, this, &ProxyExchange::onUpstreamData);
    connect(call, &UpstreamCall::finished, this, &ProxyExchange::onUpstreamFinished);
    setPhase(Phase::AwaitingAnswer);
    restartIdleTimer();
}

UpstreamRequestSpec ProxyExchange::buildUpstreamRequest() const
{
    UpstreamRequestSpec spec;
    spec.method = m_request.method;
    spec.url = m_upstreamUrl;
    spec.headers = HeaderPolicy::forUpstream(m_request.headers, defaultUserAgent());
    const KeyLease &lease = m_attempt.lease;
    const ProviderKind kind = endpoint().config.kind;
    const QByteArray secret = lease.isValid() ? lease.secret.toUtf8() : QByteArray();
    if (kind == ProviderKind::OpenAi && m_clientUsedApiKeyHeader && !secret.isEmpty())
        spec.headers.append({ QByteArrayLiteral("api-key"), secret }); // as the client sent it (Azure style)
    else
        HeaderPolicy::addProviderCredential(&spec.headers, kind, secret);
    spec.body = m_body; // shared, and replayed byte for byte by every attempt
    spec.http2 = m_config->upstreamHttp2;
    spec.connectTimeoutMs = qMax(1, m_config->connectTimeoutSec) * 1000;
    applyProxy(&spec, m_proxy);
    spec.extraCaCertificatesPem = m_upstream->extraCaCertificatesPem;
    spec.bufferLimit = UpstreamBufferLimit;
    return spec;
}

qint64 ProxyExchange::deliveredToClient() const
{
    return m_client ? m_client->bodyBytesWritten() - m_client->pendingOutput() : 0;
}

void ProxyExchange::restartIdleTimer()
{
    m_deliveredAtIdleStart = deliveredToClient();
    m_idleTimer.start(m_config->idleTimeoutSec * 1000, this);
}

void ProxyExchange::timerEvent(QTimerEvent *event)
{
    if (event->timerId() == m_idleTimer.timerId()) {
        onIdleTimeout();
    } else if (event->timerId() == m_keyWaitTimer.timerId()) {
        m_keyWaitTimer.stop();
        if (m_phase != Phase::WaitingForKey)
            return;
        stopWaitingForKey();
        if (fallBack(QStringLiteral("every key is busy")))
            return;
        respondWithError(429,
                         QStringLiteral("every KeyRelay key already has %1 requests in flight ([health] "
                                        "maxConcurrentPerKey); none freed up within %2 s")
                             .arg(keys()->policy().maxConcurrentPerKey)
                             .arg(m_config->connectTimeoutSec),
                         QStringLiteral("rate_limit_error"), QStringLiteral("all_keys_busy"),
                         { { "Retry-After", "1" } });
    } else {
        QObject::timerEvent(event);
    }
}

void ProxyExchange::onIdleTimeout()
{
    // Idle means no byte moved either way: a client that is still taking bytes keeps the stream alive
    // while the upstream is paused for it.
    if (deliveredToClient() != m_deliveredAtIdleStart) {
        restartIdleTimer();
        return;
    }
    m_idleTimer.stop();
    const int seconds = m_config->idleTimeoutSec;
    if (m_phase == Phase::AwaitingAnswer) {
        const NetworkFailure failure
            = describeTimeout(false, seconds, endpoint().config.baseUrl, m_proxy);
        respondWithError(504, failure.message, QStringLiteral("upstream_error"), failure.code);
        return;
    }
    if (m_phase != Phase::Streaming && m_phase != Phase::HoldingError)
        return;
    const bool clientStalled = m_client && m_client->pendingOutput() > 0;
    const QString reason = clientStalled
        ? QStringLiteral("the client took nothing for %1 s").arg(seconds)
        : QStringLiteral("upstream idle for %1 s").arg(seconds);
    qCWarning(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path) << "-" << reason
                                   << "; cutting the response off";
    endAttempt();
    if (m_client)
        m_client->abortResponse(); // a held error's head was never sent: the connection just drops
    complete(QStringLiteral("response cut off: %1").arg(reason));
}

HeaderList ProxyExchange::responseHeaders() const
{
    // Header values are masked on every answer, successful or not (a redirect's Location, a
    // WWW-Authenticate or a debug header may quote the key); bodies of successful answers are not.
    HeaderList headers = HeaderPolicy::forClient(m_attempt.call->headers(), {});
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
    const qint64 length = m_attempt.call->header("Content-Length").trimmed().toLongLong(&ok);
    return ok && length >= 0 ? length : -1;
}

void ProxyExchange::onUpstreamHeaders()
{
    if (m_phase != Phase::AwaitingAnswer || !m_attempt.call)
        return;
    const int status = m_attempt.call->status();
    if (status == 407 && m_proxy.type() != QNetworkProxy::NoProxy) {
        // The network proxy asks for credentials (no API server answers 407): a proxy failure, as when
        // it refuses a CONNECT tunnel.
        UpstreamResult result = m_attempt.call->result();
        result.proxyConnectCode = 407;
        failWithoutAnswer(describeUpstreamResult(result, endpoint().config.baseUrl, m_proxy, m_config->connectTimeoutSec),
                          false);
        return;
    }
    restartIdleTimer();
    m_attempt.status = status;
    m_record.status = status;
    m_record.latencyMs = m_clock.elapsed();
    m_attempt.streamed = m_attempt.call->header("Content-Type").toLower().startsWith("text/event-stream");
    m_record.streamed = m_attempt.streamed;
    // Token counts come from JSON answers and event streams; a file download or audio keeps nothing.
    m_attempt.captureUsage = m_attempt.streamed || status >= 400
        || m_attempt.call->header("Content-Type").toLower().contains("json");
    // An error is held whatever its content type (an error typed as a stream is still an error): the
    // upstream may quote the key anywhere in it.
    if (status >= 400 && m_request.method != "HEAD") {
        setPhase(Phase::HoldingError);
        pump();
        return;
    }
    if (m_usageRequested && m_attempt.streamed)
        m_attempt.usageFilter.emplace();
    if (!m_attempt.lease.keyId.isEmpty()) {
        // Decided on the status alone (success, a stream, HEAD): book it now.
        const UpstreamVerdict verdict = KeyPool::classify(status, QByteArray());
        addVerdict(verdict.verdict, verdict.reason);
        commitVerdicts(status < 400);
    }
    setPhase(Phase::Streaming);
    if (m_client)
        m_client->writeHead(status, responseHeaders(), headContentLength());
    pump();
}

void ProxyExchange::capture(const QByteArray &data)
{
    QByteArray &captured = m_attempt.captured;
    if (!m_attempt.captureUsage)
        return;
    if (m_attempt.streamed) {
        m_attempt.streamUsage.feed(data);
        if (m_attempt.status < 400)
            return; // an error's tail is kept for its message in the log
        captured.append(data);
        if (captured.size() > 2 * CapturedStreamTail)
            captured.remove(0, captured.size() - CapturedStreamTail);
    } else if (captured.size() + data.size() <= MaxCapturedJson) {
        captured.append(data);
    }
}

void ProxyExchange::onUpstreamData()
{
    restartIdleTimer();
    pump();
}

void ProxyExchange::pump()
{
    UpstreamCall *call = m_attempt.call;
    if (!call)
        return;
    if (m_phase == Phase::HoldingError) {
        while (call->bytesAvailable() > 0) {
            const QByteArray data = call->read();
            capture(data);
            m_attempt.heldError += data;
            if (m_attempt.heldError.size() > MaxHeldErrorBody) {
                replaceOversizedError();
                return;
            }
        }
        if (call->isFinished() && call->result().ok())
            onHeldErrorComplete();
        return;
    }
    if (m_phase != Phase::Streaming)
        return;
    if (!m_client) {
        onClientGone();
        return;
    }
    // Back-pressure: what the client has not taken stays bounded; the call pauses the upstream when its
    // own buffer is full, and resumes once it is read again.
    while (call->bytesAvailable() > 0 && m_client->pendingOutput() < ClientBacklogLimit) {
        // What is there, not a fixed-size buffer: most reads are one small SSE event.
        const QByteArray data = call->read(UpstreamReadChunk);
        if (data.isEmpty())
            break;
        capture(data);
        forward(data);
        if (!m_client || m_phase != Phase::Streaming)
            return;
    }
    if (call->isFinished() && call->bytesAvailable() == 0 && call->result().ok()) {
        if (m_attempt.usageFilter)
            m_client->writeBody(m_attempt.usageFilter->finish());
        complete();
    }
}

qint64 ProxyExchange::retryAfterMs() const
{
    if (!m_attempt.call)
        return -1;
    qint64 result = -1;
    for (const char *name : { "Retry-After", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens" })
        result = qMax(result, KeyPool::parseDurationMs(m_attempt.call->header(name)));
    return result;
}

void ProxyExchange::forward(const QByteArray &data)
{
    QByteArray out = data;
    if (m_attempt.usageFilter)
        out = m_attempt.usageFilter->feed(out);
    if (!out.isEmpty())
        m_client->writeBody(out);
}

bool ProxyExchange::resendWithoutStreamUsage()
{
    if (!m_usageRequested || (m_attempt.status != 400 && m_attempt.status != 422)
        || !m_attempt.heldError.contains("stream_options")) {
        return false;
    }
    qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                << "- the upstream does not take stream_options; sending the request as the "
                                   "client wrote it (no token counts for this stream)";
    m_usageRequested = false;
    m_body = m_bodyWithoutUsage;
    m_bodyWithoutUsage.clear();
    Attempt again;
    again.lease = m_attempt.lease;
    again.leaseHeld = std::exchange(m_attempt.leaseHeld, false); // the same key, still in flight
    beginAttempt(std::move(again));
    return true;
}

void ProxyExchange::addVerdict(KeyVerdict verdict, const QString &reason)
{
    // The upstream's words may quote the key; the pool keeps them for the Keys page and the status.
    m_verdicts.append({ m_attempt.lease.keyId, verdict, retryAfterMs(), m_redactor->redact(reason) });
}

void ProxyExchange::onHeldErrorComplete()
{
    if (resendWithoutStreamUsage())
        return;
    if (!m_attempt.lease.keyId.isEmpty()) {
        const UpstreamVerdict verdict = KeyPool::classify(m_attempt.status, m_attempt.heldError);
        addVerdict(verdict.verdict, verdict.reason);
        // The key's fault (refused, quota, rate limit) or the upstream's (5xx): another key may do; a
        // request the upstream rejects as such (400, 404, 413, 422...) is never retried.
        const bool keysFault = verdict.verdict == KeyVerdict::Invalid
            || verdict.verdict == KeyVerdict::Exhausted || verdict.verdict == KeyVerdict::RateLimited;
        const bool retryable = keysFault || m_attempt.status >= 500;
        if (retryable
            && retryWithNextKey(verdict.reason.isEmpty() ? QString::number(m_attempt.status) : verdict.reason,
                                keysFault))
            return;
        commitVerdicts(false);
        if ((retryable || modelNotFound(m_attempt.status, m_attempt.heldError))
            && fallBack(verdict.reason.isEmpty() ? QString::number(m_attempt.status) : verdict.reason))
            return;
    } else if ((m_attempt.status >= 500 || modelNotFound(m_attempt.status, m_attempt.heldError))
               && fallBack(QString::number(m_attempt.status))) {
        return;
    }
    releaseHeldError();
    complete();
}

void ProxyExchange::replaceOversizedError()
{
    // Never passed on unread, since a key may be anywhere in it; the client still learns the status.
    if (!m_attempt.lease.keyId.isEmpty()) {
        const UpstreamVerdict verdict = KeyPool::classify(m_attempt.status, m_attempt.heldError);
        addVerdict(verdict.verdict, verdict.reason);
        commitVerdicts(false);
    }
    m_attempt.heldError.clear();
    HeaderList extra;
    const QByteArray retryAfter = m_attempt.call ? m_attempt.call->header("Retry-After") : QByteArray();
    if (!retryAfter.isEmpty())
        extra.append({ "Retry-After", m_redactor->maskConfiguredSecrets(retryAfter) });
    respondWithError(m_attempt.status,
                     QStringLiteral("the upstream answered %1 with an error body over %2 MiB; KeyRelay does "
                                    "not pass it on")
                         .arg(m_attempt.status)
                         .arg(MaxHeldErrorBody / (1024 * 1024)),
                     QStringLiteral("upstream_error"), QStringLiteral("upstream_error_too_large"), extra);
}

bool ProxyExchange::retryWithNextKey(const QString &why, bool keysFault)
{
    if (m_attempt.lease.keyId.isEmpty() || m_phase == Phase::Done)
        return false;
    // A refusal about the key (invalid, quota, its rate limit) moves on to the next key for free, each key
    // at most once; [health] maxAttempts bounds the tries that failed in ways that may pass (5xx, network).
    if (!keysFault && ++m_transientFailures >= keys()->policy().maxAttempts)
        return false;
    m_triedKeyIds.insert(m_attempt.lease.keyId);
    Attempt next;
    next.lease = keys()->acquireFor(m_triedKeyIds, m_record.model);
    if (!next.lease.isValid())
        return false;
    next.leaseHeld = true;
    qCInfo(lcForward).noquote() << "key" << m_attempt.lease.label << "-" << m_redactor->redact(why)
                                << "- retrying with key" << next.lease.label;
    ++m_record.attempts;
    beginAttempt(std::move(next));
    return true;
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
        keys()->report(pending.keyId, m_record.model, pending.verdict, pending.retryAfterMs, pending.reason);
    }
    m_verdicts.clear();
}

void ProxyExchange::releaseHeldError()
{
    const QByteArray body = m_redactor->maskConfiguredSecrets(m_attempt.heldError);
    if (body != m_attempt.heldError)
        qCWarning(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                       << "- the upstream's error response contained a key; masked it";
    m_attempt.heldError.clear();
    if (!m_client)
        return;
    m_client->writeHead(m_attempt.status, responseHeaders(), body.size());
    m_client->writeBody(body);
}

void ProxyExchange::onUpstreamFinished()
{
    UpstreamCall *call = m_attempt.call;
    if (!call)
        return;
    const UpstreamResult result = call->result();
    switch (m_phase) {
    case Phase::AwaitingAnswer: {
        // Nothing from the upstream: say where it failed (network proxy, TLS, upstream).
        const NetworkFailure failure = describeUpstreamResult(result, endpoint().config.baseUrl,
                                                              m_proxy, m_config->connectTimeoutSec);
        // Another key helps against a flaky upstream, not against a proxy, TLS or timeout problem.
        failWithoutAnswer(failure, failure.code == QLatin1String("upstream_unreachable"));
        return;
    }
    case Phase::HoldingError:
    case Phase::Streaming:
        if (result.ok()) {
            pump(); // completes once the client has taken what is left
            return;
        }
        // Cut off in the middle: the status is already decided, so the connection is dropped; the client
        // sees an incomplete reply instead of a silently truncated one. What arrived intact goes first.
        if (m_phase == Phase::Streaming && m_client) {
            const QByteArray rest = call->read();
            capture(rest);
            forward(rest);
            if (m_attempt.usageFilter)
                m_client->writeBody(m_attempt.usageFilter->finish());
        }
        endAttempt();
        if (m_client)
            m_client->abortResponse();
        complete(QStringLiteral("response cut off: %1").arg(result.message));
        return;
    default:
        return;
    }
}

void ProxyExchange::failWithoutAnswer(const NetworkFailure &failure, bool keyMayHelp)
{
    const bool timedOut = failure.code.endsWith(QLatin1String("_timeout"));
    if (!m_attempt.lease.keyId.isEmpty() && !timedOut) {
        addVerdict(KeyVerdict::NotKeysFault, failure.message);
        if (keyMayHelp && retryWithNextKey(failure.message, false))
            return;
        commitVerdicts(false);
    }
    if (fallBack(failure.message))
        return;
    respondWithError(timedOut ? 504 : 502, failure.message, QStringLiteral("upstream_error"), failure.code);
}

void ProxyExchange::respondWithError(int status, const QString &message, const QString &type,
                                     const QString &code, const HeaderList &extraHeaders)
{
    qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path) << "->" << status
                                << m_redactor->redact(message);
    m_record.status = status;
    m_record.latencyMs = m_clock.elapsed();
    endAttempt();
    if (m_client) {
        HeaderList headers = m_corsHeaders + extraHeaders;
        headers.prepend(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
        m_client->sendResponse(status, headers, openAiErrorBody(m_redactor->redact(message), type, code));
    }
    complete(message);
}

void ProxyExchange::onClientGone()
{
    if (m_phase == Phase::Done)
        return;
    qCInfo(lcForward).noquote() << m_record.method << m_redactor->redact(m_record.path)
                                << "client closed the connection";
    endAttempt();
    complete(QStringLiteral("client closed the connection"));
}

void ProxyExchange::abort(const QString &reason)
{
    if (m_phase == Phase::Done)
        return;
    if (m_phase != Phase::Streaming) {
        stopWaitingForKey();
        respondWithError(503, reason, QStringLiteral("keyrelay_error"), QStringLiteral("shutting_down"));
        return;
    }
    endAttempt();
    if (m_client)
        m_client->abortResponse();
    complete(reason);
}

void ProxyExchange::complete(const QString &error)
{
    if (m_phase == Phase::Done)
        return;
    stopWaitingForKey();
    setPhase(Phase::Done);
    // What earlier tries taught about their keys counts however the request ends (the client may leave
    // while the next key is being tried).
    if (!m_verdicts.isEmpty())
        commitVerdicts(false);
    m_idleTimer.stop();
    m_keyWaitTimer.stop();
    endAttempt();
    if (error.isEmpty() && m_client)
        m_client->finishResponse();
    // The connection object outlives an abort or a close until the event loop runs again.
    if (m_client)
        m_record.responseBytes = m_client->bodyBytesWritten();
    if (m_record.error.isEmpty())
        m_record.error = error;
    m_record.durationMs = m_clock.elapsed();
    TokenUsage usage;
    const QByteArray &captured = m_attempt.captured;
    bool counted = false;
    if (m_attempt.streamed) {
        m_attempt.streamUsage.finish();
        counted = m_attempt.streamUsage.hasUsage();
        usage = m_attempt.streamUsage.usage();
    } else {
        counted = !captured.isEmpty() && parseTokenUsage(captured, false, &usage);
    }
    if (counted) {
        m_record.promptTokens = usage.prompt;
        m_record.completionTokens = usage.completion;
        m_record.totalTokens = usage.total;
    }
    if (m_record.error.isEmpty() && m_record.status >= 400) // the upstream's own explanation, for the log
        m_record.error = upstreamErrorMessage(captured, m_record.status);
    Q_EMIT finished(m_record);
    deleteLater();
}

} // namespace keyrelay
