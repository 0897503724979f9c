// Responses: status and headers reach the client, hop-by-hop headers do not, CORS on every proxied
// response, bodies byte-exact whatever their size and framing, and upstream failures mid-body.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QRandomGenerator>
#include <QtTest>

using namespace it;

Q_DECLARE_METATYPE(it::MockResponse::Mode)

namespace {
QByteArray randomBytes(qsizetype size, quint32 seed)
{
    QRandomGenerator generator(seed);
    QByteArray data(size, Qt::Uninitialized);
    const qsizetype words = size / 4;
    generator.fillRange(reinterpret_cast<quint32 *>(data.data()), words);
    for (qsizetype i = words * 4; i < size; ++i)
        data[i] = char(generator.bounded(256));
    return data;
}
} // namespace

class ResponseTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void statusAndHeaders_data();
    void statusAndHeaders();
    void configuredCorsOrigin();
    void bodies_data();
    void bodies();
    void upstreamCutsOffMidBody();
    void slowClientGetsEverything();
    void slowUpstreamHeaders();
    void noBodyStatuses_data();
    void noBodyStatuses();
    void http10Client();
    void compressedUpstreamBody();
    void redirectPassedThrough();

private:
    bool startProxy(const QString &allowedOrigin = QString());
    std::unique_ptr<RawClient> get(const QByteArray &target, int timeoutMs = 20000,
                                   const QByteArray &origin = {});

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void ResponseTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    // No pool keys: 401/429 from the upstream then reach the client as they are (no key retry).
    m_proxy = std::make_unique<ProxyHarness>();
}

void ResponseTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool ResponseTest::startProxy(const QString &allowedOrigin)
{
    keyrelay::ProxyConfig config = testConfig(m_mock->url());
    if (!allowedOrigin.isEmpty())
        config.allowedOrigins = { allowedOrigin };
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> ResponseTest::get(const QByteArray &target, int timeoutMs,
                                             const QByteArray &origin)
{
    auto client = std::make_unique<RawClient>();
    Headers headers { { "Authorization", "Bearer sk-client-key-0001" } };
    if (!origin.isEmpty())
        headers.append({ "Origin", origin });
    client->send(m_proxy->port(), buildRequest("GET", target, m_proxy->port(), headers));
    client->waitFinished(timeoutMs);
    return client;
}

void ResponseTest::statusAndHeaders_data()
{
    QTest::addColumn<int>("status");
    QTest::newRow("200") << 200;
    QTest::newRow("400") << 400;
    QTest::newRow("401") << 401;
    QTest::newRow("404") << 404;
    QTest::newRow("429") << 429;
    QTest::newRow("500") << 500;
    QTest::newRow("503") << 503;
}

void ResponseTest::statusAndHeaders()
{
    QFETCH(int, status);
    QVERIFY(startProxy());
    const QByteArray body = R"({"id":"chatcmpl-1","object":"chat.completion"})";
    const Headers upstreamHeaders {
        { "Content-Type", "application/json; charset=utf-8" },
        { "Retry-After", "7" },
        { "x-ratelimit-limit-requests", "10000" },
        { "x-ratelimit-remaining-requests", "9999" },
        { "x-ratelimit-reset-tokens", "6ms" },
        { "openai-organization", "org-xyz" },
        { "openai-processing-ms", "123" },
        { "openai-version", "2020-10-01" },
        { "x-request-id", "req_abc123" },
        { "Access-Control-Allow-Origin", "https://evil.example" },
        { "Keep-Alive", "timeout=5, max=1000" },
        { "Connection", "X-Hop-Header" },
        { "X-Hop-Header", "secret" },
        { "Proxy-Authenticate", "Basic realm=\"x\"" },
        { "Trailer", "X-Checksum" },
    };
    m_mock->setHandler(
        [&](const RecordedRequest &) { return MockResponse::fixed(status, body, upstreamHeaders); });

    auto client = get("/v1/chat/completions/abc");
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    QCOMPARE(client->body(), body);
    QCOMPARE(client->header("Content-Type"), QByteArray("application/json; charset=utf-8"));
    QCOMPARE(client->header("Retry-After"), QByteArray("7"));
    QCOMPARE(client->header("x-ratelimit-limit-requests"), QByteArray("10000"));
    QCOMPARE(client->header("x-ratelimit-remaining-requests"), QByteArray("9999"));
    QCOMPARE(client->header("x-ratelimit-reset-tokens"), QByteArray("6ms"));
    QCOMPARE(client->header("openai-organization"), QByteArray("org-xyz"));
    QCOMPARE(client->header("openai-processing-ms"), QByteArray("123"));
    QCOMPARE(client->header("openai-version"), QByteArray("2020-10-01"));
    QCOMPARE(client->header("x-request-id"), QByteArray("req_abc123"));
    // Hop-by-hop headers are the upstream connection's business only.
    QVERIFY(!client->hasHeader("Keep-Alive"));
    QVERIFY(!client->hasHeader("X-Hop-Header"));
    QVERIFY(!client->hasHeader("Proxy-Authenticate"));
    QVERIFY(!client->hasHeader("Trailer"));
    QVERIFY(!client->header("Connection").toLower().contains("x-hop-header"));
    // CORS is KeyRelay's decision, whatever the upstream said: a request without Origin gets none.
    QCOMPARE(countHeader(client->headers(), "Access-Control-Allow-Origin"), 0);
    QCOMPARE(m_mock->requestCount(), 1);
    QCOMPARE(m_mock->lastRequest().header("Authorization"), QByteArray("Bearer sk-client-key-0001"));
}

void ResponseTest::configuredCorsOrigin()
{
    QVERIFY(startProxy(QStringLiteral("https://bettergpt.chat")));
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::fixed(200, "{}",
                                   { { "Content-Type", "application/json" },
                                     { "Access-Control-Allow-Origin", "https://evil.example" },
                                     { "x-ratelimit-remaining-requests", "9" } });
    });
    auto client = get("/v1/models", 5000, "https://bettergpt.chat");
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    // The allowed origin echoed exactly once, never the upstream's; browsers may read rate limits.
    QCOMPARE(countHeader(client->headers(), "Access-Control-Allow-Origin"), 1);
    QCOMPARE(client->header("Access-Control-Allow-Origin"), QByteArray("https://bettergpt.chat"));
    QVERIFY(client->header("Vary").contains("Origin"));
    QVERIFY(
        client->header("Access-Control-Expose-Headers").toLower().contains("x-ratelimit-remaining-requests"));
}

void ResponseTest::bodies_data()
{
    QTest::addColumn<MockResponse::Mode>("mode");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<int>("chunkSize");

    using Mode = MockResponse::Mode;
    const QByteArray large = randomBytes(8 * 1024 * 1024, 20240601);
    const QByteArray binary("\0\r\n\r\n0\r\n\xff\x80", 10);
    QTest::newRow("empty, Content-Length") << Mode::Fixed << QByteArray() << 0;
    QTest::newRow("empty, chunked") << Mode::Chunked << QByteArray() << 16;
    QTest::newRow("empty, close-delimited") << Mode::CloseDelimited << QByteArray() << 0;
    QTest::newRow("1 byte, Content-Length") << Mode::Fixed << QByteArray("x") << 0;
    QTest::newRow("1 byte, chunked") << Mode::Chunked << QByteArray("y") << 1;
    QTest::newRow("1 byte, with FIN") << Mode::CloseDelimited << QByteArray("z") << 0;
    QTest::newRow("short, last bytes with FIN") << Mode::CloseDelimited << QByteArray("{\"ok\":true}\n") << 0;
    QTest::newRow("binary framing lookalikes, Content-Length") << Mode::Fixed << binary << 0;
    QTest::newRow("binary framing lookalikes, chunked 3") << Mode::Chunked << binary << 3;
    QTest::newRow("8 MiB random, Content-Length") << Mode::Fixed << large << 0;
    QTest::newRow("8 MiB random, chunked 64 KiB") << Mode::Chunked << large << 64 * 1024;
    QTest::newRow("8 MiB random, chunked odd 1000003") << Mode::Chunked << large << 1000003;
    QTest::newRow("8 MiB random, close-delimited") << Mode::CloseDelimited << large << 0;
}

void ResponseTest::bodies()
{
    QFETCH(MockResponse::Mode, mode);
    QFETCH(QByteArray, body);
    QFETCH(int, chunkSize);
    QVERIFY(startProxy());
    m_mock->setHandler([&](const RecordedRequest &) {
        MockResponse response
            = MockResponse::fixed(200, body, { { "Content-Type", "application/octet-stream" } });
        response.mode = mode;
        response.chunkSize = chunkSize;
        return response;
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);

    auto client = get("/v1/files/file-1/content", 30000);
    QVERIFY(client->finished());
    QVERIFY(!client->truncated());
    QCOMPARE(client->status(), 200);
    QCOMPARE(client->header("Content-Type"), QByteArray("application/octet-stream"));
    QCOMPARE(client->body().size(), body.size());
    QVERIFY(client->body() == body);
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QCOMPARE(record.status, 200);
    QCOMPARE(record.responseBytes, qint64(body.size()));
    QVERIFY2(record.error.isEmpty(), qPrintable(record.error));

    // The proxy connection stays usable after the response.
    if (!client->disconnected()) {
        client->send(m_proxy->port(), buildRequest("GET", "/v1/models", m_proxy->port()));
        QVERIFY(client->waitFinished());
        QCOMPARE(client->status(), 200);
        QCOMPARE(client->body(), body);
    }
}

void ResponseTest::upstreamCutsOffMidBody()
{
    QVERIFY(startProxy());
    const QByteArray body = randomBytes(200000, 7);
    m_mock->setHandler([&](const RecordedRequest &) {
        MockResponse response
            = MockResponse::fixed(200, body, { { "Content-Type", "application/octet-stream" } });
        response.mode = MockResponse::Mode::CutOff;
        response.cutAfterBytes = 1000;
        return response;
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = get("/v1/files/file-2/content");
    // The client must be able to tell: the response ends without its terminating chunk.
    QVERIFY(client->disconnected());
    QVERIFY(client->truncated());
    QCOMPARE(client->status(), 200);
    QVERIFY(client->body().size() <= 1000);
    QVERIFY(body.startsWith(client->body()));
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QVERIFY(!record.error.isEmpty());
    // The log counts what was handed to the client before the cut (the kernel may drop some of it).
    QVERIFY2(record.responseBytes >= client->body().size() && record.responseBytes <= 1000,
             qPrintable(QString::number(record.responseBytes)));

    // And the proxy goes on serving.
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::fixed(200, "after"); });
    auto next = get("/v1/models");
    QVERIFY(next->finished());
    QCOMPARE(next->body(), QByteArray("after"));
}

void ResponseTest::slowClientGetsEverything()
{
    // Back-pressure: a client that stops reading makes the proxy stop reading the upstream (checked while
    // the client sleeps: the upstream cannot send more than the buffers on the way hold), the exchange is
    // not cut off for pausing, and when the client reads again every byte still arrives in order.
    QVERIFY(startProxy());
    const QByteArray body = randomBytes(48 * 1024 * 1024, 99);
    m_mock->setHandler([&](const RecordedRequest &) {
        MockResponse response
            = MockResponse::fixed(200, body, { { "Content-Type", "application/octet-stream" } });
        response.mode = MockResponse::Mode::Chunked;
        response.chunkSize = 256 * 1024;
        return response;
    });
    RawClient client;
    client.setReceiveBufferSize(64 * 1024);
    client.setPaused(true);
    client.send(m_proxy->port(), buildRequest("GET", "/v1/files/big/content", m_proxy->port()));
    QTRY_COMPARE(m_mock->requestCount(), 1);
    // Nothing signals "every buffer on the way is full": poll until the upstream has sent nothing for
    // 300 ms. Without back-pressure it sends all 48 MiB at once (the proxy reads it into memory). The
    // client pauses for 3 s at least: longer than a busy GUI thread or a debugger stop, and longer than
    // the 2 s after which KeyRelay once cut off a client that took nothing.
    QElapsedTimer pause;
    pause.start();
    qint64 sent = -1;
    for (int stableFor = 0; stableFor < 300 || pause.elapsed() < 3000; stableFor += 50) {
        if (m_mock->bytesSent() != sent) {
            sent = m_mock->bytesSent();
            stableFor = 0;
        }
        QTest::qWait(50);
        QVERIFY2(sent < body.size(), "the proxy read the whole upstream response for a client that reads nothing");
    }
    // Loopback kernel buffers (the upstream's send buffer, the proxy's receive and send buffers, the
    // client's receive buffer) hold at most about 20 MiB; the proxy itself holds well under 1 MiB.
    qInfo() << "upstream sent" << sent << "while the client paused";
    QVERIFY2(sent < 32 * 1024 * 1024, qPrintable(QStringLiteral("the upstream sent %1 bytes").arg(sent)));
    QVERIFY(!client.finished()); // still going: a pausing client is not cut off
    QVERIFY(!client.disconnected());
    client.setPaused(false);
    QVERIFY(client.waitFinished(30000));
    QCOMPARE(client.status(), 200);
    QCOMPARE(client.body().size(), body.size());
    QVERIFY(client.body() == body);
}

void ResponseTest::slowUpstreamHeaders()
{
    QVERIFY(startProxy());
    m_mock->setHandler([](const RecordedRequest &) {
        MockResponse response = MockResponse::fixed(200, "late but fine");
        response.delayMs = 700;
        return response;
    });
    auto client = get("/v1/models");
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 200);
    QCOMPARE(client->body(), QByteArray("late but fine"));
    QVERIFY(client->msUntilFinished() >= 650);
}

void ResponseTest::noBodyStatuses_data()
{
    QTest::addColumn<int>("status");
    QTest::newRow("204") << 204;
    QTest::newRow("304") << 304;
}

void ResponseTest::noBodyStatuses()
{
    QFETCH(int, status);
    QVERIFY(startProxy());
    m_mock->setHandler([&](const RecordedRequest &) {
        return MockResponse::fixed(status, QByteArray(), { { "x-request-id", "req_nobody" } });
    });
    RawClient client;
    client.send(m_proxy->port(), buildRequest("DELETE", "/v1/threads/t1", m_proxy->port()));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), status);
    QCOMPARE(client.header("x-request-id"), QByteArray("req_nobody"));
    QVERIFY(!client.hasHeader("Transfer-Encoding"));
    // Nothing after the head: the next response on the connection parses cleanly.
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::fixed(200, "next"); });
    client.send(m_proxy->port(), buildRequest("GET", "/v1/models", m_proxy->port()));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QCOMPARE(client.body(), QByteArray("next"));
}

void ResponseTest::http10Client()
{
    QVERIFY(startProxy());
    const QByteArray body = "a body for an old client";
    m_mock->setHandler([&](const RecordedRequest &) {
        MockResponse response = MockResponse::fixed(200, body);
        response.mode = MockResponse::Mode::Chunked;
        response.chunkSize = 5;
        return response;
    });
    RawClient client;
    client.send(m_proxy->port(), "GET /v1/models HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QVERIFY(client.framing() != "chunked"); // HTTP/1.0 knows no chunked framing
    QCOMPARE(client.body(), body);
    QTRY_VERIFY(client.disconnected());
}

void ResponseTest::compressedUpstreamBody()
{
    // gzip of {"hello":"compressed world"}: whatever the proxy does with it, the client must get a body
    // that matches the headers it gets (decoded without Content-Encoding, or encoded with it).
    const QByteArray plain = R"({"hello":"compressed world"})";
    const QByteArray gzipped("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\xca\x48\xcd\xc9\xc9\x57\xb2"
                             "\x52\x4a\xce\xcf\x2d\x28\x4a\x2d\x2e\x4e\x4d\x51\x28\xcf\x2f\xca\x49\x51\xaa"
                             "\x05\x00\x86\x2f\x3b\x1a\x1c\x00\x00\x00",
                             48);
    QVERIFY(startProxy());
    m_mock->setHandler([&](const RecordedRequest &request) {
        if (!request.header("Accept-Encoding").contains("gzip"))
            return MockResponse::json(200, plain);
        return MockResponse::fixed(
            200, gzipped, { { "Content-Type", "application/json" }, { "Content-Encoding", "gzip" } });
    });
    RawClient client;
    client.send(m_proxy->port(),
                buildRequest("GET", "/v1/models", m_proxy->port(), { { "Accept-Encoding", "gzip" } }));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    if (client.header("Content-Encoding").contains("gzip"))
        QCOMPARE(client.body(), gzipped);
    else
        QCOMPARE(client.body(), plain);
}

void ResponseTest::redirectPassedThrough()
{
    // The proxy never follows redirects itself (that could send the key elsewhere); the client decides.
    QVERIFY(startProxy());
    m_mock->setHandler([&](const RecordedRequest &) {
        return MockResponse::fixed(307, "moved",
                                   { { "Location", m_mock->url(QStringLiteral("/elsewhere")).toEncoded() } });
    });
    auto client = get("/v1/models");
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 307);
    QCOMPARE(client->header("Location"), m_mock->url(QStringLiteral("/elsewhere")).toEncoded());
    QCOMPARE(client->body(), QByteArray("moved"));
    QCOMPARE(m_mock->requestCount(), 1);
}

QTEST_GUILESS_MAIN(ResponseTest)
#include "tst_it_response.moc"
