// Keys end to end: strict round-robin over the pool, pass-through of the client's key (and "k1|k2|k3"
// rotation), a refused key skipped with a retry the client never sees, and no usable key -> 503.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QtTest>

using namespace it;

namespace {
const QString KeyA = QStringLiteral("sk-test-aaaaaaaaaaaaaaaa0001");
const QString KeyB = QStringLiteral("sk-test-bbbbbbbbbbbbbbbb0002");
const QString KeyC = QStringLiteral("sk-test-cccccccccccccccc0003");

QByteArray bearer(const QString &key)
{
    return "Bearer " + key.toUtf8();
}
} // namespace

class KeysTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void roundRobinOverPool();
    void roundRobinUnderConcurrency();
    void passThroughWithoutPool();
    void passThroughRotation();
    void refusedKeySkipped_data();
    void refusedKeySkipped();
    void sharedRefusalCondemnsNoKey();
    void everyKeyInvalidStillTriesOne();
    void badRequestNeverRetried();
    void regionRefusalIsNotTheKeys();
    void allCoolingAnswers429AtOnce();
    void refusedKeysDoNotUseUpAttempts();
    void transientFailuresStillBoundedByMaxAttempts();

private:
    bool startProxy(const QStringList &keys);
    std::unique_ptr<RawClient> request(const QByteArray &authorization = QByteArray());
    QList<QByteArray> authorizationsSeen() const;

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void KeysTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
}

void KeysTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

void KeysTest::refusedKeysDoNotUseUpAttempts()
{
    // Five keys, the first three plainly bad (invalid, quota used up, rate-limited), maxAttempts 3: the first
    // request still succeeds on the fourth key; each key is tried at most once.
    const QString keyD = QStringLiteral("sk-test-dddddddddddddddd0004");
    const QString keyE = QStringLiteral("sk-test-eeeeeeeeeeeeeeee0005");
    QVERIFY(startProxy({ KeyA, KeyB, KeyC, keyD, keyE }));
    QCOMPARE(m_proxy->keys.policy().maxAttempts, 3);
    m_mock->setHandler([&](const RecordedRequest &request) {
        const QByteArray auth = request.header("Authorization");
        if (auth == bearer(KeyA))
            return MockResponse::json(
                401, R"({"error":{"message":"Incorrect API key","code":"invalid_api_key"}})");
        if (auth == bearer(KeyB))
            return MockResponse::json(429, R"({"error":{"message":"quota","type":"insufficient_quota"}})");
        if (auth == bearer(KeyC)) {
            MockResponse response = MockResponse::json(429, R"({"error":{"message":"Rate limit reached"}})");
            response.headers.append(makeHeader("Retry-After", "30"));
            return response;
        }
        return MockResponse::json(200, R"({"ok":true})");
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = request();
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(authorizationsSeen(),
             (QList<QByteArray> { bearer(KeyA), bearer(KeyB), bearer(KeyC), bearer(keyD) }));
    QTRY_COMPARE(finished.size(), 1);
    QCOMPARE(finished.first().first().value<keyrelay::RequestRecord>().attempts, 4);
}

void KeysTest::transientFailuresStillBoundedByMaxAttempts()
{
    // 5xx on every key: three tries (maxAttempts), not one per key.
    const QString keyD = QStringLiteral("sk-test-dddddddddddddddd0004");
    QVERIFY(startProxy({ KeyA, KeyB, KeyC, keyD }));
    m_mock->setHandler(
        [](const RecordedRequest &) { return MockResponse::json(503, R"({"error":{"message":"busy"}})"); });
    auto client = request();
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 503);
    QCOMPARE(m_mock->requestCount(), 3);
}

bool KeysTest::startProxy(const QStringList &keys)
{
    m_proxy = std::make_unique<ProxyHarness>(keys);
    QString error;
    const bool ok = m_proxy->start(testConfig(m_mock->url()), &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> KeysTest::request(const QByteArray &authorization)
{
    Headers headers { { "Content-Type", "application/json" } };
    if (!authorization.isEmpty())
        headers.append(makeHeader("Authorization", authorization));
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(),
                 buildRequest("POST", "/v1/embeddings", m_proxy->port(), headers,
                              R"({"model":"text-embedding-3-small","input":"x"})"));
    client->waitFinished(10000);
    return client;
}

QList<QByteArray> KeysTest::authorizationsSeen() const
{
    QList<QByteArray> seen;
    const auto requests = m_mock->requests();
    for (const RecordedRequest &request : requests)
        seen.append(request.header("Authorization"));
    return seen;
}

void KeysTest::roundRobinOverPool()
{
    QVERIFY(startProxy({ KeyA, KeyB, KeyC }));
    for (int i = 0; i < 30; ++i) {
        auto client = request(i % 2 ? QByteArray("Bearer sk-client-ignored-0000") : QByteArray());
        QVERIFY(client->finished());
        QCOMPARE(client->status(), 200);
    }
    const QList<QByteArray> seen = authorizationsSeen();
    QCOMPARE(seen.size(), 30);
    QCOMPARE(seen.count(bearer(KeyA)), 10);
    QCOMPARE(seen.count(bearer(KeyB)), 10);
    QCOMPARE(seen.count(bearer(KeyC)), 10);
    // Strict order: A B C A B C ...
    const QList<QByteArray> order { bearer(KeyA), bearer(KeyB), bearer(KeyC) };
    for (int i = 0; i < 30; ++i)
        QCOMPARE(seen.at(i), order.at(i % 3));
    const auto status = m_proxy->keys.snapshot();
    QCOMPARE(status.size(), 3);
    for (const auto &key : status) {
        QCOMPARE(key.requests, quint64(10));
        QCOMPARE(key.health, keyrelay::KeyHealth::Ok);
    }
}

void KeysTest::roundRobinUnderConcurrency()
{
    QVERIFY(startProxy({ KeyA, KeyB, KeyC }));
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 30; ++i) {
        auto client = std::make_unique<RawClient>();
        client->send(m_proxy->port(), buildRequest("GET", "/v1/models", m_proxy->port()));
        clients.push_back(std::move(client));
    }
    QTRY_COMPARE_WITH_TIMEOUT(m_mock->requestCount(), 30, 10000);
    for (const auto &client : clients) {
        QVERIFY(client->waitFinished());
        QCOMPARE(client->status(), 200);
    }
    const QList<QByteArray> seen = authorizationsSeen();
    QCOMPARE(seen.count(bearer(KeyA)), 10);
    QCOMPARE(seen.count(bearer(KeyB)), 10);
    QCOMPARE(seen.count(bearer(KeyC)), 10);
}

void KeysTest::passThroughWithoutPool()
{
    QVERIFY(startProxy({}));
    auto client = request("Bearer sk-client-own-key-123456");
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->lastRequest().header("Authorization"), QByteArray("Bearer sk-client-own-key-123456"));

    // No key at all: nothing is invented.
    auto anonymous = request();
    QVERIFY(anonymous->finished());
    QCOMPARE(anonymous->status(), 200);
    QVERIFY(!m_mock->lastRequest().hasHeader("Authorization"));
    QCOMPARE(m_mock->requestCount(), 2);
}

void KeysTest::passThroughRotation()
{
    QVERIFY(startProxy({}));
    for (int i = 0; i < 6; ++i) {
        auto client = request("Bearer k1|k2|k3");
        QVERIFY(client->finished());
        QCOMPARE(client->status(), 200);
    }
    const QList<QByteArray> seen = authorizationsSeen();
    QCOMPARE(
        seen,
        (QList<QByteArray> { "Bearer k1", "Bearer k2", "Bearer k3", "Bearer k1", "Bearer k2", "Bearer k3" }));
    for (const RecordedRequest &request : m_mock->requests()) {
        for (const auto &header : request.headers)
            QVERIFY2(!header.second.contains('|'), header.first.constData());
    }
}

void KeysTest::refusedKeySkipped_data()
{
    QTest::addColumn<int>("refusal");
    QTest::addColumn<QByteArray>("refusalBody");
    QTest::addColumn<bool>("keyAvoidedAfterwards");
    QTest::addColumn<int>("health"); // of key A afterwards, when avoided
    QTest::newRow("401 invalid key")
        << 401 << QByteArray(R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})")
        << true << int(keyrelay::KeyHealth::Invalid);
    QTest::newRow("403 key not allowed")
        << 403 << QByteArray(R"({"error":{"message":"This API key is not allowed to use the API"}})") << true
        << int(keyrelay::KeyHealth::Invalid);
    QTest::newRow("429 rate limited")
        << 429 << QByteArray(R"({"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}})")
        << true << int(keyrelay::KeyHealth::RateLimited);
    QTest::newRow("429 out of quota")
        << 429
        << QByteArray(
               R"({"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}})")
        << true << int(keyrelay::KeyHealth::Exhausted);
    QTest::newRow("402 payment required") << 402 << QByteArray(R"({"error":{"message":"billing"}})") << true
                                          << int(keyrelay::KeyHealth::Exhausted);
    // An upstream failure on one key: retried on another, never held against the key.
    QTest::newRow("500 upstream error") << 500 << QByteArray(R"({"error":{"message":"server error"}})")
                                        << false << int(keyrelay::KeyHealth::Unknown);
}

void KeysTest::refusedKeySkipped()
{
    QFETCH(int, refusal);
    QFETCH(QByteArray, refusalBody);
    QFETCH(bool, keyAvoidedAfterwards);
    QFETCH(int, health);
    QVERIFY(startProxy({ KeyA, KeyB, KeyC }));
    m_mock->setHandler([&](const RecordedRequest &request) {
        if (request.header("Authorization") == bearer(KeyA))
            return MockResponse::json(refusal, refusalBody);
        return MockResponse::json(200, R"({"ok":true})");
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);

    auto first = request("Bearer sk-client-whatever-0000");
    QVERIFY(first->finished());
    QCOMPARE(first->status(), 200); // the client never sees the refusal
    QCOMPARE(first->body(), QByteArray(R"({"ok":true})"));
    QCOMPARE(authorizationsSeen(), (QList<QByteArray> { bearer(KeyA), bearer(KeyB) }));
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QCOMPARE(record.status, 200);
    QCOMPARE(record.attempts, 2);
    QVERIFY(record.keyLabel.endsWith(KeyB.right(4)));
    QVERIFY(!record.keyLabel.contains(KeyB));

    for (int i = 0; i < 6; ++i) {
        auto client = request();
        QVERIFY(client->finished());
        QCOMPARE(client->status(), 200);
    }
    const QList<QByteArray> later = authorizationsSeen().mid(2);
    if (keyAvoidedAfterwards) {
        QCOMPARE(later.size(), 6);
        QCOMPARE(later.count(bearer(KeyA)), 0);
        QCOMPARE(later.count(bearer(KeyB)), 3);
        QCOMPARE(later.count(bearer(KeyC)), 3);
        const auto status = m_proxy->keys.snapshot();
        QCOMPARE(int(status.at(0).health), health);
        QVERIFY(status.at(0).coolingUntil.isValid()); // every state but ok says when it ends
    } else {
        // Not the key's fault: the key stays in rotation, and each time the upstream fails on it the
        // request still succeeds with the next key.
        QVERIFY(later.count(bearer(KeyA)) > 0);
        QVERIFY(m_proxy->keys.snapshot().at(0).health != keyrelay::KeyHealth::Invalid);
    }
}

void KeysTest::sharedRefusalCondemnsNoKey()
{
    QVERIFY(startProxy({ KeyA, KeyB }));
    const QByteArray refusal
        = R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})";
    bool upstreamRefuses = true;
    m_mock->setHandler([&](const RecordedRequest &) {
        return upstreamRefuses ? MockResponse::json(401, refusal) : MockResponse::json(200, R"({"ok":true})");
    });

    // Every key got the same 401 on this request: the client gets the upstream's own answer...
    auto first = request();
    QVERIFY(first->finished());
    QCOMPARE(first->status(), 401);
    QCOMPARE(first->body(), refusal);
    QCOMPARE(authorizationsSeen(), (QList<QByteArray> { bearer(KeyA), bearer(KeyB) }));
    // ...and it is about the request or the upstream, not the keys: none is condemned.
    for (const keyrelay::KeyStatus &status : m_proxy->keys.snapshot())
        QVERIFY(status.health != keyrelay::KeyHealth::Invalid);

    // The next ordinary request is served normally once the upstream accepts again (no 503 of KeyRelay's
    // own).
    upstreamRefuses = false;
    auto next = request();
    QVERIFY(next->finished());
    QCOMPARE(next->status(), 200);
}

void KeysTest::everyKeyInvalidStillTriesOne()
{
    QVERIFY(startProxy({ KeyA, KeyB }));
    bool keyAWorks = false;
    m_mock->setHandler([&](const RecordedRequest &request) {
        if (request.header("Authorization") == bearer(KeyA) && keyAWorks)
            return MockResponse::json(200, R"({"ok":true})");
        if (request.header("Authorization") == bearer(KeyB))
            return MockResponse::json(200, R"({"ok":true})");
        return MockResponse::json(401, R"({"error":{"message":"invalid","code":"invalid_api_key"}})");
    });
    // A fails while B works: A is invalid (its own fault, B succeeded on the same request).
    QCOMPARE(request()->status(), 200);
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Invalid);
    // B is switched off by the user: A is the only key left, invalid, and still tried once per request
    // (KeyRelay never answers on its own for a reason with no known end).
    m_proxy->keys.setEnabled(1, false);
    auto refused = request();
    QCOMPARE(refused->status(), 401);
    keyAWorks = true; // billing fixed upstream: the very next request works, and A is ok again
    QCOMPARE(request()->status(), 200);
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Ok);
}

void KeysTest::badRequestNeverRetried()
{
    QVERIFY(startProxy({ KeyA, KeyB }));
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::json(400, R"({"error":{"message":"bad model","code":"model_not_found"}})");
    });
    auto client = request();
    QCOMPARE(client->status(), 400);
    QCOMPARE(m_mock->requestCount(), 1);
    for (const keyrelay::KeyStatus &status : m_proxy->keys.snapshot())
        QVERIFY(status.health != keyrelay::KeyHealth::Invalid);
}

void KeysTest::regionRefusalIsNotTheKeys()
{
    QVERIFY(startProxy({ KeyA, KeyB }));
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::json(
            403,
            R"({"error":{"message":"Country, region, or territory not supported","code":"unsupported_country_region_territory"}})");
    });
    auto client = request();
    QCOMPARE(client->status(), 403);
    QCOMPARE(m_mock->requestCount(), 1); // not retried: every key would get the same
    QCOMPARE(m_proxy->keys.snapshot().at(0).health, keyrelay::KeyHealth::Unknown);
    QCOMPARE(request()->status(), 403);
    QCOMPARE(m_mock->requestCount(), 2); // and the next request still goes upstream
}

void KeysTest::allCoolingAnswers429AtOnce()
{
    QVERIFY(startProxy({ KeyA, KeyB }));
    m_mock->setHandler([](const RecordedRequest &request) {
        if (request.body.contains("gpt-limited"))
            return MockResponse::fixed(
                429, R"({"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}})",
                { { "Content-Type", "application/json" }, { "Retry-After", "30" } });
        return MockResponse::json(200, R"({"ok":true})");
    });
    const auto chat = [this](const QByteArray &model) {
        auto client = std::make_unique<RawClient>();
        client->send(m_proxy->port(),
                     buildRequest("POST", "/v1/chat/completions", m_proxy->port(),
                                  { { "Content-Type", "application/json" } },
                                  R"({"model":")" + model + R"(","messages":[]})"));
        client->waitFinished();
        return client;
    };
    auto first = chat("gpt-limited");
    QCOMPARE(first->status(), 429); // both keys tried, the upstream's answer
    QCOMPARE(m_mock->requestCount(), 2);
    // Now every key is cooling for this model: KeyRelay answers at once, saying when.
    auto second = chat("gpt-limited");
    QCOMPARE(second->status(), 429);
    QVERIFY(second->header("Retry-After").toInt() >= 25 && second->header("Retry-After").toInt() <= 30);
    QCOMPARE(errorObject(second->body()).value(QStringLiteral("code")).toString(),
             QStringLiteral("all_keys_rate_limited"));
    QCOMPARE(m_mock->requestCount(), 2);
    // Rate limits are per model: another model keeps using the keys.
    QCOMPARE(chat("gpt-other")->status(), 200);
    QCOMPARE(m_mock->requestCount(), 3);
}

QTEST_GUILESS_MAIN(KeysTest)
#include "tst_it_keys.moc"
