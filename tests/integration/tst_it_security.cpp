// Security end to end: only trusted browser origins, the client token when set, the Host check, and no
// whole key in any response, record or log line, even when the upstream echoes the key it was sent.
#include "logging.h"
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QJsonDocument>

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

/// A key with the characters that JSON encoders and URL encoders spell differently ('/', '+').
const QString SlashKey = QStringLiteral("sk-proj-Ab/cd+EFghIJklMN/0123456789xyz");

/// Every byte of @p text as @p prefix + its value in @p digits hex digits.
QByteArray hexEscaped(const QByteArray &text, const QByteArray &prefix, int digits, bool upper)
{
    QByteArray out;
    for (const char c : text) {
        QByteArray hex
            = QByteArray::number(uint(static_cast<unsigned char>(c)), 16).rightJustified(digits, '0');
        out += prefix + (upper ? hex.toUpper() : hex);
    }
    return out;
}

/// What a reader gets back from @p text: JSON string escapes undone (when it is JSON), then URL decoding,
/// twice over; a key must be found in none of these.
QList<QByteArray> readings(const QByteArray &text)
{
    QList<QByteArray> out { text };
    QJsonParseError error {};
    const QJsonDocument document = QJsonDocument::fromJson(text, &error);
    if (error.error == QJsonParseError::NoError)
        out << document.toJson(QJsonDocument::Compact); // escapes undone except '"' and '\\'
    const QJsonObject object = errorObject(text);
    if (!object.isEmpty())
        out << object.value(QStringLiteral("message")).toString().toUtf8();
    const qsizetype plain = out.size();
    for (qsizetype i = 0; i < plain; ++i) {
        const QByteArray once = QByteArray::fromPercentEncoding(out.at(i));
        out << once << QByteArray::fromPercentEncoding(once);
    }
    return out;
}

bool anyReadingLeaks(const QByteArray &text, const QString &secret)
{
    const QList<QByteArray> all = readings(text);
    return std::any_of(all.begin(), all.end(),
                       [&](const QByteArray &reading) { return containsPartOf(reading, secret); });
}

/// Every message the proxy core logged (after redaction), from any thread.
QMutex g_logMutex;
QStringList g_logLines;
void captureLog(QtMsgType, const QMessageLogContext &, const QString &message)
{
    QMutexLocker lock(&g_logMutex);
    g_logLines << message;
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
    void errorStreamsHeldAndMasked_data();
    void errorStreamsHeldAndMasked();
    void keysInResponseHeadersMasked_data();
    void keysInResponseHeadersMasked();
    void escapedKeysMaskedEverywhere_data();
    void escapedKeysMaskedEverywhere();
    void oversizedErrorNeverPassedOn();
    void crossSiteRequestWithoutOriginRefused_data();
    void crossSiteRequestWithoutOriginRefused();
    void twoOriginsRefused();
    void hostHeaderMustBeOneAndValid_data();
    void hostHeaderMustBeOneAndValid();

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

void SecurityTest::errorStreamsHeldAndMasked_data()
{
    QTest::addColumn<int>("status");
    QTest::addColumn<QByteArray>("contentType");
    QTest::newRow("401 event-stream") << 401 << QByteArray("text/event-stream");
    QTest::newRow("429 Event-Stream, charset") << 429 << QByteArray("Text/Event-Stream; charset=utf-8");
    QTest::newRow("500 TEXT/EVENT-STREAM") << 500 << QByteArray("TEXT/EVENT-STREAM");
}

void SecurityTest::errorStreamsHeldAndMasked()
{
    // An error is an error whatever its content type: held, masked, then sent.
    QFETCH(int, status);
    QFETCH(QByteArray, contentType);
    QVERIFY(startProxy(config()));
    m_mock->setHandler([status, contentType](const RecordedRequest &request) {
        const QByteArray key = request.header("Authorization").mid(7);
        MockResponse response
            = MockResponse::sse({ { 0,
                                    R"(data: {"error":{"message":"Incorrect API key provided: )" + key
                                        + R"("}})"
                                          "\n\n" },
                                  { 20, "data: [DONE]\n\n" } });
        response.status = status;
        response.headers = { { "Content-Type", contentType } };
        return response;
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = send("POST", "/v1/chat/completions", { { "Content-Type", "application/json" } }, ChatBody);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    QVERIFY2(client->body().contains("Incorrect API key provided"), client->body().constData());
    QVERIFY2(!containsPartOf(client->body(), KeyA) && !containsPartOf(client->body(), KeyB),
             client->body().constData());
    QTRY_VERIFY(finished.count() >= 1);
    const auto record = finished.last().first().value<keyrelay::RequestRecord>();
    const QByteArray line = record.toLogLine().toUtf8();
    QVERIFY2(!containsPartOf(line, KeyA) && !containsPartOf(line, KeyB), line.constData());
    // The upstream's own words, read from the stream's error event.
    QVERIFY2(record.error.startsWith(QLatin1String("Incorrect API key provided")), qPrintable(record.error));
}

void SecurityTest::keysInResponseHeadersMasked_data()
{
    QTest::addColumn<int>("status");
    QTest::newRow("200") << 200;
    QTest::newRow("302 redirect") << 302;
    QTest::newRow("401") << 401;
}

void SecurityTest::keysInResponseHeadersMasked()
{
    // A key in any upstream header value, in any spelling, is masked on every answer; a successful body is
    // still passed on byte for byte.
    QFETCH(int, status);
    m_proxy->setKeys({ SlashKey });
    QVERIFY(startProxy(config()));
    const QByteArray successBody = R"({"echo":")" + SlashKey.toUtf8() + R"("})";
    m_mock->setHandler([status, successBody](const RecordedRequest &request) {
        const QByteArray key = request.header("Authorization").mid(7);
        return MockResponse::fixed(
            status, status == 200 ? successBody : QByteArray(R"({"error":{"message":"no"}})"),
            { { "Content-Type", "application/json" },
              { "WWW-Authenticate", R"(Bearer realm="api", error="invalid_token", key=")" + key + '"' },
              { "X-Debug-Key", key },
              { "X-Debug-Key-Url", key.toPercentEncoding() },
              { "X-Debug-Key-Json", QByteArray(key).replace("/", "\\/") },
              { "Location", "https://example.test/callback?api_key=" + key.toPercentEncoding() } });
    });
    auto client = send("GET", "/v1/models", {});
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    QVERIFY(client->hasHeader("X-Debug-Key"));
    for (const auto &header : client->headers()) {
        QVERIFY2(!anyReadingLeaks(header.second, SlashKey),
                 qPrintable(QString::fromUtf8(header.first + ": " + header.second)));
        for (const char c : header.second) // header values stay ASCII (the mask's ellipsis is "...")
            QVERIFY2(static_cast<unsigned char>(c) < 0x80, header.first.constData());
    }
    QVERIFY(client->header("Location").startsWith("https://example.test/callback?api_key="));
    if (status == 200)
        QCOMPARE(client->body(), successBody);
}

void SecurityTest::escapedKeysMaskedEverywhere_data()
{
    QTest::addColumn<QByteArray>("spelling");
    const QByteArray key = SlashKey.toUtf8();
    QTest::newRow("JSON \\/") << QByteArray(key).replace("/", "\\/");
    QTest::newRow("JSON \\u0073k-") << "\\u0073" + key.mid(1);
    QTest::newRow("JSON \\u every character") << hexEscaped(key, "\\u", 4, false);
    QTest::newRow("JSON \\u upper-case hex") << hexEscaped(key, "\\u", 4, true);
    QTest::newRow("URL %2F %2B") << key.toPercentEncoding();
    QTest::newRow("URL lower-case %2f")
        << key.toPercentEncoding().replace("%2F", "%2f").replace("%2B", "%2b");
    QTest::newRow("URL every byte") << hexEscaped(key, "%", 2, true);
    QTest::newRow("URL twice (%252F)") << key.toPercentEncoding().toPercentEncoding();
    QTest::newRow("URL inside JSON (\\u0025)") << key.toPercentEncoding().replace("%", "\\u0025");
}

void SecurityTest::escapedKeysMaskedEverywhere()
{
    // Any spelling that decodes to the key is masked in the client's body, the request record, its log
    // line and every log message.
    QFETCH(QByteArray, spelling);
    m_proxy->setKeys({ SlashKey });
    QVERIFY(startProxy(config()));
    {
        QMutexLocker lock(&g_logMutex);
        g_logLines.clear();
    }
    const QtMessageHandler previous = qInstallMessageHandler(captureLog);
    keyrelay::installRedactingMessageHandler(&m_proxy->service.redactor());
    m_mock->setHandler([spelling](const RecordedRequest &) {
        return MockResponse::json(401,
                                  R"({"error":{"message":"Incorrect API key provided: )" + spelling
                                      + R"(","type":"invalid_request_error","code":"invalid_api_key"}})");
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = send("POST", "/v1/chat/completions", { { "Content-Type", "application/json" } }, ChatBody);
    QTRY_COMPARE(finished.count(), 1);
    keyrelay::installRedactingMessageHandler(nullptr);
    qInstallMessageHandler(previous);
    QCOMPARE(client->status(), 401);
    QVERIFY2(errorObject(client->body())
                 .value(QStringLiteral("message"))
                 .toString()
                 .startsWith(QLatin1String("Incorrect API key provided: ")),
             client->body().constData());
    QVERIFY2(!anyReadingLeaks(client->body(), SlashKey), client->body().constData());
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QVERIFY2(record.error.contains(QLatin1String("Incorrect API key provided")), qPrintable(record.error));
    QVERIFY2(!anyReadingLeaks(record.error.toUtf8(), SlashKey), qPrintable(record.error));
    QVERIFY2(!anyReadingLeaks(record.toLogLine().toUtf8(), SlashKey), qPrintable(record.toLogLine()));
    QMutexLocker lock(&g_logMutex);
    QVERIFY(!g_logLines.isEmpty());
    for (const QString &line : std::as_const(g_logLines))
        QVERIFY2(!anyReadingLeaks(line.toUtf8(), SlashKey), qPrintable(line));
}

void SecurityTest::oversizedErrorNeverPassedOn()
{
    // An error body too large to hold is not streamed out unmasked: the client gets the status and
    // KeyRelay's own error.
    QVERIFY(startProxy(config()));
    m_mock->setHandler([](const RecordedRequest &request) {
        const QByteArray key = request.header("Authorization").mid(7);
        MockResponse response = MockResponse::json(
            500, R"({"error":{"message":")" + QByteArray(2 * 1024 * 1024, 'x') + key + R"("}})");
        response.mode = MockResponse::Mode::Chunked;
        return response;
    });
    auto client = send("POST", "/v1/chat/completions", { { "Content-Type", "application/json" } }, ChatBody);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 500);
    QVERIFY2(client->body().size() < 4096, QByteArray::number(client->body().size()).constData());
    QCOMPARE(errorObject(client->body()).value(QStringLiteral("code")).toString(),
             QStringLiteral("upstream_error_too_large"));
    QVERIFY(!containsPartOf(client->body(), KeyA) && !containsPartOf(client->body(), KeyB));
}

void SecurityTest::crossSiteRequestWithoutOriginRefused_data()
{
    QTest::addColumn<Headers>("headers");
    QTest::addColumn<int>("status");
    QTest::newRow("<img> from another website") << Headers {
        { "Sec-Fetch-Site", "cross-site" }, { "Sec-Fetch-Mode", "no-cors" }, { "Sec-Fetch-Dest", "image" }
    } << 403;
    QTest::newRow("<script> from another website")
        << Headers { { "sec-fetch-site", "cross-site" }, { "sec-fetch-dest", "script" } } << 403;
    QTest::newRow("typed into the address bar") << Headers { { "Sec-Fetch-Site", "none" } } << 200;
    QTest::newRow("same-origin") << Headers { { "Sec-Fetch-Site", "same-origin" } } << 200;
    QTest::newRow("no fetch metadata (SDK, curl)") << Headers {} << 200;
}

void SecurityTest::crossSiteRequestWithoutOriginRefused()
{
    QFETCH(Headers, headers);
    QFETCH(int, status);
    QVERIFY(startProxy(config()));
    auto client = send("GET", "/v1/models", headers);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), status);
    QCOMPARE(m_mock->requestCount(), status == 200 ? 1 : 0); // refused: no key spent
    if (status == 403) {
        QCOMPARE(errorObject(client->body()).value(QStringLiteral("code")).toString(),
                 QStringLiteral("origin_not_allowed"));
        QVERIFY(!client->hasHeader("Access-Control-Allow-Origin"));
    }
}

void SecurityTest::twoOriginsRefused()
{
    keyrelay::ProxyConfig cfg = config();
    cfg.allowedOrigins = { QStringLiteral("https://bettergpt.chat") };
    QVERIFY(startProxy(cfg));
    auto client = send("POST", "/v1/chat/completions",
                       { { "Content-Type", "application/json" },
                         { "Origin", "https://bettergpt.chat" },
                         { "Origin", "https://evil.example" } },
                       ChatBody);
    QVERIFY(client->finished());
    QCOMPARE(client->status(), 403);
    QCOMPARE(m_mock->requestCount(), 0);
    QVERIFY(!client->hasHeader("Access-Control-Allow-Origin"));
}

void SecurityTest::hostHeaderMustBeOneAndValid_data()
{
    QTest::addColumn<QByteArray>("hostLines");
    QTest::addColumn<int>("status");
    QTest::newRow("one loopback Host") << QByteArray("Host: 127.0.0.1\r\n") << 200;
    QTest::newRow("no Host") << QByteArray() << 400;
    QTest::newRow("loopback, then another name")
        << QByteArray("Host: 127.0.0.1\r\nHost: evil.example\r\n") << 400;
    QTest::newRow("[::1] followed by a name") << QByteArray("Host: [::1]evil.example\r\n") << 400;
}

void SecurityTest::hostHeaderMustBeOneAndValid()
{
    QFETCH(QByteArray, hostLines);
    QFETCH(int, status);
    QVERIFY(startProxy(config()));
    RawClient client;
    client.send(m_proxy->port(), "GET /v1/models HTTP/1.1\r\n" + hostLines + "\r\n");
    QVERIFY(client.waitFinished(10000));
    QCOMPARE(client.status(), status);
    QCOMPARE(m_mock->requestCount(), status == 200 ? 1 : 0);
}

QTEST_GUILESS_MAIN(SecurityTest)
#include "tst_it_security.moc"
