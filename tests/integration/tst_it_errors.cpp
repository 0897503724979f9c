// CORS preflights answered locally, and every error path: unreachable upstream (502), silent upstream
// (504), body over the limit (413), malformed requests (400), foreign Host (403). After each one the
// proxy must still serve.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QTcpServer>
#include <QtTest>

using namespace it;

namespace {
/// A loopback port that nothing listens on.
quint16 closedPort()
{
    QTcpServer server;
    if (!server.listen(QHostAddress(QHostAddress::LocalHost), 0))
        return 0;
    const quint16 port = server.serverPort();
    server.close();
    return port;
}
} // namespace

class ErrorsTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void preflight_data();
    void preflight();
    void upstreamUnreachable();
    void upstreamSilent_data();
    void upstreamSilent();
    void bodyOverLimit_data();
    void bodyOverLimit();
    void oversizedWithExpectContinue();
    void malformedRequest_data();
    void malformedRequest();
    void foreignHost_data();
    void foreignHost();
    void healthEndpoint();
    void portInUseKeepsTheOldListener();
    void samePortAgainKeepsServing();

private:
    bool startProxy(const QUrl &upstream, int connectTimeout = 5, int idleTimeout = 10, qint64 maxBody = -1);
    std::unique_ptr<RawClient> roundTrip(const QByteArray &request, int timeoutMs = 10000);
    void verifyStillServes();

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void ErrorsTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_proxy = std::make_unique<ProxyHarness>(QStringList { QStringLiteral("sk-errors-key-0000000000001") });
}

void ErrorsTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool ErrorsTest::startProxy(const QUrl &upstream, int connectTimeout, int idleTimeout, qint64 maxBody)
{
    keyrelay::ProxyConfig config = testConfig(upstream);
    config.connectTimeoutSec = connectTimeout;
    config.idleTimeoutSec = idleTimeout;
    if (maxBody > 0)
        config.maxBodyBytes = maxBody;
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> ErrorsTest::roundTrip(const QByteArray &request, int timeoutMs)
{
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), request);
    client->waitFinished(timeoutMs);
    return client;
}

void ErrorsTest::portInUseKeepsTheOldListener()
{
    // Applying a port another program holds must not take the working proxy down (issue 15, item 4).
    QVERIFY(startProxy(m_mock->url()));
    const quint16 configuredPort = m_proxy->service.config().listenPort;
    QTcpServer blocker;
    QVERIFY(blocker.listen(QHostAddress(QHostAddress::LocalHost), 0));
    const quint16 working = m_proxy->port();
    QVERIFY(working != 0);
    keyrelay::ProxyConfig config = m_proxy->service.config();
    config.listenPort = blocker.serverPort();
    config.upstream = m_mock->url();
    QSignalSpy failed(&m_proxy->service, &keyrelay::ProxyService::failed);
    QString error;
    QVERIFY(!m_proxy->service.applyConfig(config, &error));
    QVERIFY2(error.contains(QStringLiteral("in use")) && error.contains(QString::number(working)),
             qPrintable(error));
    QCOMPARE(m_proxy->service.state(), keyrelay::ProxyService::State::Running);
    QCOMPARE(m_proxy->service.port(), working);
    QCOMPARE(m_proxy->service.config().listenPort, configuredPort); // the old settings stay
    QCOMPARE(failed.count(), 0);
    // Still serving on the old port.
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::fixed(200, "old port"); });
    keyrelay::ProxyConfig pointed = m_proxy->service.config();
    pointed.upstream = m_mock->url();
    QVERIFY(m_proxy->service.applyConfig(pointed));
    auto client = roundTrip(buildRequest("GET", "/v1/models", working));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(client->body(), QByteArray("old port"));
    // A free port then moves the proxy there, and the old one closes.
    QTcpServer probe;
    QVERIFY(probe.listen(QHostAddress(QHostAddress::LocalHost), 0));
    const quint16 next = probe.serverPort();
    probe.close();
    pointed.listenPort = next;
    QVERIFY2(m_proxy->service.applyConfig(pointed, &error), qPrintable(error));
    QCOMPARE(m_proxy->service.port(), next);
    auto moved = roundTrip(buildRequest("GET", "/v1/models", next));
    QCOMPARE(moved->status(), 200);
    QTcpSocket old;
    old.connectToHost(QHostAddress::LocalHost, working);
    QVERIFY(!old.waitForConnected(2000));
}

void ErrorsTest::samePortAgainKeepsServing()
{
    // Re-applying the same address (e.g. allowing remote clients with a token) re-binds the same port.
    QVERIFY(startProxy(m_mock->url()));
    const quint16 working = m_proxy->port();
    keyrelay::ProxyConfig config = m_proxy->service.config();
    config.listenPort = working;
    config.upstream = m_mock->url();
    config.clientToken = QStringLiteral("krt-a-long-enough-client-token-0001");
    config.allowRemoteClients = !config.allowRemoteClients;
    QString error;
    QVERIFY2(m_proxy->service.applyConfig(config, &error), qPrintable(error));
    QCOMPARE(m_proxy->service.port(), working);
    auto client = roundTrip(buildRequest(
        "GET", "/v1/models", working, { { "Authorization", "Bearer krt-a-long-enough-client-token-0001" } }));
    QCOMPARE(client->status(), 200);
}

void ErrorsTest::verifyStillServes()
{
    // Point the proxy at the (working) mock, keeping the listener, and make a request.
    keyrelay::ProxyConfig config = m_proxy->service.config();
    config.upstream = m_mock->url();
    QVERIFY(m_proxy->service.applyConfig(config));
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::fixed(200, "still here"); });
    const int before = m_mock->requestCount();
    auto client = roundTrip(buildRequest("GET", "/v1/models", m_proxy->port()));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(client->body(), QByteArray("still here"));
    QCOMPARE(m_mock->requestCount(), before + 1);
}

void ErrorsTest::preflight_data()
{
    QTest::addColumn<QByteArray>("target");
    QTest::newRow("chat") << QByteArray("/v1/chat/completions");
    QTest::newRow("models with query") << QByteArray("/v1/models?limit=1");
    QTest::newRow("root") << QByteArray("/");
    QTest::newRow("unknown path") << QByteArray("/anything/at/all");
}

void ErrorsTest::preflight()
{
    QFETCH(QByteArray, target);
    QVERIFY(startProxy(m_mock->url()));
    const Headers headers { { "Origin", "http://localhost:5173" },
                            { "Access-Control-Request-Method", "POST" },
                            { "Access-Control-Request-Headers", "authorization, content-type" } };
    auto client = roundTrip(buildRequest("OPTIONS", target, m_proxy->port(), headers));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 204);
    QCOMPARE(client->header("Access-Control-Allow-Origin"), QByteArray("http://localhost:5173"));
    QVERIFY(client->header("Vary").contains("Origin"));
    const QByteArray allowHeaders = client->header("Access-Control-Allow-Headers").toLower();
    QVERIFY(allowHeaders.contains("authorization"));
    QVERIFY(allowHeaders.contains("content-type"));
    const QByteArray allowMethods = client->header("Access-Control-Allow-Methods");
    QVERIFY(allowMethods.contains("POST"));
    QVERIFY(allowMethods.contains("GET"));
    QVERIFY(client->header("Access-Control-Max-Age").toInt() > 0);
    QVERIFY(client->body().isEmpty());
    QCOMPARE(m_mock->requestCount(), 0); // never forwarded

    // The connection stays usable for the real request.
    client->send(m_proxy->port(), buildRequest("GET", target, m_proxy->port()));
    QVERIFY(client->waitFinished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->requestCount(), 1);
}

void ErrorsTest::upstreamUnreachable()
{
    const quint16 port = closedPort();
    QVERIFY(port != 0);
    QVERIFY(startProxy(QUrl(QStringLiteral("http://127.0.0.1:%1").arg(port))));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = roundTrip(
        buildRequest("POST", "/v1/chat/completions", m_proxy->port(),
                     { { "Content-Type", "application/json" }, { "Origin", "http://localhost:5173" } },
                     R"({"model":"m","messages":[]})"));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 502);
    QVERIFY(client->header("Content-Type").startsWith("application/json"));
    // KeyRelay's own errors carry the CORS headers of an allowed origin, so a browser app can read them.
    QCOMPARE(client->header("Access-Control-Allow-Origin"), QByteArray("http://localhost:5173"));
    const QJsonObject error = errorObject(client->body());
    QVERIFY2(!error.isEmpty(), client->body().constData());
    QVERIFY(error.value(QStringLiteral("message")).isString());
    QVERIFY(!error.value(QStringLiteral("message")).toString().isEmpty());
    QCOMPARE(error.value(QStringLiteral("type")).toString(), QStringLiteral("upstream_error"));
    QCOMPARE(error.value(QStringLiteral("code")).toString(), QStringLiteral("upstream_unreachable"));
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QCOMPARE(record.status, 502);
    QCOMPARE(record.responseBytes, qint64(client->body().size()));
    QVERIFY(!record.error.isEmpty());
    verifyStillServes();
}

void ErrorsTest::upstreamSilent_data()
{
    QTest::addColumn<QByteArray>("method");
    QTest::addColumn<QByteArray>("body");
    QTest::newRow("GET") << QByteArray("GET") << QByteArray();
    QTest::newRow("POST chat") << QByteArray("POST") << QByteArray(R"({"model":"m","messages":[]})");
}

void ErrorsTest::upstreamSilent()
{
    QFETCH(QByteArray, method);
    QFETCH(QByteArray, body);
    QVERIFY(startProxy(m_mock->url(), 1, 1));
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::hold(); });
    QSignalSpy upstreamClosed(m_mock.get(), &MockUpstream::clientDisconnected);
    auto client = roundTrip(
        buildRequest(method, "/v1/chat/completions", m_proxy->port(),
                     { { "Content-Type", "application/json" }, { "Origin", "app://chatbox" } }, body),
        8000);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 504);
    QCOMPARE(client->header("Access-Control-Allow-Origin"), QByteArray("app://chatbox"));
    const QJsonObject error = errorObject(client->body());
    QCOMPARE(error.value(QStringLiteral("type")).toString(), QStringLiteral("upstream_error"));
    QVERIFY(error.value(QStringLiteral("code")).toString().contains(QStringLiteral("timeout")));
    QVERIFY(!error.value(QStringLiteral("message")).toString().isEmpty());
    QCOMPARE(m_mock->requestCount(), 1);
    // The silent upstream connection is given up.
    QTRY_VERIFY(!upstreamClosed.isEmpty());
    verifyStillServes();
}

void ErrorsTest::bodyOverLimit_data()
{
    QTest::addColumn<bool>("chunked");
    QTest::addColumn<qint64>("size");
    QTest::newRow("Content-Length, limit + 1") << false << qint64(64 * 1024 + 1);
    QTest::newRow("chunked, limit + 1") << true << qint64(64 * 1024 + 1);
    QTest::newRow("Content-Length, 8 MiB") << false << qint64(8 * 1024 * 1024);
    QTest::newRow("chunked, 8 MiB") << true << qint64(8 * 1024 * 1024);
}

void ErrorsTest::bodyOverLimit()
{
    QFETCH(bool, chunked);
    QFETCH(qint64, size);
    constexpr qint64 Limit = 64 * 1024;
    QVERIFY(startProxy(m_mock->url(), 5, 10, Limit));
    const QByteArray body(size, 'a');
    QByteArray request;
    if (chunked) {
        request = buildRequest(
            "POST", "/v1/files", m_proxy->port(),
            { { "Content-Type", "application/octet-stream" }, { "Transfer-Encoding", "chunked" } });
        for (qsizetype at = 0; at < body.size(); at += 16384) {
            const QByteArray piece = body.mid(at, 16384);
            request += QByteArray::number(piece.size(), 16) + "\r\n" + piece + "\r\n";
        }
        request += "0\r\n\r\n";
    } else {
        request = buildRequest("POST", "/v1/files", m_proxy->port(),
                               { { "Content-Type", "application/octet-stream" } }, body);
    }
    auto client = roundTrip(request);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 413);
    // Refused before the request was read: no origin was checked, so no CORS header is given.
    QVERIFY(!client->hasHeader("Access-Control-Allow-Origin"));
    const QJsonObject error = errorObject(client->body());
    QVERIFY2(!error.isEmpty(), client->body().constData());
    QVERIFY(!error.value(QStringLiteral("message")).toString().isEmpty());
    QCOMPARE(m_mock->requestCount(), 0);
    QCOMPARE(m_mock->totalConnections(), 0); // not even a connection upstream

    // Exactly at the limit is fine.
    RawClient atLimit;
    const QByteArray allowed(Limit, 'b');
    atLimit.send(m_proxy->port(), buildRequest("POST", "/v1/files", m_proxy->port(), {}, allowed));
    QVERIFY(atLimit.waitFinished());
    QCOMPARE(atLimit.status(), 200);
    QCOMPARE(m_mock->lastRequest().body, allowed);
}

void ErrorsTest::oversizedWithExpectContinue()
{
    // The client asks before uploading: it gets the 413 at once, no "100 Continue", and sends nothing.
    QVERIFY(startProxy(m_mock->url(), 5, 10, 64 * 1024));
    RawClient client;
    client.send(m_proxy->port(),
                "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                "Content-Length: 10000000\r\n\r\n");
    QVERIFY(client.waitFinished(3000));
    QCOMPARE(client.status(), 413);
    QCOMPARE(errorObject(client.body()).value(QStringLiteral("code")).toString(),
             QStringLiteral("request_too_large"));
    QTRY_VERIFY(client.disconnected());
    QCOMPARE(m_mock->totalConnections(), 0);
}

void ErrorsTest::malformedRequest_data()
{
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<int>("status");
    QTest::newRow("garbage request line") << QByteArray("THIS IS NOT HTTP\r\n\r\n") << 400;
    QTest::newRow("two words") << QByteArray("GET /\r\n\r\n") << 400;
    QTest::newRow("bad method token") << QByteArray("G(T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") << 400;
    QTest::newRow("header without colon")
        << QByteArray("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n") << 400;
    QTest::newRow("bad Content-Length")
        << QByteArray("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12abc\r\n\r\n") << 400;
    QTest::newRow("negative Content-Length")
        << QByteArray("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n") << 400;
    QTest::newRow("bad chunk size") << QByteArray(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                                    << 400;
    QTest::newRow("absolute-form target") << QByteArray("GET http://evil.example/x HTTP/1.1\r\n\r\n") << 400;
    QTest::newRow("HTTP/2.0 version") << QByteArray("GET / HTTP/2.0\r\n\r\n") << 505;
    // RFC 9112 6.3: chunked not final -> the length cannot be known: 400 and close.
    QTest::newRow("transfer coding without chunked")
        << QByteArray("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n") << 400;
    QTest::newRow("unsupported transfer coding before chunked")
        << QByteArray("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        << 501;
}

void ErrorsTest::malformedRequest()
{
    QFETCH(QByteArray, raw);
    QFETCH(int, status);
    QVERIFY(startProxy(m_mock->url()));
    auto client = roundTrip(raw);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    QVERIFY(!errorObject(client->body()).isEmpty());
    QCOMPARE(m_mock->requestCount(), 0);
    verifyStillServes();
}

void ErrorsTest::foreignHost_data()
{
    QTest::addColumn<QByteArray>("host");
    QTest::addColumn<int>("status");
    QTest::newRow("evil.example") << QByteArray("evil.example") << 403;
    QTest::newRow("evil.example:9000") << QByteArray("evil.example:9000") << 403;
    QTest::newRow("rebinding IP") << QByteArray("192.168.1.20:8080") << 403;
    QTest::newRow("localhost") << QByteArray("localhost") << 200;
    QTest::newRow("127.0.0.1:port") << QByteArray("127.0.0.1:9000") << 200;
    QTest::newRow("[::1]:port") << QByteArray("[::1]:9000") << 200;
}

void ErrorsTest::foreignHost()
{
    QFETCH(QByteArray, host);
    QFETCH(int, status);
    QVERIFY(startProxy(m_mock->url()));
    auto client = roundTrip(buildRequest("GET", "/v1/models", m_proxy->port(), { { "Host", host } }));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    if (status == 403) {
        const QJsonObject error = errorObject(client->body());
        QVERIFY2(!error.isEmpty(), client->body().constData());
        QCOMPARE(m_mock->requestCount(), 0);
        verifyStillServes();
    } else {
        QCOMPARE(m_mock->requestCount(), 1);
    }
}

void ErrorsTest::healthEndpoint()
{
    QVERIFY(startProxy(m_mock->url()));
    auto client = roundTrip(buildRequest("GET", "/_keyrelay/health", m_proxy->port()));
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    const QJsonObject health = QJsonDocument::fromJson(client->body()).object();
    QCOMPARE(health.value(QStringLiteral("status")).toString(), QStringLiteral("ok"));
    QCOMPARE(health.value(QStringLiteral("keys")).toInt(), 1);
    QCOMPARE(m_mock->requestCount(), 0);
}

QTEST_GUILESS_MAIN(ErrorsTest)
#include "tst_it_errors.moc"
