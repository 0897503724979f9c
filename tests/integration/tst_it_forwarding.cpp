// Forwarding: methods, paths and queries, base URLs with a path, prefix stripping, and which request
// headers reach the upstream.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QtTest>

using namespace it;

namespace {
const QString PoolKey = QStringLiteral("sk-pool-key-0000000000000001");
}

class ForwardingTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void methods_data();
    void methods();
    void paths_data();
    void paths();
    void hopByHopRequestHeadersDropped();
    void clientKeyReplaced_data();
    void clientKeyReplaced();
    void userAgent_data();
    void userAgent();
    void keepAliveCarriesSeveralRequests();
    void chunkedRequestBody();
    void largeRequestBody();
    void expectContinue();
    void pipelinedRequests();
    void connectionCloseHonoured();
    void stopClosesKeptAliveConnections();

private:
    bool startProxy(const QUrl &upstream, const QStringList &stripPrefixes = {});
    std::unique_ptr<RawClient> roundTrip(const QByteArray &request, bool head = false);

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void ForwardingTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_proxy = std::make_unique<ProxyHarness>(QStringList { PoolKey });
}

void ForwardingTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool ForwardingTest::startProxy(const QUrl &upstream, const QStringList &stripPrefixes)
{
    QUrl parsed;
    QString error;
    if (!keyrelay::ProxyConfig::parseUpstream(upstream.toString(), &parsed, &error)) {
        qWarning() << error;
        return false;
    }
    keyrelay::ProxyConfig config = testConfig(parsed);
    config.stripPrefixes = stripPrefixes;
    if (!m_proxy->start(config, &error)) {
        qWarning() << error;
        return false;
    }
    return true;
}

std::unique_ptr<RawClient> ForwardingTest::roundTrip(const QByteArray &request, bool head)
{
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), request, head);
    client->waitFinished(10000);
    return client;
}

void ForwardingTest::methods_data()
{
    QTest::addColumn<QByteArray>("method");
    QTest::addColumn<QByteArray>("target");
    QTest::addColumn<QByteArray>("body");

    QTest::newRow("GET with query") << QByteArray("GET") << QByteArray("/v1/models?limit=5&order=desc")
                                    << QByteArray();
    QTest::newRow("POST") << QByteArray("POST") << QByteArray("/v1/embeddings")
                          << QByteArray(R"({"model":"text-embedding-3-small","input":"hi"})");
    QTest::newRow("PUT") << QByteArray("PUT") << QByteArray("/v1/files/file-abc?purpose=x")
                         << QByteArray("put body");
    QTest::newRow("PATCH") << QByteArray("PATCH") << QByteArray("/v1/fine_tuning/jobs/ft-1")
                           << QByteArray(R"({"suffix":"y"})");
    QTest::newRow("DELETE") << QByteArray("DELETE") << QByteArray("/v1/files/file-abc") << QByteArray();
    QTest::newRow("HEAD") << QByteArray("HEAD") << QByteArray("/v1/models") << QByteArray();
    QTest::newRow("custom method") << QByteArray("PROPFIND") << QByteArray("/v1/custom/thing?depth=1&x=%20y")
                                   << QByteArray("<propfind/>");
}

void ForwardingTest::methods()
{
    QFETCH(QByteArray, method);
    QFETCH(QByteArray, target);
    QFETCH(QByteArray, body);
    QVERIFY(startProxy(m_mock->url()));
    m_mock->setHandler([](const RecordedRequest &request) {
        return MockResponse::fixed(200, "method=" + request.method, { { "Content-Type", "text/plain" } });
    });

    const bool head = method == "HEAD";
    auto client = roundTrip(
        buildRequest(method, target, m_proxy->port(), { { "Content-Type", "text/plain" } }, body), head);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
    const RecordedRequest seen = m_mock->lastRequest();
    QCOMPARE(seen.method, method);
    QCOMPARE(seen.target, target);
    QCOMPARE(seen.body, body);
    if (head) {
        QVERIFY(client->body().isEmpty());
        // The size of the resource the upstream announced reaches the client.
        QCOMPARE(client->header("Content-Length"), QByteArray::number(QByteArray("method=HEAD").size()));
    } else
        QCOMPARE(client->body(), "method=" + method);
}

void ForwardingTest::paths_data()
{
    QTest::addColumn<QString>("basePath");
    QTest::addColumn<QStringList>("strip");
    QTest::addColumn<QByteArray>("clientTarget");
    QTest::addColumn<QByteArray>("upstreamTarget");

    const QStringList none;
    const QStringList release { QStringLiteral("/release") };
    QTest::newRow("plain") << QString() << none << QByteArray("/v1/chat/completions?stream=true")
                           << QByteArray("/v1/chat/completions?stream=true");
    QTest::newRow("root") << QString() << none << QByteArray("/") << QByteArray("/");
    QTest::newRow("base /api") << QStringLiteral("/api") << none << QByteArray("/v1/models?limit=2")
                               << QByteArray("/api/v1/models?limit=2");
    QTest::newRow("base /api/ trailing slash")
        << QStringLiteral("/api/") << none << QByteArray("/v1/models") << QByteArray("/api/v1/models");
    QTest::newRow("base /v1, client adds /v1")
        << QStringLiteral("/v1") << none << QByteArray("/v1/models") << QByteArray("/v1/models");
    QTest::newRow("base /v1, client without /v1")
        << QStringLiteral("/v1") << none << QByteArray("/models") << QByteArray("/v1/models");
    QTest::newRow("base /openai/v1") << QStringLiteral("/openai/v1") << none
                                     << QByteArray("/v1/chat/completions")
                                     << QByteArray("/openai/v1/chat/completions");
    QTest::newRow("/v1/v1 collapsed")
        << QString() << none << QByteArray("/v1/v1/x?y=1") << QByteArray("/v1/x?y=1");
    QTest::newRow("/v1/v1 with base /api")
        << QStringLiteral("/api") << none << QByteArray("/v1/v1/x") << QByteArray("/api/v1/x");
    QTest::newRow("strip /release") << QString() << release << QByteArray("/release/v1/models?a=b")
                                    << QByteArray("/v1/models?a=b");
    QTest::newRow("strip /release, base /api")
        << QStringLiteral("/api") << release << QByteArray("/release/v1/models")
        << QByteArray("/api/v1/models");
    QTest::newRow("strip exact /release")
        << QString() << release << QByteArray("/release") << QByteArray("/");
    QTest::newRow("no strip of /releases")
        << QString() << release << QByteArray("/releases/v1") << QByteArray("/releases/v1");
    QTest::newRow("percent-encoded space")
        << QString() << none << QByteArray("/v1/files/a%20b") << QByteArray("/v1/files/a%20b");
    QTest::newRow("percent-encoded slash kept")
        << QString() << none << QByteArray("/v1/models/org%2Fmodel-7b")
        << QByteArray("/v1/models/org%2Fmodel-7b");
    QTest::newRow("percent-encoded UTF-8 and %25")
        << QString() << none << QByteArray("/v1/files/caf%C3%A9%25x")
        << QByteArray("/v1/files/caf%C3%A9%25x");
    QTest::newRow("query kept verbatim") << QString() << none << QByteArray("/v1/x?q=a%26b&empty=&flag")
                                         << QByteArray("/v1/x?q=a%26b&empty=&flag");
}

void ForwardingTest::paths()
{
    QFETCH(QString, basePath);
    QFETCH(QStringList, strip);
    QFETCH(QByteArray, clientTarget);
    QFETCH(QByteArray, upstreamTarget);
    QVERIFY(startProxy(m_mock->url(basePath), strip));

    auto client = roundTrip(buildRequest("GET", clientTarget, m_proxy->port()));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
    QCOMPARE(m_mock->lastRequest().target, upstreamTarget);
}

void ForwardingTest::hopByHopRequestHeadersDropped()
{
    QVERIFY(startProxy(m_mock->url()));
    const QByteArray body = R"({"model":"gpt-4o-mini","input":"x"})";
    const Headers headers {
        { "Host", "localhost:" + QByteArray::number(m_proxy->port()) },
        { "Connection", "keep-alive, X-Secret-Hop" },
        { "Keep-Alive", "timeout=5, max=100" },
        { "TE", "trailers" },
        { "Upgrade", "h2c" },
        { "Proxy-Authorization", "Basic dXNlcjpwYXNz" },
        { "Proxy-Connection", "keep-alive" },
        { "X-Secret-Hop", "must-not-pass" },
        { "Expect", "100-continue" },
        { "Authorization", "Bearer sk-client-should-not-leak-1234" },
        { "OpenAI-Organization", "org-abc123" },
        { "OpenAI-Beta", "assistants=v2" },
        { "X-Custom", "custom value, with comma" },
        { "Content-Type", "application/json" },
    };
    auto client = roundTrip(buildRequest("POST", "/v1/responses", m_proxy->port(), headers, body));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
    const RecordedRequest seen = m_mock->lastRequest();

    for (const char *name : { "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization", "Proxy-Connection",
                              "X-Secret-Hop", "Expect" }) {
        QVERIFY2(!seen.hasHeader(name), name);
    }
    // The upstream connection's own Connection header (from the HTTP stack) must not carry the client's.
    QVERIFY2(!seen.header("Connection").toLower().contains("x-secret-hop"),
             seen.header("Connection").constData());
    QVERIFY(!seen.header("Connection").toLower().contains("upgrade"));
    // Host names the upstream, not what the client sent.
    QCOMPARE(seen.header("Host"), "127.0.0.1:" + QByteArray::number(m_mock->port()));
    QCOMPARE(countHeader(seen.headers, "Host"), 1);
    // The client's key is replaced by the pool's, and appears nowhere.
    QCOMPARE(seen.header("Authorization"), "Bearer " + PoolKey.toUtf8());
    for (const auto &header : seen.headers)
        QVERIFY2(!header.second.contains("sk-client"), header.first.constData());
    QVERIFY(!seen.body.contains("sk-client"));
    // Ordinary headers pass unchanged.
    QCOMPARE(seen.header("OpenAI-Organization"), QByteArray("org-abc123"));
    QCOMPARE(seen.header("OpenAI-Beta"), QByteArray("assistants=v2"));
    QCOMPARE(seen.header("X-Custom"), QByteArray("custom value, with comma"));
    QCOMPARE(seen.header("Content-Type"), QByteArray("application/json"));
    QCOMPARE(seen.body, body);
    QCOMPARE(seen.header("Content-Length"), QByteArray::number(body.size()));
}

void ForwardingTest::clientKeyReplaced_data()
{
    QTest::addColumn<QByteArray>("clientHeader");
    QTest::addColumn<QByteArray>("clientValue");
    QTest::addColumn<QByteArray>("expectedHeader");
    QTest::addColumn<QByteArray>("expectedValue");
    QTest::addColumn<QByteArray>("absentHeader");

    QTest::newRow("Authorization: Bearer")
        << QByteArray("Authorization") << QByteArray("Bearer sk-client-aaaa") << QByteArray("Authorization")
        << ("Bearer " + PoolKey.toUtf8()) << QByteArray("api-key");
    QTest::newRow("Authorization: bearer lower case")
        << QByteArray("authorization") << QByteArray("bearer sk-client-bbbb") << QByteArray("Authorization")
        << ("Bearer " + PoolKey.toUtf8()) << QByteArray("api-key");
    QTest::newRow("Azure api-key") << QByteArray("api-key") << QByteArray("sk-client-cccc")
                                   << QByteArray("api-key") << PoolKey.toUtf8()
                                   << QByteArray("Authorization");
    QTest::newRow("no client key") << QByteArray("X-Nothing") << QByteArray("1")
                                   << QByteArray("Authorization") << ("Bearer " + PoolKey.toUtf8())
                                   << QByteArray("api-key");
}

void ForwardingTest::clientKeyReplaced()
{
    QFETCH(QByteArray, clientHeader);
    QFETCH(QByteArray, clientValue);
    QFETCH(QByteArray, expectedHeader);
    QFETCH(QByteArray, expectedValue);
    QFETCH(QByteArray, absentHeader);
    QVERIFY(startProxy(m_mock->url()));

    auto client
        = roundTrip(buildRequest("GET", "/v1/models", m_proxy->port(), { { clientHeader, clientValue } }));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    const RecordedRequest seen = m_mock->lastRequest();
    QCOMPARE(seen.header(expectedHeader), expectedValue);
    QCOMPARE(countHeader(seen.headers, expectedHeader), 1);
    QVERIFY(!seen.hasHeader(absentHeader));
    for (const auto &header : seen.headers)
        QVERIFY2(!header.second.contains("sk-client"), header.first.constData());
}

void ForwardingTest::userAgent_data()
{
    QTest::addColumn<QByteArray>("clientAgent");
    QTest::addColumn<QByteArray>("expectedPrefix");
    QTest::newRow("client sends none") << QByteArray() << QByteArray("KeyRelay/");
    QTest::newRow("client's own kept")
        << QByteArray("OpenAI/Python 1.30.1") << QByteArray("OpenAI/Python 1.30.1");
}

void ForwardingTest::userAgent()
{
    QFETCH(QByteArray, clientAgent);
    QFETCH(QByteArray, expectedPrefix);
    QVERIFY(startProxy(m_mock->url()));
    Headers headers;
    if (!clientAgent.isEmpty())
        headers.append(makeHeader("User-Agent", clientAgent));
    auto client = roundTrip(buildRequest("GET", "/v1/models", m_proxy->port(), headers));
    QVERIFY(client->finished());
    const RecordedRequest seen = m_mock->lastRequest();
    QCOMPARE(countHeader(seen.headers, "User-Agent"), 1);
    QVERIFY2(seen.header("User-Agent").startsWith(expectedPrefix), seen.header("User-Agent").constData());
    if (clientAgent.isEmpty())
        QCOMPARE(seen.header("User-Agent"), QByteArray("KeyRelay/" KEYRELAY_VERSION));
}

void ForwardingTest::keepAliveCarriesSeveralRequests()
{
    QVERIFY(startProxy(m_mock->url()));
    RawClient client;
    for (int i = 0; i < 5; ++i) {
        const QByteArray target = "/v1/models/m" + QByteArray::number(i);
        client.send(m_proxy->port(), buildRequest("GET", target, m_proxy->port()));
        QVERIFY(client.waitFinished());
        QCOMPARE(client.status(), 200);
        QCOMPARE(client.body(), QByteArray("ok"));
        QCOMPARE(m_mock->lastRequest().target, target);
    }
    QVERIFY(!client.disconnected());
    QCOMPARE(m_mock->requestCount(), 5);
}

void ForwardingTest::stopClosesKeptAliveConnections()
{
    // A stopped proxy (or one moved to another port) must not go on serving over old connections.
    QVERIFY(startProxy(m_mock->url()));
    RawClient client;
    client.send(m_proxy->port(), buildRequest("GET", "/v1/models", m_proxy->port()));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QVERIFY(!client.disconnected());
    m_proxy->service.stop();
    QTRY_VERIFY_WITH_TIMEOUT(client.disconnected(), 5000);
    QCOMPARE(m_mock->requestCount(), 1);
}

void ForwardingTest::chunkedRequestBody()
{
    QVERIFY(startProxy(m_mock->url()));
    const QByteArray body = R"({"model":"text-embedding-3-small","input":["a","b","c"]})";
    QByteArray request
        = buildRequest("POST", "/v1/embeddings", m_proxy->port(),
                       { { "Content-Type", "application/json" }, { "Transfer-Encoding", "chunked" } });
    for (qsizetype at = 0; at < body.size(); at += 7) {
        const QByteArray piece = body.mid(at, 7);
        request += QByteArray::number(piece.size(), 16) + ";ext=1\r\n" + piece + "\r\n";
    }
    request += "0\r\nX-Trailer: t\r\n\r\n";
    auto client = roundTrip(request);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    const RecordedRequest seen = m_mock->lastRequest();
    QCOMPARE(seen.body, body);
    QVERIFY(!seen.header("Transfer-Encoding").contains("chunked") || seen.header("Content-Length").isEmpty());
    QVERIFY(!seen.hasHeader("X-Trailer"));
}

void ForwardingTest::largeRequestBody()
{
    QVERIFY(startProxy(m_mock->url()));
    QByteArray body(8 * 1024 * 1024, Qt::Uninitialized);
    for (qsizetype i = 0; i < body.size(); ++i)
        body[i] = char((i * 7919 + i / 251) & 0xff);
    auto client = roundTrip(buildRequest("POST", "/v1/files", m_proxy->port(),
                                         { { "Content-Type", "application/octet-stream" } }, body));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
    QCOMPARE(m_mock->lastRequest().body.size(), body.size());
    QVERIFY(m_mock->lastRequest().body == body);
}

void ForwardingTest::expectContinue()
{
    // A client that waits for "100 Continue" before sending its body (curl does this for large bodies).
    QVERIFY(startProxy(m_mock->url()));
    const QByteArray body = R"({"model":"m","input":"after continue"})";
    QTcpSocket socket;
    socket.connectToHost(QHostAddress(QHostAddress::LocalHost), m_proxy->port());
    QVERIFY(socket.waitForConnected(5000));
    socket.write("POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                 "Content-Type: application/json\r\nContent-Length: "
                 + QByteArray::number(body.size()) + "\r\n\r\n");
    QByteArray received;
    QTRY_VERIFY_WITH_TIMEOUT((received += socket.readAll()).contains("\r\n\r\n"), 5000);
    QVERIFY2(received.startsWith("HTTP/1.1 100 Continue\r\n\r\n"), received.constData());
    QCOMPARE(m_mock->requestCount(), 0);
    received.clear();
    socket.write(body);
    QTRY_VERIFY_WITH_TIMEOUT((received += socket.readAll()).endsWith("0\r\n\r\n"), 5000);
    QVERIFY2(received.startsWith("HTTP/1.1 200 "), received.constData());
    QCOMPARE(m_mock->requestCount(), 1);
    QCOMPARE(m_mock->lastRequest().body, body);
    QVERIFY(!m_mock->lastRequest().hasHeader("Expect"));
}

void ForwardingTest::pipelinedRequests()
{
    QVERIFY(startProxy(m_mock->url()));
    m_mock->setHandler([](const RecordedRequest &request) {
        MockResponse response = MockResponse::fixed(200, "for " + request.target);
        response.delayMs = request.target.endsWith("/a") ? 200 : 0; // the first answer comes last upstream
        return response;
    });
    QTcpSocket socket;
    socket.connectToHost(QHostAddress(QHostAddress::LocalHost), m_proxy->port());
    QVERIFY(socket.waitForConnected(5000));
    socket.write(buildRequest("GET", "/v1/a", m_proxy->port())
                 + buildRequest("GET", "/v1/b", m_proxy->port()));
    QByteArray received;
    QTRY_VERIFY_WITH_TIMEOUT((received += socket.readAll()).count("0\r\n\r\n") == 2, 5000);
    // Responses come back in request order.
    const qsizetype first = received.indexOf("for /v1/a");
    const qsizetype second = received.indexOf("for /v1/b");
    QVERIFY2(first > 0 && second > first, received.constData());
    QCOMPARE(received.count("HTTP/1.1 200 "), 2);
    QCOMPARE(m_mock->requestCount(), 2);
}

void ForwardingTest::connectionCloseHonoured()
{
    QVERIFY(startProxy(m_mock->url()));
    RawClient client;
    client.send(m_proxy->port(),
                buildRequest("GET", "/v1/models", m_proxy->port(), { { "Connection", "close" } }));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QCOMPARE(client.body(), QByteArray("ok"));
    QVERIFY(client.header("Connection").toLower().contains("close"));
    QTRY_VERIFY(client.disconnected());
}

QTEST_GUILESS_MAIN(ForwardingTest)
#include "tst_it_forwarding.moc"
