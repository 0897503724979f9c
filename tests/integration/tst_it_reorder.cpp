// The system-message reorder end to end: what the upstream receives for chat and non-chat requests,
// with the rewrite on and off, invalid JSON, and numbers that must survive textually.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QtTest>

using namespace it;

namespace {
// Unusual but valid spacing and number spellings: only the order of the messages may change.
const QByteArray Sys = R"({"role":"system","content":"You are terse."})";
const QByteArray M1 = R"({ "role": "user", "content": "one \"quoted\" \u00e9" })";
const QByteArray M2
    = R"({"role":"assistant","content":"two","tool_calls":[{"id":"c1","function":{"arguments":"{\"a\":[1,2]}"}}]})";
const QByteArray M3 = R"({"role":"user","content":"three ]}"})";
const QByteArray M4 = R"({"role":"user","content":[{"type":"text","text":"four"}]})";

QByteArray chatBody(const QList<QByteArray> &messages)
{
    QByteArray body
        = R"({"model":"gpt-4o-mini",  "max_tokens":100, "seed":1152921504606846976, "temperature":0.70, "messages": [)";
    for (qsizetype i = 0; i < messages.size(); ++i)
        body += (i ? ",\n  " : "\n  ") + messages.at(i);
    return body + "\n], \"n\":1e2, \"stream\":false}";
}
} // namespace

class ReorderTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void forwardedBody_data();
    void forwardedBody();
    void invalidJsonOnChatPath_data();
    void invalidJsonOnChatPath();
    void recordMarksRewrite();

private:
    bool startProxy(bool reorder);
    std::unique_ptr<RawClient> post(const QByteArray &target, const QByteArray &body);

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void ReorderTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::json(
            200, R"({"id":"chatcmpl-1","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");
    });
    m_proxy = std::make_unique<ProxyHarness>(QStringList { QStringLiteral("sk-reorder-key-00000000001") });
}

void ReorderTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool ReorderTest::startProxy(bool reorder)
{
    keyrelay::ProxyConfig config = testConfig(m_mock->url());
    config.reorderEnabled = reorder;
    config.reorderThreshold = 4;
    config.reorderDepth = 3;
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> ReorderTest::post(const QByteArray &target, const QByteArray &body)
{
    auto client = std::make_unique<RawClient>();
    client->send(
        m_proxy->port(),
        buildRequest("POST", target, m_proxy->port(), { { "Content-Type", "application/json" } }, body));
    client->waitFinished(10000);
    return client;
}

void ReorderTest::forwardedBody_data()
{
    QTest::addColumn<bool>("reorder");
    QTest::addColumn<QByteArray>("target");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QByteArray>("expected");

    const QByteArray five = chatBody({ Sys, M1, M2, M3, M4 });
    // [S,1,2,3,4] -> [1,S,2,3,4]: three messages follow the system message, separators stay in place.
    const QByteArray fiveReordered = chatBody({ M1, Sys, M2, M3, M4 });
    const QByteArray four = chatBody({ Sys, M1, M2, M3 });
    const QByteArray noSystem = chatBody({ M1, M2, M3, M4, M1 });

    QTest::newRow("chat, 5 messages, reordered")
        << true << QByteArray("/v1/chat/completions") << five << fiveReordered;
    QTest::newRow("chat with query and trailing slash")
        << true << QByteArray("/v1/chat/completions/?api-version=1") << five << fiveReordered;
    QTest::newRow("chat under base path prefix")
        << true << QByteArray("/openai/deployments/x/chat/completions") << five << fiveReordered;
    QTest::newRow("chat, reorder disabled: byte-identical")
        << false << QByteArray("/v1/chat/completions") << five << five;
    QTest::newRow("chat, 4 messages: under the threshold")
        << true << QByteArray("/v1/chat/completions") << four << four;
    QTest::newRow("chat, no leading system message")
        << true << QByteArray("/v1/chat/completions") << noSystem << noSystem;
    QTest::newRow("non-chat path untouched") << true << QByteArray("/v1/responses") << five << five;
    QTest::newRow("completions (legacy) untouched") << true << QByteArray("/v1/completions") << five << five;
    QTest::newRow("chat body not an object")
        << true << QByteArray("/v1/chat/completions") << QByteArray("[1,2,3]") << QByteArray("[1,2,3]");
}

void ReorderTest::forwardedBody()
{
    QFETCH(bool, reorder);
    QFETCH(QByteArray, target);
    QFETCH(QByteArray, body);
    QFETCH(QByteArray, expected);
    QVERIFY(startProxy(reorder));

    auto client = post(target, body);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
    const RecordedRequest seen = m_mock->lastRequest();
    QCOMPARE(seen.body, expected);
    QCOMPARE(seen.header("Content-Length"), QByteArray::number(expected.size()));
    // Integers stay integers, textually, whatever happened to the order.
    if (body.startsWith('{')) {
        QVERIFY(seen.body.contains(R"("max_tokens":100,)"));
        QVERIFY(seen.body.contains(R"("seed":1152921504606846976,)"));
        QVERIFY(seen.body.contains(R"("temperature":0.70,)"));
        QVERIFY(seen.body.contains(R"("n":1e2,)"));
    }
}

void ReorderTest::invalidJsonOnChatPath_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::newRow("truncated") << QByteArray(R"({"model":"gpt-4o","messages":[{"role":"system")");
    QTest::newRow("trailing comma") << QByteArray(R"({"model":"gpt-4o","messages":[],})");
    QTest::newRow("not json") << QByteArray("model=gpt-4o&messages=hi");
}

void ReorderTest::invalidJsonOnChatPath()
{
    QFETCH(QByteArray, body);
    QVERIFY(startProxy(true));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = post("/v1/chat/completions", body);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 400);
    QVERIFY(client->header("Content-Type").startsWith("application/json"));
    QVERIFY(!client->hasHeader("Access-Control-Allow-Origin")); // no Origin, no CORS
    const QJsonObject error = errorObject(client->body());
    QVERIFY2(!error.isEmpty(), client->body().constData());
    QVERIFY(error.value(QStringLiteral("message")).toString().contains(QStringLiteral("JSON")));
    QCOMPARE(error.value(QStringLiteral("type")).toString(), QStringLiteral("invalid_request_error"));
    QVERIFY(error.contains(QStringLiteral("code")));
    QTRY_COMPARE(finished.size(), 1);
    QCOMPARE(finished.first().first().value<keyrelay::RequestRecord>().status, 400);
    // Nothing reached the upstream, and the keys were not spent.
    QCOMPARE(m_mock->requestCount(), 0);
    QCOMPARE(m_proxy->keys.snapshot().first().requests, quint64(0));

    // The connection and the proxy go on.
    auto next = post("/v1/chat/completions", chatBody({ Sys, M1 }));
    QVERIFY(next->finished());
    QCOMPARE(next->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
}

void ReorderTest::recordMarksRewrite()
{
    QVERIFY(startProxy(true));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = post("/v1/chat/completions", chatBody({ Sys, M1, M2, M3, M4 }));
    QVERIFY(client->finished());
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QVERIFY(record.rewritten);
    QCOMPARE(record.model, QStringLiteral("gpt-4o-mini"));
    QCOMPARE(record.totalTokens, qint64(7));
    QCOMPARE(record.promptTokens, qint64(3));
    QCOMPARE(record.completionTokens, qint64(4));
}

QTEST_GUILESS_MAIN(ReorderTest)
#include "tst_it_reorder.moc"
