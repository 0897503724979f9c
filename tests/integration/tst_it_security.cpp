// Security end to end: only trusted browser origins, the client token when set, the Host check, and no
// whole key in any response, record or log line, even when the upstream echoes the key it was sent.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QtTest>

using namespace it;

namespace {
const QString KeyA = QStringLiteral("sk-proj-SecretAAAAbbbbCCCCddddEEEE0001");
const QString KeyB = QStringLiteral("sk-proj-SecretZZZZyyyyXXXXwwwwVVVV0002");
const QString Token = QStringLiteral("krt-test-client-token-0123456789");
const QByteArray ChatBody = R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})";

/// Any 8 consecutive characters of @p secret (masks show at most the first 3 and the last 4).
bool containsPartOf(const QByteArray &text, const QString &secret)
{
    const QByteArray raw = secret.toUtf8();
    for (qsizetype i = 0; i + 8 <= raw.size(); ++i) {
        if (text.contains(raw.mid(i, 8)))
            return true;
    }
    return false;
}
} // namespace

class SecurityTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void evilOriginGetsNothing_data();
    void evilOriginGetsNothing();
    void rebindingHostGetsNothing();
    void trustedOriginsEchoed_data();
    void trustedOriginsEchoed();
    void allowListedOriginWorks();
    void requestsWithoutOriginUnaffected();
    void tokenEnforced_data();
    void tokenEnforced();
    void tokenNeverReachesUpstreamInPassThrough();
    void allowedHostBehindReverseProxy();
    void remoteListeningWithoutTokenRefused();
    void echoedKeyMaskedEverywhere_data();
    void echoedKeyMaskedEverywhere();
    void successfulBodiesByteForByte();
    void queryKeysRedactedInRecords();

private:
    bool startProxy(const keyrelay::ProxyConfig &config);
    keyrelay::ProxyConfig config() const { return testConfig(m_mock->url()); }
    std::unique_ptr<RawClient> send(const QByteArray &method, const QByteArray &target,
                                    const Headers &headers, const QByteArray &body = QByteArray());
    /// A browser's CORS preflight for POST /v1/chat/completions, asking for Private Network Access too.
    std::unique_ptr<RawClient> sendPreflight(const QByteArray &origin)
    {
        return send("OPTIONS", "/v1/chat/completions",
                    { { "Origin", origin },
                      { "Access-Control-Request-Method", "POST" },
                      { "Access-Control-Request-Private-Network", "true" } });
    }

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void SecurityTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::json(200, R"({"ok":true})"); });
    m_proxy = std::make_unique<ProxyHarness>(QStringList { KeyA, KeyB });
}

void SecurityTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool SecurityTest::startProxy(const keyrelay::ProxyConfig &config)
{
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> SecurityTest::send(const QByteArray &method, const QByteArray &target,
                                              const Headers &headers, const QByteArray &body)
{
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), buildRequest(method, target, m_proxy->port(), headers, body));
    client->waitFinished(10000);
    return client;
}

void SecurityTest::evilOriginGetsNothing_data()
{
    QTest::addColumn<QByteArray>("origin");
    QTest::newRow("website") << QByteArray("https://evil.example");
    QTest::newRow("sandboxed frame (null)") << QByteArray("null");
    QTest::newRow("localhost lookalike") << QByteArray("http://localhost.evil.example");
    QTest::newRow("file") << QByteArray("file://");
}

void SecurityTest::evilOriginGetsNothing()
{
    QFETCH(QByteArray, origin);
    QVERIFY(startProxy(config()));
    // The preflight...
    auto preflight = sendPreflight(origin);
    QVERIFY(preflight->finished());
    QCOMPARE(preflight->status(), 403);
    for (const auto &header : preflight->headers())
        QVERIFY2(!header.first.toLower().startsWith("access-control-"), header.first.constData());
    // ...and the request itself (a "simple" request needs no preflight).
    auto request = send("POST", "/v1/chat/completions",
                        { { "Origin", origin }, { "Content-Type", "text/plain" } }, ChatBody);
    QVERIFY(request->finished());
    QCOMPARE(request->status(), 403);
    for (const auto &header : request->headers())
        QVERIFY2(!header.first.toLower().startsWith("access-control-"), header.first.constData());
    QCOMPARE(errorObject(request->body()).value(QStringLiteral("code")).toString(),
             QStringLiteral("origin_not_allowed"));
    QCOMPARE(m_mock->requestCount(), 0);
    // The log shows the blocked website, so the user can allow it.
    QTRY_VERIFY(!m_proxy->records.isEmpty());
    const keyrelay::RequestRecord &record = m_proxy->records.last();
    QVERIFY(record.originBlocked);
    QCOMPARE(record.origin, QString::fromUtf8(origin));
    QCOMPARE(record.status, 403);
    QVERIFY(record.toLogLine().contains(QLatin1String("blocked")));
}

void SecurityTest::rebindingHostGetsNothing()
{
    QVERIFY(startProxy(config()));
    auto client
        = send("POST", "/v1/chat/completions",
               { { "Host", "attacker.example:9000" }, { "Content-Type", "application/json" } }, ChatBody);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 403);
    QVERIFY(!client->hasHeader("Access-Control-Allow-Origin"));
    QCOMPARE(m_mock->requestCount(), 0);
}

void SecurityTest::trustedOriginsEchoed_data()
{
    QTest::addColumn<QByteArray>("origin");
    QTest::newRow("localhost dev server") << QByteArray("http://localhost:5173");
    QTest::newRow("127.0.0.1") << QByteArray("http://127.0.0.1:3000");
    QTest::newRow("[::1]") << QByteArray("http://[::1]:8080");
    QTest::newRow("chrome extension") << QByteArray("chrome-extension://abcdefghijklmnopabcdefghijklmnop");
    QTest::newRow("moz extension") << QByteArray("moz-extension://0d4f1d6a-1234-5678-9abc-def012345678");
    QTest::newRow("tauri app") << QByteArray("tauri://localhost");
}

void SecurityTest::trustedOriginsEchoed()
{
    QFETCH(QByteArray, origin);
    QVERIFY(startProxy(config()));
    auto preflight = sendPreflight(origin);
    QCOMPARE(preflight->status(), 204);
    QCOMPARE(preflight->header("Access-Control-Allow-Origin"), origin);
    QCOMPARE(preflight->header("Access-Control-Allow-Private-Network"), QByteArray("true"));
    QVERIFY(preflight->header("Vary").contains("Origin"));
    auto request = send("POST", "/v1/chat/completions",
                        { { "Origin", origin }, { "Content-Type", "application/json" } }, ChatBody);
    QCOMPARE(request->status(), 200);
    QCOMPARE(countHeader(request->headers(), "Access-Control-Allow-Origin"), 1);
    QCOMPARE(request->header("Access-Control-Allow-Origin"), origin);
    QVERIFY(request->header("Vary").contains("Origin"));
    QCOMPARE(m_mock->requestCount(), 1);
}

void SecurityTest::allowListedOriginWorks()
{
    keyrelay::ProxyConfig cfg = config();
    cfg.allowedOrigins
        = { QStringLiteral("https://bettergpt.chat"), QStringLiteral("https://*.example.org") };
    QVERIFY(startProxy(cfg));
    for (const QByteArray &origin :
         { QByteArray("https://bettergpt.chat"), QByteArray("https://chat.example.org") }) {
        auto request = send("POST", "/v1/chat/completions",
                            { { "Origin", origin }, { "Content-Type", "application/json" } }, ChatBody);
        QCOMPARE(request->status(), 200);
        QCOMPARE(request->header("Access-Control-Allow-Origin"), origin);
    }
    auto other
        = send("POST", "/v1/chat/completions",
               { { "Origin", "https://example.org" }, { "Content-Type", "application/json" } }, ChatBody);
    QCOMPARE(other->status(), 403);
    QCOMPARE(m_mock->requestCount(), 2);

    // "Allow any website" is an explicit switch.
    cfg.allowAnyWebsite = true;
    QVERIFY(startProxy(cfg));
    auto any
        = send("POST", "/v1/chat/completions",
               { { "Origin", "https://evil.example" }, { "Content-Type", "application/json" } }, ChatBody);
    QCOMPARE(any->status(), 200);
    QCOMPARE(any->header("Access-Control-Allow-Origin"), QByteArray("https://evil.example"));
}

void SecurityTest::requestsWithoutOriginUnaffected()
{
    QVERIFY(startProxy(config()));
    auto client = send("POST", "/v1/chat/completions",
                       { { "Authorization", "Bearer sk-whatever" }, { "Content-Type", "application/json" } },
                       ChatBody);
    QCOMPARE(client->status(), 200);
    QVERIFY(!client->hasHeader("Access-Control-Allow-Origin"));
    QCOMPARE(m_mock->lastRequest().header("Authorization"), "Bearer " + KeyA.toUtf8());
    // The record names the key by its stable identity (for usage accounting), never by the secret.
    QTRY_VERIFY(!m_proxy->records.isEmpty());
    QCOMPARE(m_proxy->records.last().keyId, keyrelay::KeyPool::keyId(KeyA));
    QVERIFY(!m_proxy->records.last().keyId.contains(KeyA.mid(8, 6)));
}

void SecurityTest::tokenEnforced_data()
{
    QTest::addColumn<Headers>("headers");
    QTest::addColumn<int>("status");
    QTest::newRow("no credential") << Headers {} << 401;
    QTest::newRow("a wrong key") << Headers { { "Authorization", "Bearer sk-something-else-000" } } << 401;
    QTest::newRow("bearer token") << Headers { { "Authorization", "Bearer " + Token.toUtf8() } } << 200;
    QTest::newRow("x-api-key token") << Headers { { "x-api-key", Token.toUtf8() } } << 200;
    QTest::newRow("api-key token") << Headers { { "api-key", Token.toUtf8() } } << 200;
}

void SecurityTest::tokenEnforced()
{
    QFETCH(Headers, headers);
    QFETCH(int, status);
    keyrelay::ProxyConfig cfg = config();
    cfg.clientToken = Token;
    QVERIFY(startProxy(cfg));
    headers += Headers { { "Content-Type", "application/json" } };
    auto client = send("POST", "/v1/chat/completions", headers, ChatBody);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    if (status == 401) {
        QCOMPARE(errorObject(client->body()).value(QStringLiteral("code")).toString(),
                 QStringLiteral("invalid_client_token"));
        QCOMPARE(m_mock->requestCount(), 0);
        return;
    }
    QCOMPARE(m_mock->requestCount(), 1);
    // The upstream gets the user's key, never the token, in no header.
    const RecordedRequest upstream = m_mock->lastRequest();
    QCOMPARE(upstream.header("Authorization"), "Bearer " + KeyA.toUtf8());
    for (const auto &header : upstream.headers)
        QVERIFY2(!header.second.contains(Token.toUtf8()), header.first.constData());
}

void SecurityTest::tokenNeverReachesUpstreamInPassThrough()
{
    m_proxy->setKeys({}); // pass-through: the client's own key goes upstream, the token never
    keyrelay::ProxyConfig cfg = config();
    cfg.clientToken = Token;
    QVERIFY(startProxy(cfg));
    auto client
        = send("GET", "/v1/models",
               { { "x-api-key", Token.toUtf8() }, { "Authorization", "Bearer sk-client-own-key-000001" } });
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_mock->lastRequest().header("Authorization"), QByteArray("Bearer sk-client-own-key-000001"));
    auto onlyToken = send("GET", "/v1/models", { { "Authorization", "Bearer " + Token.toUtf8() } });
    QCOMPARE(onlyToken->status(), 200);
    for (const auto &header : m_mock->lastRequest().headers)
        QVERIFY2(!header.second.contains(Token.toUtf8()), header.first.constData());
}

void SecurityTest::allowedHostBehindReverseProxy()
{
    keyrelay::ProxyConfig cfg = config();
    cfg.allowedHosts = { QStringLiteral("api.example.test") };
    QString error;
    QVERIFY(!m_proxy->start(cfg, &error)); // a reverse proxy exposes KeyRelay: a token is required
    QVERIFY2(error.contains(QLatin1String("clientToken")), qPrintable(error));
    cfg.clientToken = Token;
    QVERIFY(startProxy(cfg));
    const Headers auth { { "Authorization", "Bearer " + Token.toUtf8() } };
    Headers listed = auth;
    listed += Headers { { "Host", "api.example.test" } };
    QCOMPARE(send("GET", "/v1/models", listed)->status(), 200);
    Headers other = auth;
    other += Headers { { "Host", "other.example.test" } };
    QCOMPARE(send("GET", "/v1/models", other)->status(), 403);
    QCOMPARE(m_mock->requestCount(), 1);
}

void SecurityTest::remoteListeningWithoutTokenRefused()
{
    keyrelay::ProxyConfig cfg = config();
    cfg.listenHost = QStringLiteral("0.0.0.0");
    cfg.allowRemoteClients = true;
    QString error;
    QVERIFY(!m_proxy->start(cfg, &error));
    QVERIFY2(error.contains(QLatin1String("clientToken")), qPrintable(error));
}

void SecurityTest::echoedKeyMaskedEverywhere_data()
{
    QTest::addColumn<int>("status");
    QTest::newRow("400") << 400;
    QTest::newRow("404") << 404;
    QTest::newRow("500") << 500;
}

void SecurityTest::echoedKeyMaskedEverywhere()
{
    QFETCH(int, status);
    QVERIFY(startProxy(config()));
    // An upstream that echoes the key it was sent, in its message and a header-like text.
    m_mock->setHandler([status](const RecordedRequest &request) {
        const QByteArray key = request.header("Authorization").mid(7);
        const QByteArray body = R"({"error":{"message":"Incorrect API key provided: )" + key
            + R"(. Authorization: Bearer )" + key + R"(","type":"invalid_request_error"}})";
        return MockResponse::json(status, body);
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client
        = send("POST", "/v1/chat/completions",
               { { "Content-Type", "application/json" }, { "Origin", "http://localhost:3000" } }, ChatBody);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    // The client learns nothing of the key, but gets a well-framed, still-JSON error.
    QVERIFY2(!containsPartOf(client->body(), KeyA) && !containsPartOf(client->body(), KeyB),
             client->body().constData());
    QCOMPARE(client->header("Content-Length").toLongLong(), client->body().size());
    QVERIFY(errorObject(client->body())
                .value(QStringLiteral("message"))
                .toString()
                .contains(QLatin1String("Incorrect API key provided")));
    QCOMPARE(client->header("Access-Control-Allow-Origin"), QByteArray("http://localhost:3000"));
    // Nor does the log.
    QTRY_COMPARE(finished.count(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    const QByteArray line = record.toLogLine().toUtf8();
    QVERIFY2(line.contains("Incorrect API key provided"), line.constData());
    QVERIFY2(!containsPartOf(line, KeyA) && !containsPartOf(line, KeyB), line.constData());
}

void SecurityTest::successfulBodiesByteForByte()
{
    QVERIFY(startProxy(config()));
    // A successful response is never touched, even if it happens to contain a key.
    const QByteArray body = R"({"echo":")" + KeyA.toUtf8() + R"("})";
    m_mock->setHandler([body](const RecordedRequest &) { return MockResponse::json(200, body); });
    auto client = send("GET", "/v1/models", {});
    QCOMPARE(client->status(), 200);
    QCOMPARE(client->body(), body);
}

void SecurityTest::queryKeysRedactedInRecords()
{
    QVERIFY(startProxy(config()));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = send("GET", "/v1/models?key=AIzaSyA-secret-google-key-0123456789&limit=2", {});
    QCOMPARE(client->status(), 200);
    QTRY_COMPARE(finished.count(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QVERIFY2(!record.path.contains(QLatin1String("secret-google-key")), qPrintable(record.path));
    QVERIFY(record.path.contains(QLatin1String("limit=2")));
    // The upstream still gets the query as sent.
    QCOMPARE(m_mock->lastRequest().target,
             QByteArray("/v1/models?key=AIzaSyA-secret-google-key-0123456789&limit=2"));
}

QTEST_GUILESS_MAIN(SecurityTest)
#include "tst_it_security.moc"
