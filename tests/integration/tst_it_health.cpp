// Key health and usage end to end: an invalid key is re-checked in the background (a GET of the model
// list, no tokens spent) and comes back by itself; streamed answers are counted although the client
// did not ask for usage, and the client's stream keeps its shape; the per-key limit of requests in
// flight; an upstream that does not take stream_options.
#include "keyhealthmonitor.h"
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

using namespace it;

namespace {
const QString KeyA = QStringLiteral("sk-test-aaaaaaaaaaaaaaaa0001");
const QString KeyB = QStringLiteral("sk-test-bbbbbbbbbbbbbbbb0002");

QByteArray bearer(const QString &key)
{
    return "Bearer " + key.toUtf8();
}

QByteArray event(const QByteArray &json)
{
    return "data: " + json + "\n\n";
}

const QByteArray Chunk1 = event(
    R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]})");
const QByteArray Chunk2 = event(
    R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]})");
const QByteArray UsageChunk = event(
    R"({"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}})");
const QByteArray Done = "data: [DONE]\n\n";

bool asksForUsage(const QByteArray &body)
{
    return QJsonDocument::fromJson(body)
        .object()
        .value(QLatin1String("stream_options"))
        .toObject()
        .value(QLatin1String("include_usage"))
        .toBool();
}

/// An upstream that streams like OpenAI: the usage-only chunk only when the request asks for it.
MockResponse openAiStream(const RecordedRequest &request)
{
    QList<QPair<int, QByteArray>> events { { 0, Chunk1 }, { 5, Chunk2 } };
    if (asksForUsage(request.body))
        events.append({ 10, UsageChunk });
    events.append({ 15, Done });
    return MockResponse::sse(events);
}
} // namespace

class HealthTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void invalidKeyRecheckedInTheBackground();
    void recheckThatStillFailsKeepsTheKeyOut();
    void streamCountedWithoutExtraChunk();
    void streamWithClientRequestedUsageUnchanged();
    void streamUsageSettingOff();
    void upstreamRejectingStreamOptions();
    void perKeyConcurrencyLimitQueues();
    void streamFailingAfterFirstByteIsNotRetried();
    void perKeyConcurrencyLimitGivesUp();
    void newKeysCheckedOnceBeforeTheFirstChat();

private:
    bool startProxy(const QStringList &keys, const std::function<void(keyrelay::ProxyConfig &)> &adjust = {});
    std::unique_ptr<RawClient> chat(const QByteArray &body, int timeoutMs = 10000);
    std::unique_ptr<RawClient> sendChat(const QByteArray &body);

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void HealthTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
}

void HealthTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool HealthTest::startProxy(const QStringList &keys,
                            const std::function<void(keyrelay::ProxyConfig &)> &adjust)
{
    m_proxy = std::make_unique<ProxyHarness>(keys);
    keyrelay::ProxyConfig config = testConfig(m_mock->url());
    if (adjust)
        adjust(config);
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> HealthTest::sendChat(const QByteArray &body)
{
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(),
                 buildRequest("POST", "/v1/chat/completions", m_proxy->port(),
                              { { "Content-Type", "application/json" } }, body));
    return client;
}

std::unique_ptr<RawClient> HealthTest::chat(const QByteArray &body, int timeoutMs)
{
    auto client = sendChat(body);
    client->waitFinished(timeoutMs);
    return client;
}

void HealthTest::invalidKeyRecheckedInTheBackground()
{
    bool keyAFixed = false;
    m_mock->setHandler([&](const RecordedRequest &request) {
        if (request.header("Authorization") == bearer(KeyA) && !keyAFixed)
            return MockResponse::json(
                401,
                R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}})");
        if (request.target == "/v1/models")
            return MockResponse::json(200, R"({"object":"list","data":[{"id":"gpt-test"}]})");
        return MockResponse::json(
            200, R"({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})");
    });
    QVERIFY(startProxy({ KeyA, KeyB }, [](keyrelay::ProxyConfig &config) { config.recheckInvalidSec = 1; }));
    QSignalSpy recovered(&m_proxy->keys, &keyrelay::KeyPool::keyRecovered);

    // The first request meets the invalid key, is retried on B: the client sees a success.
    auto first = chat(R"({"model":"gpt-test","messages":[]})");
    QCOMPARE(first->status(), 200);
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Invalid);
    // Until the upstream accepts it again, no request uses it; the re-checks ask for the model list.
    for (int i = 0; i < 4; ++i)
        QCOMPARE(chat(R"({"model":"gpt-test","messages":[]})")->status(), 200);
    int chatsWithA = 0;
    for (const RecordedRequest &request : m_mock->requests()) {
        if (request.header("Authorization") == bearer(KeyA) && request.target == "/v1/chat/completions")
            ++chatsWithA;
    }
    QCOMPARE(chatsWithA, 1);

    keyAFixed = true;
    QTRY_COMPARE_WITH_TIMEOUT(recovered.count(), 1, 5000);
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Ok);
    const RecordedRequest recheck = [&] {
        for (const RecordedRequest &request : m_mock->requests()) {
            if (request.header("Authorization") == bearer(KeyA) && request.target == "/v1/models")
                return request;
        }
        return RecordedRequest();
    }();
    QCOMPARE(recheck.method, QByteArray("GET")); // no tokens spent
    QVERIFY(recheck.body.isEmpty());

    // Back in the rotation.
    m_mock->clearRequests();
    for (int i = 0; i < 4; ++i)
        QCOMPARE(chat(R"({"model":"gpt-test","messages":[]})")->status(), 200);
    int withA = 0;
    for (const RecordedRequest &request : m_mock->requests())
        withA += request.header("Authorization") == bearer(KeyA) ? 1 : 0;
    QCOMPARE(withA, 2);
}

void HealthTest::recheckThatStillFailsKeepsTheKeyOut()
{
    m_mock->setHandler([&](const RecordedRequest &request) {
        if (request.header("Authorization") == bearer(KeyA))
            return MockResponse::json(
                401, R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})");
        return MockResponse::json(200, R"({"object":"list","data":[]})");
    });
    QVERIFY(startProxy({ KeyA, KeyB }, [](keyrelay::ProxyConfig &config) { config.recheckInvalidSec = 1; }));
    QCOMPARE(chat(R"({"model":"m","messages":[]})")->status(), 200);
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Invalid);
    const auto recheckCount = [&] {
        int count = 0;
        for (const RecordedRequest &request : m_mock->requests())
            count
                += request.target == "/v1/models" && request.header("Authorization") == bearer(KeyA) ? 1 : 0;
        return count;
    };
    QTRY_VERIFY_WITH_TIMEOUT(recheckCount() >= 2, 6000); // re-checked again and again, ~1 s apart
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Invalid);
    QVERIFY(m_proxy->keys.snapshot().at(0).lastError.contains(QLatin1String("Incorrect API key")));
}

void HealthTest::newKeysCheckedOnceBeforeTheFirstChat()
{
    // Keys the user just added get one GET of the model list each, spread out, so the table shows which
    // work before any chat; a key already decided by a request is not checked.
    const QString good = QStringLiteral("sk-new-good-key-000000000001");
    const QString bad = QStringLiteral("sk-new-bad-key-0000000000002");
    const QString decided = QStringLiteral("sk-new-used-key-000000000003");
    m_mock->setHandler([bad](const RecordedRequest &request) {
        if (request.header("Authorization") == bearer(bad))
            return MockResponse::json(
                401, R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})");
        return MockResponse::json(200, R"({"object":"list","data":[]})");
    });
    QVERIFY(startProxy({ good, bad, decided }));
    m_proxy->keys.report(keyrelay::KeyPool::keyId(decided), QString(), keyrelay::KeyVerdict::Success, -1,
                         QString());
    m_proxy->keys.checkSoon(
        { keyrelay::KeyPool::keyId(good), keyrelay::KeyPool::keyId(bad), keyrelay::KeyPool::keyId(decided) },
        200);
    QTRY_COMPARE(m_proxy->keys.snapshot().at(1).health, keyrelay::KeyHealth::Invalid);
    QTRY_COMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Ok);
    QList<QByteArray> checked;
    QList<qint64> times;
    for (const RecordedRequest &request : m_mock->requests()) {
        QCOMPARE(request.method, QByteArray("GET"));
        QCOMPARE(request.target, QByteArray("/v1/models"));
        checked << request.header("Authorization");
        times << request.receivedAtMs;
    }
    QCOMPARE(checked, (QList<QByteArray> { bearer(good), bearer(bad) }));
    QVERIFY2(times.at(1) - times.at(0) >= 150,
             QByteArray::number(times.at(1) - times.at(0)).constData()); // spread
    QVERIFY(m_proxy->keys.snapshot().at(1).lastError.contains(QLatin1String("Incorrect API key")));
    QCOMPARE(m_proxy->keys.nextRecheckAt().isValid(), true); // the invalid one: its usual re-check
}

void HealthTest::streamCountedWithoutExtraChunk()
{
    m_mock->setHandler(openAiStream);
    QVERIFY(startProxy({ KeyA }));
    auto client = chat(R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]})");
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    // Upstream: usage asked for on the client's behalf.
    QVERIFY(asksForUsage(m_mock->lastRequest().body));
    // Client: exactly the stream it would have got without KeyRelay.
    QCOMPARE(client->body(), Chunk1 + Chunk2 + Done);
    // Counted all the same.
    QTRY_COMPARE(m_proxy->records.size(), 1);
    const keyrelay::RequestRecord record = m_proxy->records.first();
    QVERIFY(record.streamed);
    QCOMPARE(record.promptTokens, qint64(11));
    QCOMPARE(record.completionTokens, qint64(2));
    QCOMPARE(record.totalTokens, qint64(13));
    QVERIFY(!record.rewritten); // the reorder rule did not apply
}

void HealthTest::streamWithClientRequestedUsageUnchanged()
{
    m_mock->setHandler(openAiStream);
    QVERIFY(startProxy({ KeyA }));
    const QByteArray body
        = R"({"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[]})";
    auto client = chat(body);
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->lastRequest().body, body); // byte for byte
    QCOMPARE(client->body(), Chunk1 + Chunk2 + UsageChunk + Done); // the client asked for it: it gets it
    QTRY_COMPARE(m_proxy->records.size(), 1);
    QCOMPARE(m_proxy->records.first().totalTokens, qint64(13));
}

void HealthTest::streamUsageSettingOff()
{
    m_mock->setHandler(openAiStream);
    QVERIFY(startProxy({ KeyA }, [](keyrelay::ProxyConfig &config) { config.requestStreamUsage = false; }));
    const QByteArray body = R"({"model":"gpt-test","stream":true,"messages":[]})";
    auto client = chat(body);
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->lastRequest().body, body);
    QCOMPARE(client->body(), Chunk1 + Chunk2 + Done);
    QTRY_COMPARE(m_proxy->records.size(), 1);
    QCOMPARE(m_proxy->records.first().totalTokens, qint64(-1)); // unknown, as the setting says
}

void HealthTest::upstreamRejectingStreamOptions()
{
    // Some OpenAI-compatible servers refuse fields they do not know.
    m_mock->setHandler([](const RecordedRequest &request) {
        if (request.body.contains("stream_options"))
            return MockResponse::json(
                400,
                R"({"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error"}})");
        return openAiStream(request);
    });
    QVERIFY(startProxy({ KeyA, KeyB }));
    const QByteArray body = R"({"model":"gpt-test","stream":true,"messages":[]})";
    auto client = chat(body);
    QCOMPARE(client->status(), 200);
    QCOMPARE(client->body(), Chunk1 + Chunk2 + Done);
    QCOMPARE(m_mock->requestCount(), 2);
    QCOMPARE(m_mock->lastRequest().body, body); // the second time as the client wrote it
    // Same key both times (not the key's fault), and nothing held against it.
    QCOMPARE(m_mock->requests().at(0).header("Authorization"),
             m_mock->requests().at(1).header("Authorization"));
    for (const keyrelay::KeyStatus &status : m_proxy->keys.snapshot())
        QVERIFY(status.health != keyrelay::KeyHealth::Invalid);
    // A client's own stream_options with the same upstream gets the upstream's 400 as it is.
    auto own
        = chat(R"({"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[]})");
    QCOMPARE(own->status(), 400);
}

void HealthTest::perKeyConcurrencyLimitQueues()
{
    // Each answer takes a while: with one key and a limit of 1, requests run one after the other.
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, Chunk1 }, { 150, Chunk2 }, { 160, Done } });
    });
    QVERIFY(startProxy({ KeyA }, [](keyrelay::ProxyConfig &config) { config.maxConcurrentPerKey = 1; }));
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 3; ++i)
        clients.push_back(sendChat(R"({"model":"m","messages":[]})"));
    for (const auto &client : clients) {
        QVERIFY(client->waitFinished(10000));
        QCOMPARE(client->status(), 200);
    }
    QCOMPARE(m_mock->requestCount(), 3);
    QCOMPARE(m_mock->peakActiveResponses(), 1);
    QTRY_COMPARE(m_proxy->keys.snapshot().at(0).inFlight, 0);
}

void HealthTest::perKeyConcurrencyLimitGivesUp()
{
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::hold(); });
    QVERIFY(startProxy({ KeyA }, [](keyrelay::ProxyConfig &config) {
        config.maxConcurrentPerKey = 1;
        config.connectTimeoutSec = 1; // how long a request waits for a free key
    }));
    auto holding = sendChat(R"({"model":"m","messages":[]})");
    QTRY_COMPARE(m_mock->requestCount(), 1);
    auto waiting = chat(R"({"model":"m","messages":[]})", 5000);
    QVERIFY(waiting->finished());
    QCOMPARE(waiting->status(), 429);
    QCOMPARE(waiting->header("Retry-After"), QByteArray("1"));
    QCOMPARE(errorObject(waiting->body()).value(QStringLiteral("code")).toString(),
             QStringLiteral("all_keys_busy"));
    QCOMPARE(m_mock->requestCount(), 1); // never sent
    // The holding request leaves: its slot is free again.
    holding->abort();
    QTRY_COMPARE(m_proxy->keys.snapshot().at(0).inFlight, 0);
}

void HealthTest::streamFailingAfterFirstByteIsNotRetried()
{
    // The stream starts, then the upstream goes away: the client has seen bytes, so nothing may be
    // replayed on another key (it would duplicate the answer).
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::sse({ { 0, Chunk1 } }, false); });
    QVERIFY(startProxy({ KeyA, KeyB }));
    auto client = sendChat(R"({"model":"gpt-test","stream":true,"messages":[]})");
    QTRY_VERIFY(client->body().contains("Hel"));
    m_mock->dropAllConnections();
    QTRY_VERIFY(client->disconnected());
    QVERIFY(client->truncated()); // an incomplete reply, not a silently shortened one
    QCOMPARE(client->body(), Chunk1);
    QTRY_COMPARE(m_proxy->records.size(), 1);
    QCOMPARE(m_mock->requestCount(), 1);
    QCOMPARE(m_proxy->records.first().attempts, 1);
    // Said as what it was (not "client closed the connection": the proxy cut it off).
    QVERIFY2(m_proxy->records.first().error.startsWith(QLatin1String("response cut off")),
             qPrintable(m_proxy->records.first().error));
    // Not the key's fault either.
    QVERIFY(m_proxy->keys.snapshot().at(0).health != keyrelay::KeyHealth::Invalid);
}

QTEST_GUILESS_MAIN(HealthTest)
#include "tst_it_health.moc"
