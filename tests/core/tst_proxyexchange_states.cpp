// ProxyExchange driven through its state machine with fakes, no sockets: a FakeSink stands for the
// client (it records what was written and drains on demand), a FakeUpstream for the upstream (each of its
// calls is scripted from the test body: answer, feed, finish). Each case checks what must hold at every
// step: the phase, what the client has received at that moment, which calls went upstream with which key.
// Only the idle-timeout cases wait, for signals and with QTRY_* (idleTimeoutSec = 1); no sleeps.
#include "accesspolicy.h"
#include "keypool.h"
#include "proxyconfig.h"
#include "proxyexchange.h"
#include "requestrecord.h"
#include "responsesink.h"
#include "secretredactor.h"
#include "upstreamcall.h"

#include <QElapsedTimer>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPointer>
#include <QSignalSpy>
#include <QTimer>
#include <QtTest>

#include <cerrno>
#include <memory>

using namespace keyrelay;

using Phase = ProxyExchange::Phase;

namespace {

const QString KeyA = QStringLiteral("sk-proj-AAAAbbbbCCCCddddEEEEffff0000111122223333");
const QString KeyB = QStringLiteral("sk-proj-BBBBccccDDDDeeeeFFFFgggg4444555566667777");
const QString KeyC = QStringLiteral("sk-proj-CCCCddddEEEEffffGGGGhhhh8888999900001111");
const QByteArray ClientKey = "sk-client-own-key-0123456789abcdefghijklmnop";

const QByteArray ChatBody = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})";
/// A streamed chat request that asks for usage itself: KeyRelay adds nothing, the stream passes as is.
const QByteArray StreamBodyWithUsage = R"({"model":"gpt-4o-mini","stream":true,)"
                                       R"("stream_options":{"include_usage":true},)"
                                       R"("messages":[{"role":"user","content":"hi"}]})";
/// A streamed chat request without stream_options: KeyRelay asks for usage and filters the stream.
const QByteArray StreamBody
    = R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]})";

const QByteArray JsonAnswer = R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,)"
                              R"("message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],)"
                              R"("usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}})";

const HeaderList JsonHeaders { { "Content-Type", "application/json" }, { "x-request-id", "req_1" } };
const HeaderList StreamHeaders { { "Content-Type", "text/event-stream" } };

/// An OpenAI error body.
QByteArray errorBody(const QByteArray &message, const QByteArray &type, const QByteArray &code)
{
    return R"({"error":{"message":")" + message + R"(","type":")" + type + R"(","param":null,"code":")" + code
        + R"("}})";
}

QByteArray invalidKeyBody(const QString &key)
{
    return errorBody("Incorrect API key provided: " + key.toUtf8()
                         + ". You can find your API key at https://platform.openai.com/account/api-keys.",
                     "invalid_request_error", "invalid_api_key");
}

QByteArray sseEvent(const QByteArray &content)
{
    return R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":")"
        + content + "\"}}]}\n\n";
}

/// One SSE event of exactly @p size bytes.
QByteArray sseEventOfSize(qsizetype size, char fill)
{
    const QByteArray head = "data: ";
    const QByteArray tail = "\n\n";
    return head + QByteArray(size - head.size() - tail.size(), fill) + tail;
}

UpstreamResult failure(int curlCode, long osErrno, const QString &message)
{
    UpstreamResult result;
    result.curlCode = curlCode;
    result.osErrno = osErrno;
    result.message = message;
    return result;
}

HttpRequest chatRequest(const QByteArray &body = ChatBody)
{
    HttpRequest request;
    request.method = "POST";
    request.target = "/v1/chat/completions";
    request.headers = { { "Host", "127.0.0.1:9000" },
                        { "Authorization", "Bearer " + ClientKey },
                        { "Content-Type", "application/json" },
                        { "Content-Length", QByteArray::number(body.size()) } };
    request.body = body;
    return request;
}

/// The client side: records every call, and holds what was written as pending until it "reads".
class FakeSink : public ResponseSink
{
    Q_OBJECT
public:
    qint64 pendingOutput() const override { return m_pending; }
    qint64 bodyBytesWritten() const override { return m_bodyBytesWritten; }

    void writeHead(int statusCode, const HeaderList &headerList, qint64 length) override
    {
        ++heads;
        status = statusCode;
        headers = headerList;
        contentLength = length;
        m_bodyBytesWritten = 0;
    }
    void writeBody(const QByteArray &data) override
    {
        ++bodyWrites;
        body += data;
        m_bodyBytesWritten += data.size();
        if (!reading)
            m_pending += data.size();
    }
    void finishResponse() override { ++finishes; }
    void abortResponse() override { ++aborts; }
    void sendResponse(int statusCode, const HeaderList &headerList, const QByteArray &whole) override
    {
        ++sends;
        status = statusCode;
        headers = headerList;
        contentLength = whole.size();
        body = whole;
        m_bodyBytesWritten = whole.size();
    }

    /// A client that does not read: what is written stays pending.
    void stopReading() { reading = false; }
    void setPendingOutput(qint64 pending) { m_pending = pending; }
    /// The client takes @p bytes of what is pending; below the low watermark the connection says so.
    void take(qint64 bytes)
    {
        ++takes;
        m_pending = qMax<qint64>(0, m_pending - bytes);
        if (m_pending < ProxyExchange::ClientBacklogLimit)
            Q_EMIT outputDrained();
    }
    /// The client took everything and reads on.
    void drain()
    {
        reading = true;
        m_pending = 0;
        Q_EMIT outputDrained();
    }
    void goAway() { Q_EMIT clientGone(); }

    /// Nothing at all was written to the client.
    bool untouched() const
    {
        return heads == 0 && sends == 0 && bodyWrites == 0 && finishes == 0 && aborts == 0;
    }
    /// Every byte handed to the client: header names and values, and the body.
    QByteArray everything() const
    {
        QByteArray all;
        for (const auto &header : headers)
            all += header.first + ": " + header.second + "\r\n";
        return all + body;
    }
    /// The "error" object of a JSON error body the client got.
    QJsonObject error() const
    {
        return QJsonDocument::fromJson(body).object().value(QLatin1String("error")).toObject();
    }
    QString errorCode() const { return error().value(QLatin1String("code")).toString(); }

    int heads = 0;
    int bodyWrites = 0;
    int finishes = 0;
    int aborts = 0;
    int sends = 0;
    int takes = 0;
    int status = 0;
    HeaderList headers;
    qint64 contentLength = -2;
    QByteArray body;
    bool reading = true;

private:
    qint64 m_pending = 0;
    qint64 m_bodyBytesWritten = 0;
};

/// What the upstream saw of one call; outlives the call (the exchange deletes its calls).
struct CallLog
{
    UpstreamRequestSpec spec;
    bool aborted = false; ///< abort() before the call finished
    qint64 bytesRead = 0;

    QByteArray header(const QByteArray &name) const { return headerValue(spec.headers, name); }
    int count(const QByteArray &name) const
    {
        int n = 0;
        for (const auto &header : spec.headers)
            n += header.first.compare(name, Qt::CaseInsensitive) == 0 ? 1 : 0;
        return n;
    }
};

/// One upstream call, scripted by the test: its signals are emitted from the test body.
class FakeCall : public UpstreamCall
{
    Q_OBJECT
public:
    FakeCall(std::shared_ptr<CallLog> log, QObject *parent) : UpstreamCall(parent), m_log(std::move(log)) { }

    int status() const override { return m_status; }
    HeaderList headers() const override { return m_headers; }
    qint64 bytesAvailable() const override { return m_buffer.size(); }
    QByteArray read(qint64 maxBytes = -1) override
    {
        const qsizetype take
            = maxBytes < 0 ? m_buffer.size() : qsizetype(qMin<qint64>(maxBytes, m_buffer.size()));
        const QByteArray out = m_buffer.left(take);
        m_buffer.remove(0, take);
        m_log->bytesRead += out.size();
        return out;
    }
    bool isPaused() const override { return m_buffer.size() >= m_log->spec.bufferLimit; }
    bool isFinished() const override { return m_finished; }
    UpstreamResult result() const override { return m_result; }
    void abort() override
    {
        if (m_finished)
            return;
        m_finished = true;
        m_result.aborted = true;
        m_result.curlCode = 42; // CURLE_ABORTED_BY_CALLBACK
        m_result.message = QStringLiteral("aborted");
        m_log->aborted = true;
    }

    void answer(int status, const HeaderList &headers)
    {
        m_status = status;
        m_headers = headers;
        Q_EMIT headersReceived();
    }
    void feed(const QByteArray &bytes)
    {
        m_buffer += bytes;
        Q_EMIT dataAvailable();
    }
    void finish(const UpstreamResult &result = UpstreamResult())
    {
        m_finished = true;
        m_result = result;
        Q_EMIT finished();
    }

private:
    std::shared_ptr<CallLog> m_log;
    int m_status = 0;
    HeaderList m_headers;
    QByteArray m_buffer;
    bool m_finished = false;
    UpstreamResult m_result;
};

class FakeUpstream : public UpstreamClient
{
public:
    UpstreamCall *startCall(const UpstreamRequestSpec &spec, QObject *parent) override
    {
        auto log = std::make_shared<CallLog>();
        log->spec = spec;
        logs.append(log);
        auto *call = new FakeCall(log, parent);
        calls.append(call);
        return call;
    }

    QList<std::shared_ptr<CallLog>> logs;
    QList<QPointer<FakeCall>> calls;
};

/// One exchange with a real KeyPool, SecretRedactor, AccessPolicy and ProxyConfig around the fakes.
struct Harness
{
    explicit Harness(const QList<ApiKey> &keys)
    {
        config.upstream = QUrl(QStringLiteral("http://upstream.test"));
        pool.setKeys(keys);
        access->client = &upstream;
    }
    ~Harness() { delete exchange.data(); }
    Harness(const Harness &) = delete;
    Harness &operator=(const Harness &) = delete;

    /// Builds the exchange as ProxyServer::onRequest does; start() is left to the test.
    void create(const HttpRequest &request)
    {
        pool.setPolicy({ config.recheckInvalidSec, config.recheckExhaustedSec, config.maxAttempts,
                         config.maxConcurrentPerKey });
        auto shared = std::make_shared<const ProxyConfig>(config);
        exchange = new ProxyExchange(1, &sink, request, shared, std::make_shared<const AccessPolicy>(*shared),
                                     HeaderList(), &pool, access, &redactor);
        spy = std::make_unique<QSignalSpy>(exchange.data(), &ProxyExchange::finished);
    }
    void start(const HttpRequest &request = chatRequest())
    {
        create(request);
        exchange->start();
    }

    FakeCall *call(int i) const { return upstream.calls.value(i); }
    const CallLog &log(int i) const { return *upstream.logs.at(i); }
    int callCount() const { return int(upstream.calls.size()); }
    Phase phase() const { return exchange ? exchange->phase() : Phase::Done; }
    RequestRecord record() const { return spy->constLast().constFirst().value<RequestRecord>(); }
    KeyStatus status(const QString &key) const
    {
        const QList<KeyStatus> all = pool.snapshot();
        for (const KeyStatus &status : all) {
            if (status.id == KeyPool::keyId(key))
                return status;
        }
        return {};
    }
    /// Runs the exchange's deleteLater().
    static void flushDeletes() { QCoreApplication::sendPostedEvents(nullptr, QEvent::DeferredDelete); }

    ProxyConfig config;
    KeyPool pool;
    SecretRedactor redactor { &pool };
    FakeSink sink;
    FakeUpstream upstream;
    std::shared_ptr<UpstreamAccess> access = std::make_shared<UpstreamAccess>();
    QPointer<ProxyExchange> exchange;
    std::unique_ptr<QSignalSpy> spy;
};

QList<ApiKey> keys(std::initializer_list<QString> secrets)
{
    static const QStringList labels { QStringLiteral("alpha"), QStringLiteral("beta"),
                                      QStringLiteral("gamma") };
    QList<ApiKey> list;
    for (const QString &secret : secrets)
        list.append({ secret, labels.value(int(list.size())), true });
    return list;
}

/// True when any 8 consecutive characters from the middle of @p secret appear in @p bytes.
bool leaksPartOf(const QByteArray &bytes, const QString &secret)
{
    const QByteArray key = secret.toUtf8();
    for (qsizetype i = 3; i + 8 <= key.size() - 4; ++i) {
        if (bytes.contains(key.mid(i, 8)))
            return true;
    }
    return false;
}

} // namespace

class tst_ProxyExchangeStates : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void happyPathJson();
    void invalidKeyRetriedBeforeTheFirstByte();
    void serverErrorsStopAtMaxAttempts();
    void heldErrorQuotingTheKeyIsMasked();
    void oversizedErrorIsReplaced();
    void backPressureHoldsDataInTheCall();
    void noAnswerRetriesThenBadGateway();
    void connectTimeoutIsNotRetried();
    void cutOffMidStream();
    void clientGoneWhileAwaitingAnswer();
    void clientGoneWhileStreaming();
    void abortBeforeTheHead();
    void abortWhileStreaming();
    void idleTimeoutWhileAwaitingAnswer();
    void idleTimeoutSparesAClientThatKeepsReading();
    void proxyAuthenticationRequired();
    void verdictsBookedWhenTheClientLeavesDuringARetry();
};

void tst_ProxyExchangeStates::initTestCase()
{
    qRegisterMetaType<RequestRecord>();
}

void tst_ProxyExchangeStates::happyPathJson()
{
    Harness h(keys({ KeyA }));
    h.create(chatRequest());
    QCOMPARE(h.phase(), Phase::Preparing);
    QCOMPARE(h.callCount(), 0);

    h.exchange->start();
    QCOMPARE(h.phase(), Phase::AwaitingAnswer);
    QCOMPARE(h.callCount(), 1);
    QVERIFY(h.sink.untouched());
    QCOMPARE(h.exchange->upstreamCall(), h.call(0));
    // What went upstream: the pool's key, once, and nothing of the client's own key.
    const CallLog &sent = h.log(0);
    QCOMPARE(sent.spec.method, QByteArray("POST"));
    QCOMPARE(sent.spec.url, QUrl(QStringLiteral("http://upstream.test/v1/chat/completions")));
    QCOMPARE(sent.count("Authorization"), 1);
    QCOMPARE(sent.header("Authorization"), "Bearer " + KeyA.toUtf8());
    QCOMPARE(sent.header("Content-Type"), QByteArray("application/json"));
    QCOMPARE(sent.spec.body, ChatBody);
    for (const auto &header : sent.spec.headers)
        QVERIFY2(!header.second.contains(ClientKey), header.first.constData());
    QVERIFY(!sent.spec.body.contains(ClientKey));
    QCOMPARE(sent.spec.bufferLimit, ProxyExchange::UpstreamBufferLimit);
    QVERIFY(sent.spec.proxy.isEmpty());
    QCOMPARE(h.status(KeyA).inFlight, 1);

    h.call(0)->answer(200, JsonHeaders);
    QCOMPARE(h.phase(), Phase::Streaming);
    QCOMPARE(h.sink.heads, 1);
    QCOMPARE(h.sink.status, 200);
    QCOMPARE(headerValue(h.sink.headers, "x-request-id"), QByteArray("req_1"));
    QCOMPARE(h.sink.contentLength, -1);
    QVERIFY(h.sink.body.isEmpty());
    QCOMPARE(h.sink.finishes, 0);

    const QByteArray first = JsonAnswer.left(40);
    h.call(0)->feed(first);
    QCOMPARE(h.phase(), Phase::Streaming);
    QCOMPARE(h.sink.body, first); // passed on as it comes, not held
    h.call(0)->feed(JsonAnswer.mid(40));
    QCOMPARE(h.sink.body, JsonAnswer);
    QCOMPARE(h.sink.finishes, 0);
    QCOMPARE(h.spy->count(), 0);

    h.call(0)->finish();
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.sink.finishes, 1);
    QCOMPARE(h.sink.aborts, 0);
    QCOMPARE(h.sink.sends, 0);
    QCOMPARE(h.spy->count(), 1);
    const RequestRecord record = h.record();
    QCOMPARE(record.status, 200);
    QCOMPARE(record.keyLabel, QStringLiteral("alpha"));
    QCOMPARE(record.keyId, KeyPool::keyId(KeyA));
    QCOMPARE(record.model, QStringLiteral("gpt-4o-mini"));
    QCOMPARE(record.attempts, 1);
    QCOMPARE(record.promptTokens, 12);
    QCOMPARE(record.completionTokens, 5);
    QCOMPARE(record.totalTokens, 17);
    QCOMPARE(record.responseBytes, JsonAnswer.size());
    QVERIFY2(record.error.isEmpty(), qPrintable(record.error));
    QVERIFY(!record.streamed);
    QVERIFY(!record.keyLabel.contains(KeyA));
    QCOMPARE(h.status(KeyA).inFlight, 0);
    QCOMPARE(h.status(KeyA).health, KeyHealth::Ok);

    Harness::flushDeletes();
    QVERIFY(h.exchange.isNull());
    QCOMPARE(h.spy->count(), 1);
}

void tst_ProxyExchangeStates::invalidKeyRetriedBeforeTheFirstByte()
{
    Harness h(keys({ KeyA, KeyB }));
    h.start();
    QCOMPARE(h.callCount(), 1);
    QCOMPARE(h.log(0).header("Authorization"), "Bearer " + KeyA.toUtf8());

    const QByteArray refusal = invalidKeyBody(KeyPool::mask(KeyA));
    h.call(0)->answer(401, JsonHeaders);
    QCOMPARE(h.phase(), Phase::HoldingError);
    QVERIFY(h.sink.untouched());
    h.call(0)->feed(refusal.left(30));
    QCOMPARE(h.phase(), Phase::HoldingError);
    QVERIFY(h.sink.untouched());
    h.call(0)->feed(refusal.mid(30));
    QCOMPARE(h.phase(), Phase::HoldingError);
    QVERIFY(h.sink.untouched());
    QCOMPARE(h.callCount(), 1);

    // The error is complete: the next key gets the same request, the client still has seen nothing.
    h.call(0)->finish();
    QCOMPARE(h.callCount(), 2);
    QCOMPARE(h.phase(), Phase::AwaitingAnswer);
    QVERIFY(h.sink.untouched());
    QCOMPARE(h.exchange->upstreamCall(), h.call(1));
    QCOMPARE(h.log(1).count("Authorization"), 1);
    QCOMPARE(h.log(1).header("Authorization"), "Bearer " + KeyB.toUtf8());
    QCOMPARE(h.log(1).spec.body, h.log(0).spec.body);
    QCOMPARE(h.log(1).spec.body, ChatBody);
    QCOMPARE(h.log(1).spec.method, h.log(0).spec.method);
    QCOMPARE(h.log(1).spec.url, h.log(0).spec.url);

    h.call(1)->answer(200, JsonHeaders);
    QCOMPARE(h.phase(), Phase::Streaming);
    QCOMPARE(h.sink.heads, 1);
    QCOMPARE(h.sink.status, 200);
    h.call(1)->feed(JsonAnswer);
    h.call(1)->finish();
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.sink.body, JsonAnswer); // only the second answer
    QCOMPARE(h.sink.heads, 1);
    QCOMPARE(h.sink.sends, 0);
    QCOMPARE(h.sink.finishes, 1);
    QCOMPARE(h.callCount(), 2);

    QCOMPARE(h.spy->count(), 1);
    const RequestRecord record = h.record();
    QCOMPARE(record.attempts, 2);
    QCOMPARE(record.status, 200);
    QCOMPARE(record.keyLabel, QStringLiteral("beta"));
    QCOMPARE(record.totalTokens, 17);
    QCOMPARE(h.status(KeyA).health, KeyHealth::Invalid);
    QCOMPARE(h.status(KeyB).health, KeyHealth::Ok);
    QCOMPARE(h.status(KeyA).inFlight, 0);
    QCOMPARE(h.status(KeyB).inFlight, 0);
}

void tst_ProxyExchangeStates::serverErrorsStopAtMaxAttempts()
{
    Harness h(keys({ KeyA, KeyB, KeyC }));
    h.config.maxAttempts = 2;
    h.start();

    const QByteArray first = errorBody("The server had an error while processing your request.",
                                       "server_error", "internal_error");
    h.call(0)->answer(500, JsonHeaders);
    h.call(0)->feed(first);
    QCOMPARE(h.phase(), Phase::HoldingError);
    h.call(0)->finish();
    QCOMPARE(h.callCount(), 2);
    QCOMPARE(h.phase(), Phase::AwaitingAnswer);
    QVERIFY(h.sink.untouched());
    QCOMPARE(h.log(1).header("Authorization"), "Bearer " + KeyB.toUtf8());

    // The second 500 quotes the key it was sent with: the client gets it masked.
    const QByteArray second
        = errorBody("upstream worker failed for key " + KeyB.toUtf8(), "server_error", "internal_error");
    h.call(1)->answer(500, { { "Content-Type", "application/json" }, { "x-request-id", "req_2" } });
    h.call(1)->feed(second);
    QCOMPARE(h.phase(), Phase::HoldingError);
    QVERIFY(h.sink.untouched());
    h.call(1)->finish();
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.callCount(), 2); // [health] maxAttempts = 2: no third call although a key is left

    QByteArray expected = second;
    expected.replace(KeyB.toUtf8(), KeyPool::mask(KeyB).toUtf8());
    QCOMPARE(h.sink.heads, 1);
    QCOMPARE(h.sink.status, 500);
    QCOMPARE(h.sink.body, expected);
    QCOMPARE(h.sink.contentLength, expected.size());
    QCOMPARE(headerValue(h.sink.headers, "x-request-id"), QByteArray("req_2"));
    QVERIFY(!h.sink.everything().contains(KeyB.toUtf8()));
    QCOMPARE(h.sink.finishes, 1);
    QCOMPARE(h.sink.sends, 0);

    QCOMPARE(h.spy->count(), 1);
    const RequestRecord record = h.record();
    QCOMPARE(record.status, 500);
    QCOMPARE(record.attempts, 2);
    QCOMPARE(record.keyLabel, QStringLiteral("beta"));
    QVERIFY(!record.error.isEmpty());

    Harness::flushDeletes();
    QCOMPARE(h.callCount(), 2);
    QCOMPARE(h.status(KeyC).requests, quint64(0));
}

void tst_ProxyExchangeStates::heldErrorQuotingTheKeyIsMasked()
{
    Harness h(keys({ KeyA }));
    h.start();
    const QByteArray refusal = invalidKeyBody(KeyA);
    QVERIFY(refusal.contains(KeyA.toUtf8()));
    h.call(0)->answer(
        401,
        { { "Content-Type", "application/json" },
          { "WWW-Authenticate", "Bearer error=\"invalid_token\", key=\"" + KeyA.toUtf8() + "\"" } });
    QCOMPARE(h.phase(), Phase::HoldingError);
    // The key arrives split over two reads.
    const qsizetype split = refusal.indexOf(KeyA.toUtf8()) + 20;
    h.call(0)->feed(refusal.left(split));
    QVERIFY(h.sink.untouched());
    h.call(0)->feed(refusal.mid(split));
    QVERIFY(h.sink.untouched());
    h.call(0)->finish();
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.callCount(), 1); // no other key to try

    QCOMPARE(h.sink.status, 401);
    QCOMPARE(h.sink.finishes, 1);
    const QByteArray everything = h.sink.everything();
    QVERIFY2(!everything.contains(KeyA.toUtf8()), everything.constData());
    QVERIFY2(!leaksPartOf(everything, KeyA), everything.constData());
    QVERIFY(h.sink.body.contains(QByteArray("Incorrect API key provided: " + KeyPool::mask(KeyA).toUtf8())));
    QCOMPARE(h.sink.errorCode(), QStringLiteral("invalid_api_key")); // the rest reaches the client unchanged
    QCOMPARE(h.sink.contentLength, h.sink.body.size());
    QVERIFY(headerValue(h.sink.headers, "WWW-Authenticate").startsWith("Bearer error=\"invalid_token\""));
    QCOMPARE(h.record().status, 401);
}

void tst_ProxyExchangeStates::oversizedErrorIsReplaced()
{
    Harness h(keys({ KeyA, KeyB }));
    h.start();
    h.call(0)->answer(503, { { "Content-Type", "text/html" }, { "Retry-After", "7" } });
    QCOMPARE(h.phase(), Phase::HoldingError);
    const QByteArray chunk(256 * 1024, 'x');
    for (qint64 held = 0; held < ProxyExchange::MaxHeldErrorBody; held += chunk.size()) {
        h.call(0)->feed(chunk);
        QCOMPARE(h.phase(), Phase::HoldingError);
        QVERIFY(h.sink.untouched());
    }
    // MaxHeldErrorBody held, not yet over: one more byte is.
    h.call(0)->feed("x");
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.sink.sends, 1);
    QCOMPARE(h.sink.heads, 0);
    QCOMPARE(h.sink.status, 503);
    QCOMPARE(h.sink.errorCode(), QStringLiteral("upstream_error_too_large"));
    QCOMPARE(h.sink.error().value(QLatin1String("type")).toString(), QStringLiteral("upstream_error"));
    QVERIFY(!h.sink.body.contains("xxxx"));
    QCOMPARE(headerValue(h.sink.headers, "Retry-After"), QByteArray("7"));
    QVERIFY(h.log(0).aborted); // the rest is not read
    QCOMPARE(h.callCount(), 1);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().status, 503);
}

void tst_ProxyExchangeStates::backPressureHoldsDataInTheCall()
{
    Harness h(keys({ KeyA }));
    h.start(chatRequest(StreamBodyWithUsage));
    QCOMPARE(h.log(0).spec.body, StreamBodyWithUsage); // the client asked for usage: nothing added
    h.call(0)->answer(200, StreamHeaders);
    QCOMPARE(h.phase(), Phase::Streaming);
    h.sink.stopReading();

    // The client takes nothing: exactly ClientBacklogLimit bytes go out, then no more.
    const QByteArray first = sseEventOfSize(ProxyExchange::ClientBacklogLimit, 'a');
    h.call(0)->feed(first);
    QCOMPARE(h.sink.body, first);
    QCOMPARE(h.sink.pendingOutput(), ProxyExchange::ClientBacklogLimit);
    QCOMPARE(h.call(0)->bytesAvailable(), 0);

    const QByteArray second = sseEvent("more");
    const QByteArray third = sseEventOfSize(300 * 1024, 'c');
    h.call(0)->feed(second);
    QCOMPARE(h.call(0)->bytesAvailable(), second.size());
    QCOMPARE(h.sink.body.size(), first.size());
    h.call(0)->feed(third);
    QCOMPARE(h.call(0)->bytesAvailable(), second.size() + third.size());
    QVERIFY(h.call(0)->isPaused()); // the upstream waits as well
    QCOMPARE(h.sink.body.size(), first.size());
    // The upstream is done, the client is not: not complete, not cut off.
    h.call(0)->finish();
    QCOMPARE(h.sink.body.size(), first.size());
    QCOMPARE(h.phase(), Phase::Streaming);
    QCOMPARE(h.sink.finishes, 0);
    QCOMPARE(h.sink.aborts, 0);
    QCOMPARE(h.spy->count(), 0);

    // A stalled client above the limit: even a pump (an outputDrained too early) moves nothing.
    h.sink.setPendingOutput(ProxyExchange::ClientBacklogLimit + 1);
    Q_EMIT h.sink.outputDrained();
    QCOMPARE(h.sink.body.size(), first.size());
    QCOMPARE(h.phase(), Phase::Streaming);

    // The client read: the rest goes out, and the exchange completes.
    h.sink.drain();
    QCOMPARE(h.sink.body, first + second + third);
    QCOMPARE(h.call(0) ? h.call(0)->bytesAvailable() : 0, 0);
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.sink.finishes, 1);
    QCOMPARE(h.sink.aborts, 0);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().responseBytes, (first + second + third).size());
    QVERIFY(h.record().streamed);
}

void tst_ProxyExchangeStates::noAnswerRetriesThenBadGateway()
{
    Harness h(keys({ KeyA, KeyB }));
    h.start();
    const UpstreamResult refused = failure(
        7, ECONNREFUSED, QStringLiteral("Failed to connect to upstream.test port 80: Connection refused"));
    h.call(0)->finish(refused);
    QCOMPARE(h.callCount(), 2); // another key first
    QCOMPARE(h.phase(), Phase::AwaitingAnswer);
    QVERIFY(h.sink.untouched());
    QCOMPARE(h.log(1).header("Authorization"), "Bearer " + KeyB.toUtf8());
    QCOMPARE(h.log(1).spec.body, h.log(0).spec.body);

    h.call(1)->finish(refused);
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.callCount(), 2);
    QCOMPARE(h.sink.sends, 1);
    QCOMPARE(h.sink.status, 502);
    QCOMPARE(h.sink.errorCode(), QStringLiteral("upstream_unreachable"));
    QCOMPARE(h.sink.error().value(QLatin1String("message")).toString(),
             QStringLiteral("the upstream upstream.test:80 refused the connection"));
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().status, 502);
    QCOMPARE(h.record().attempts, 2);
    // Not the keys' fault.
    QVERIFY(h.status(KeyA).health != KeyHealth::Invalid);
    QVERIFY(h.status(KeyB).health != KeyHealth::Invalid);
}

void tst_ProxyExchangeStates::connectTimeoutIsNotRetried()
{
    Harness h(keys({ KeyA, KeyB }));
    h.config.connectTimeoutSec = 15;
    h.start();
    h.call(0)->finish(failure(28, 0, QStringLiteral("Connection timed out after 15000 milliseconds")));
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.callCount(), 1);
    QCOMPARE(h.sink.sends, 1);
    QCOMPARE(h.sink.status, 504);
    QCOMPARE(h.sink.errorCode(), QStringLiteral("upstream_connect_timeout"));
    QCOMPARE(h.record().attempts, 1);
    QCOMPARE(h.record().status, 504);
}

void tst_ProxyExchangeStates::cutOffMidStream()
{
    Harness h(keys({ KeyA }));
    h.start(chatRequest(StreamBody));
    QVERIFY(h.log(0).spec.body.contains("stream_options")); // KeyRelay asked for usage
    h.call(0)->answer(200, StreamHeaders);
    QCOMPARE(h.phase(), Phase::Streaming);
    const QByteArray events = sseEvent("Hel") + sseEvent("lo");
    h.call(0)->feed(events);
    QCOMPARE(h.sink.body, events);
    const QByteArray partial
        = R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"de)";
    h.call(0)->feed(partial);
    QCOMPARE(h.sink.body, events); // half an event is held until it is whole
    QCOMPARE(h.sink.aborts, 0);

    h.call(0)->finish(failure(56, ECONNRESET, QStringLiteral("Recv failure: Connection reset by peer")));
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.sink.body, events + partial); // what arrived goes out, then the connection drops
    QCOMPARE(h.sink.aborts, 1);
    QCOMPARE(h.sink.finishes, 0);
    QCOMPARE(h.sink.sends, 0);
    QCOMPARE(h.spy->count(), 1);
    const RequestRecord record = h.record();
    QVERIFY2(record.error.startsWith(QLatin1String("response cut off")), qPrintable(record.error));
    QVERIFY(record.error.contains(QLatin1String("Connection reset by peer")));
    QCOMPARE(record.status, 200);
    QVERIFY(record.streamed);
}

void tst_ProxyExchangeStates::clientGoneWhileAwaitingAnswer()
{
    Harness h(keys({ KeyA }));
    h.start();
    QCOMPARE(h.phase(), Phase::AwaitingAnswer);
    h.sink.goAway();
    QCOMPARE(h.phase(), Phase::Done);
    QVERIFY(h.log(0).aborted);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().error, QStringLiteral("client closed the connection"));
    QCOMPARE(h.record().status, 0);
    QCOMPARE(h.sink.heads + h.sink.sends + h.sink.finishes, 0);
    QCOMPARE(h.status(KeyA).inFlight, 0);

    // Late news changes nothing.
    h.sink.goAway();
    if (h.call(0))
        h.call(0)->answer(200, JsonHeaders);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.sink.heads, 0);
    Harness::flushDeletes();
    QVERIFY(h.exchange.isNull());
    QCOMPARE(h.spy->count(), 1);
}

void tst_ProxyExchangeStates::clientGoneWhileStreaming()
{
    Harness h(keys({ KeyA }));
    h.start(chatRequest(StreamBodyWithUsage));
    h.call(0)->answer(200, StreamHeaders);
    h.call(0)->feed(sseEvent("Hel"));
    QCOMPARE(h.phase(), Phase::Streaming);
    QCOMPARE(h.sink.body, sseEvent("Hel"));

    h.sink.goAway();
    QCOMPARE(h.phase(), Phase::Done);
    QVERIFY(h.log(0).aborted);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().error, QStringLiteral("client closed the connection"));
    QCOMPARE(h.record().status, 200);
    QCOMPARE(h.sink.finishes, 0);

    h.sink.goAway();
    if (h.call(0))
        h.call(0)->feed(sseEvent("lo"));
    QCOMPARE(h.sink.body, sseEvent("Hel"));
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.status(KeyA).inFlight, 0);
}

void tst_ProxyExchangeStates::abortBeforeTheHead()
{
    Harness h(keys({ KeyA }));
    h.start();
    h.exchange->abort(QStringLiteral("shutting down"));
    QCOMPARE(h.phase(), Phase::Done);
    QVERIFY(h.log(0).aborted);
    QCOMPARE(h.sink.sends, 1);
    QCOMPARE(h.sink.status, 503);
    QCOMPARE(h.sink.errorCode(), QStringLiteral("shutting_down"));
    QCOMPARE(h.sink.aborts, 0);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().status, 503);
    h.exchange->abort(QStringLiteral("shutting down"));
    QCOMPARE(h.spy->count(), 1);
}

void tst_ProxyExchangeStates::abortWhileStreaming()
{
    Harness h(keys({ KeyA }));
    h.start(chatRequest(StreamBodyWithUsage));
    h.call(0)->answer(200, StreamHeaders);
    h.call(0)->feed(sseEvent("Hel"));
    QCOMPARE(h.phase(), Phase::Streaming);
    h.exchange->abort(QStringLiteral("shutting down"));
    QCOMPARE(h.phase(), Phase::Done);
    QVERIFY(h.log(0).aborted);
    QCOMPARE(h.sink.aborts, 1);
    QCOMPARE(h.sink.finishes, 0);
    QCOMPARE(h.sink.sends, 0);
    QCOMPARE(h.sink.body, sseEvent("Hel"));
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.record().error, QStringLiteral("shutting down"));
    QCOMPARE(h.record().status, 200);
}

void tst_ProxyExchangeStates::idleTimeoutWhileAwaitingAnswer()
{
    Harness h(keys({ KeyA, KeyB }));
    h.config.idleTimeoutSec = 1;
    h.start();
    QElapsedTimer clock;
    clock.start();
    QCOMPARE(h.phase(), Phase::AwaitingAnswer);
    QTRY_COMPARE_WITH_TIMEOUT(h.spy->count(), 1, 5000);
    QVERIFY2(clock.elapsed() >= 900, QByteArray::number(clock.elapsed()).constData());
    QVERIFY(h.log(0).aborted);
    QCOMPARE(h.callCount(), 1); // a silent upstream is not retried with another key
    QCOMPARE(h.sink.sends, 1);
    QCOMPARE(h.sink.status, 504);
    QCOMPARE(h.sink.errorCode(), QStringLiteral("upstream_idle_timeout"));
    QCOMPARE(h.record().status, 504);
}

void tst_ProxyExchangeStates::idleTimeoutSparesAClientThatKeepsReading()
{
    Harness h(keys({ KeyA }));
    h.config.idleTimeoutSec = 1;
    h.start(chatRequest(StreamBodyWithUsage));
    h.call(0)->answer(200, StreamHeaders);
    h.sink.stopReading();
    const QByteArray first = sseEventOfSize(ProxyExchange::ClientBacklogLimit, 'a');
    const QByteArray rest = sseEventOfSize(64 * 1024, 'b');
    h.call(0)->feed(first);
    h.call(0)->feed(rest);
    QCOMPARE(h.call(0)->bytesAvailable(), rest.size());

    // The upstream sends nothing more (it waits for the client); the client reads slowly but steadily,
    // 8 KiB every 100 ms, for 1.5 idle timeouts: the response must not be cut off.
    QTimer reader;
    QObject::connect(&reader, &QTimer::timeout, &h.sink, [&h] { h.sink.take(8 * 1024); });
    reader.start(100);
    QElapsedTimer clock;
    clock.start();
    QTRY_VERIFY_WITH_TIMEOUT(h.sink.takes >= 15 && clock.elapsed() >= 1500, 5000);
    QCOMPARE(h.phase(), Phase::Streaming);
    QCOMPARE(h.spy->count(), 0);
    QCOMPARE(h.sink.aborts, 0);
    QVERIFY(h.sink.pendingOutput() > 0);

    // The client stops reading: nothing moves either way, and the idle timeout ends it.
    reader.stop();
    clock.restart();
    QTRY_COMPARE_WITH_TIMEOUT(h.spy->count(), 1, 5000);
    // At least one idle timeout after the last byte the client took (which was up to 100 ms before).
    QVERIFY2(clock.elapsed() >= 700, QByteArray::number(clock.elapsed()).constData());
    QCOMPARE(h.sink.aborts, 1);
    QCOMPARE(h.sink.finishes, 0);
    QCOMPARE(h.record().error, QStringLiteral("response cut off: the client took nothing for 1 s"));
}

void tst_ProxyExchangeStates::proxyAuthenticationRequired()
{
    {
        Harness h(keys({ KeyA, KeyB }));
        h.access->proxy = QNetworkProxy(QNetworkProxy::HttpProxy, QStringLiteral("127.0.0.1"), 3128);
        h.start();
        QCOMPARE(h.log(0).spec.proxy, QStringLiteral("http://127.0.0.1:3128"));
        h.call(0)->answer(407, { { "Proxy-Authenticate", "Basic realm=\"proxy\"" } });
        QCOMPARE(h.phase(), Phase::Done);
        QCOMPARE(h.callCount(), 1); // another key does not help
        QCOMPARE(h.sink.sends, 1);
        QCOMPARE(h.sink.heads, 0);
        QCOMPARE(h.sink.status, 502);
        QCOMPARE(h.sink.errorCode(), QStringLiteral("upstream_proxy_error"));
        QVERIFY(h.sink.error()
                    .value(QLatin1String("message"))
                    .toString()
                    .contains(QLatin1String("127.0.0.1:3128")));
        QCOMPARE(h.record().status, 502);
        QVERIFY(h.status(KeyA).health != KeyHealth::Invalid);
    }
    {
        // Without a network proxy, a 407 is the upstream's own (odd) answer, passed on.
        Harness h(keys({ KeyA }));
        h.start();
        QVERIFY(h.log(0).spec.proxy.isEmpty());
        const QByteArray body = errorBody("proxy auth", "invalid_request_error", "proxy_auth");
        h.call(0)->answer(407, JsonHeaders);
        QCOMPARE(h.phase(), Phase::HoldingError);
        h.call(0)->feed(body);
        h.call(0)->finish();
        QCOMPARE(h.sink.status, 407);
        QCOMPARE(h.sink.body, body);
    }
}

void tst_ProxyExchangeStates::verdictsBookedWhenTheClientLeavesDuringARetry()
{
    // The first key's 401 moved the request on to the second key; the client then leaves. What the
    // request learnt about the first key must be booked all the same, as it is when the request ends
    // any other way (a lone refusal is always held against its key).
    Harness h(keys({ KeyA, KeyB }));
    h.start();
    h.call(0)->answer(401, JsonHeaders);
    h.call(0)->feed(invalidKeyBody(KeyPool::mask(KeyA)));
    h.call(0)->finish();
    QCOMPARE(h.callCount(), 2);
    h.sink.goAway();
    QCOMPARE(h.phase(), Phase::Done);
    QCOMPARE(h.spy->count(), 1);
    QCOMPARE(h.status(KeyA).inFlight, 0);
    QCOMPARE(h.status(KeyB).inFlight, 0);
    QCOMPARE(h.status(KeyA).health, KeyHealth::Invalid);
}

QTEST_GUILESS_MAIN(tst_ProxyExchangeStates)
#include "tst_proxyexchange_states.moc"
