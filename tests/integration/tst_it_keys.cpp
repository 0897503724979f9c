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
    void allKeysInvalid();

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
    QTest::addColumn<bool>("keyAvoidedAfterwards");
    QTest::newRow("401 invalid key") << 401 << true;
    QTest::newRow("403 forbidden") << 403 << false;
    QTest::newRow("429 rate limited") << 429 << true;
}

void KeysTest::refusedKeySkipped()
{
    QFETCH(int, refusal);
    QFETCH(bool, keyAvoidedAfterwards);
    QVERIFY(startProxy({ KeyA, KeyB, KeyC }));
    m_mock->setHandler([&](const RecordedRequest &request) {
        if (request.header("Authorization") == bearer(KeyA)) {
            return MockResponse::json(refusal,
                                      R"({"error":{"message":"refused","type":"invalid_request_error"}})");
        }
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
        QCOMPARE(status.at(0).health,
                 refusal == 401 ? keyrelay::KeyHealth::Invalid : keyrelay::KeyHealth::RateLimited);
    } else {
        // 403 is per request (e.g. a model the key may not use): the key stays in rotation, and each
        // time it is refused the request still succeeds with the next key.
        QVERIFY(later.count(bearer(KeyA)) > 0);
    }
}

void KeysTest::allKeysInvalid()
{
    QVERIFY(startProxy({ KeyA, KeyB }));
    const QByteArray refusal
        = R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}})";
    m_mock->setHandler([&](const RecordedRequest &) { return MockResponse::json(401, refusal); });

    // Every key is tried once; when none is left the client gets the upstream's last answer.
    auto first = request();
    QVERIFY(first->finished());
    QCOMPARE(first->status(), 401);
    QCOMPARE(first->body(), refusal);
    QCOMPARE(authorizationsSeen(), (QList<QByteArray> { bearer(KeyA), bearer(KeyB) }));

    // From now on the proxy knows no key works: 503 with an OpenAI-style error, nothing sent upstream.
    for (int i = 0; i < 2; ++i) {
        auto client = request("Bearer sk-client-0000000000000");
        QVERIFY(client->finished());
        QCOMPARE(client->status(), 503);
        QVERIFY(client->header("Content-Type").startsWith("application/json"));
        QVERIFY(!client->hasHeader("Access-Control-Allow-Origin")); // no Origin, no CORS
        const QJsonObject error = errorObject(client->body());
        QVERIFY2(!error.isEmpty(), client->body().constData());
        QVERIFY(!error.value(QStringLiteral("message")).toString().isEmpty());
        QVERIFY(!error.value(QStringLiteral("type")).toString().isEmpty());
        QCOMPARE(error.value(QStringLiteral("code")).toString(), QStringLiteral("no_usable_key"));
    }
    QCOMPARE(m_mock->requestCount(), 2);
}

QTEST_GUILESS_MAIN(KeysTest)
#include "tst_it_keys.moc"
